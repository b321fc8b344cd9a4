"""The API through a live server: start, find, inspect, decide, redrive, bulk; errors are 4xx."""

from __future__ import annotations

import threading
import time

from .conftest import Server


def test_a_reviewer_decides_a_task_and_a_second_one_is_refused(server: Server) -> None:
    with server.client("reviewer") as alice, server.client("admin") as admin:
        inbox = alice.get("/api/tasks").json()
        assert len(inbox) == 3
        task = inbox[0]
        assert task["outcomes"] == ["approve", "reject"] and task["form"]["required"] == ["risk"]
        assert alice.post(f"/api/tasks/{task['id']}/claim").json()["claimed_by"] == "token:reviewer"
        taken = admin.post(
            f"/api/tasks/{task['id']}/decide", json={"outcome": "approve", "data": {"risk": "low"}}
        )
        assert taken.status_code == 409 and "claimed by token:reviewer" in taken.json()["message"]
        assert taken.json()["error"] == "task"
        bad = alice.post(f"/api/tasks/{task['id']}/decide", json={"outcome": "approve", "data": {}})
        assert bad.status_code == 409 and bad.json()["error"] == "task"
        assert "does not fit its form: form: " in bad.json()["message"]  # the rest: jsonschema's
        assert "risk" in bad.json()["message"]
        decided = alice.post(
            f"/api/tasks/{task['id']}/decide",
            json={"outcome": "approve", "comment": "ok", "data": {"risk": "low"}},
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["task"]["status"] == "decided"
        again = alice.post(
            f"/api/tasks/{task['id']}/decide", json={"outcome": "reject", "data": {"risk": "high"}}
        )
        assert again.status_code == 409 and "already decided" in again.json()["message"]
        with server.client("billing") as billing:
            assert billing.get("/api/tasks").json() == []
            other = inbox[1]["id"]
            refused = billing.post(f"/api/tasks/{other}/claim")
            assert refused.status_code == 409 and "does not include" in refused.json()["message"]


def test_two_clients_deciding_one_task_at_once_one_wins(server: Server) -> None:
    with server.client("reviewer") as first:
        task = first.get("/api/tasks").json()[0]["id"]
    answers: list[int] = []

    def decide(outcome: str) -> None:
        with server.client("operator") as client:
            answer = client.post(
                f"/api/tasks/{task}/decide", json={"outcome": outcome, "data": {"risk": "low"}}
            )
            answers.append(answer.status_code)

    threads = [threading.Thread(target=decide, args=(o,)) for o in ("approve", "reject")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 409]


def test_items_are_started_found_inspected_and_redriven(server: Server) -> None:
    with server.client("operator") as ops:
        created = ops.post(
            "/api/items", json={"workflow": "review", "key": "big", "data": {"amount": 95}}
        )
        assert created.status_code == 201 and created.json()["created"] is True
        again = ops.post("/api/items", json={"workflow": "review", "key": "big", "data": {}})
        assert again.status_code == 200 and again.json()["created"] is False
        batch = ops.post(
            "/api/items/batch",
            json={
                "workflow": "review",
                "items": [{"key": f"b-{n}", "data": {"amount": 50}} for n in range(20)],
            },
        )
        assert batch.json() == {"created": 20, "existing": 0, "rejected": []}
        too_many = ops.post(
            "/api/items/batch",
            json={"workflow": "review", "items": [{"key": f"x-{n}"} for n in range(10_001)]},
        )
        assert too_many.status_code == 422
        page = ops.get("/api/items", params={"workflow": "review", "q": "b-", "limit": 7}).json()
        assert page["total"] == 20 and len(page["items"]) == 7 and page["next_cursor"]
        seen = {i["key"] for i in page["items"]}
        cursor = page["next_cursor"]
        while cursor:
            page = ops.get("/api/items", params={"q": "b-", "limit": 7, "cursor": cursor}).json()
            seen |= {i["key"] for i in page["items"]}
            cursor = page["next_cursor"]
        assert seen == {f"b-{n}" for n in range(20)}
        assert ops.get("/api/items", params={"cursor": "nonsense"}).status_code == 422
        view = ops.get("/api/items/review/order-0").json()
        assert view["state"] == "human_review" and view["tasks"][0]["status"] == "open"
        assert view["context"]["amount"] == 50
        assert {t["name"] for t in view["pending"]["timers"]} == {"task_due", "task_reminder"}
        missing = ops.get("/api/items/review/nope")
        assert missing.status_code == 404 and "no item with key 'nope'" in missing.json()["message"]
        moved = ops.post(
            "/api/items/review/order-0/redrive", json={"to": "rejected", "reason": "fraud"}
        )
        assert moved.json()["state"] == "rejected"
        history = ops.get("/api/items/review/order-0/history").json()
        assert history[-1]["event"] == "moved" and history[-1]["note"] == "fraud"
        wrong = ops.post("/api/items/review/order-1/events", json={"name": "approve"})
        assert wrong.status_code == 409 and "human task" in wrong.json()["message"]
        deadline = time.time() + 20  # the service's own workers run the batch meanwhile
        while ops.get("/api/items", params={"state": "human_review"}).json()["total"] < 22:
            assert time.time() < deadline, "the in-process workers did not run the batch"
            time.sleep(0.1)
        dry = ops.post(
            "/api/bulk", json={"operation": "pause", "reason": "x", "state": "human_review"}
        )
        assert dry.json()["dry_run"] is True and dry.json()["matched"] == 22, dry.json()
        dot = ops.get("/api/workflows/review/diagram", params={"format": "dot"})
        assert dot.text.startswith("digraph") and 'label="human_review (22)"' in dot.text
        assert ops.get("/api/workflows/nope").status_code == 404


def test_metrics_show_items_open_tasks_and_alerts(server: Server) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with server.client("viewer") as viewer:
        answer = viewer.get("/metrics")
    assert answer.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    waiting = [
        value
        for (name, labels), value in samples.items()
        if name == "statewise_items" and ("state", "human_review") in labels
    ]
    assert sum(waiting) == 3
    assert any(name == "statewise_alert_firing" for name, _ in samples)
