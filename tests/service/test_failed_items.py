"""Failed items through the API and the board, on both stores: found, explained, not redriven
into the same defect.

The workflow's first decision reads a misspelled field of its command's result, so every item
fails there with a condition defect.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import httpx
import pytest

from service.conftest import REVIEW_YAML, Server, login_csrf, run_server, stuck_items

MISSPELLED = REVIEW_YAML.replace("intake.value < 90", "intake.vaule < 90")


@pytest.fixture
def broken(db: str) -> Iterator[Server]:
    yield from run_server(db, items=2, workers=False, workflow=MISSPELLED)


def _history(client: httpx.Client, key: str) -> list[dict[str, object]]:
    answer = client.get(f"/api/items/review/{key}/history")
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, object]] = answer.json()
    return rows


def test_the_item_search_lists_failed_items_with_their_defect(broken: Server) -> None:
    with broken.client("viewer") as viewer:
        found = viewer.get("/api/items", params={"status": "failed"}).json()
    assert found["total"] == 2
    for item in found["items"]:
        assert (item["state"], item["status"]) == ("intake", "failed")
        assert item["failure"]["kind"] == "condition"
        assert "`intake.vaule < 90`" in item["failure"]["message"]
    assert stuck_items(broken.store_url) == []


def test_the_board_flags_failed_items_in_red(broken: Server) -> None:
    with httpx.Client(base_url=broken.url) as client:
        csrf = login_csrf(client)
        client.post("/dashboard/login", data={"token": broken.tokens["viewer"], "csrf": csrf})
        board = client.get("/dashboard").text
        flow = client.get("/dashboard/workflows/review").text
        listed = client.get("/dashboard/items", params={"status": "failed"}).text
        graph = client.get("/dashboard/workflows/review/graph.json").json()
    assert (
        '<a href="/dashboard/items?workflow=review&amp;status=failed"><span class=""'
        ' data-figure="review/failed" data-tone="failed">2</span></a>'
    ) in board
    assert (
        '<a href="/dashboard/items?workflow=review&amp;state=intake&amp;status=failed">'
        '<span class="" data-figure="review/intake/failed" data-tone="failed">2</span></a>'
    ) in flow
    # The graph marks them; intake has no alert rule, so no alert level either.
    intake = next(node for node in graph["nodes"] if node["id"] == "intake")
    assert (intake["count"], intake["failed"], intake["severity"]) == (2, 2, None)
    assert listed.count("condition: condition `intake.vaule &lt; 90`") == 2


def test_a_redrive_into_the_same_defect_answers_409_and_changes_nothing(broken: Server) -> None:
    with broken.client("operator") as operator:
        before = _history(operator, "order-0")

        def redrive() -> httpx.Response:
            with broken.client("operator") as own:  # two operators at once
                return own.post("/api/items/review/order-0/redrive", json={"reason": "again"})

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda _: redrive(), range(2)))
        for answer in answers:
            assert answer.status_code == 409, answer.text
            body = answer.json()
            assert body["error"] == "invalid_event"
            assert "would fail again in state 'intake'" in body["message"]
            assert "(condition: condition `intake.vaule < 90`" in body["message"]
        assert _history(operator, "order-0") == before
        bulk = operator.post(
            "/api/bulk",
            json={"operation": "retry", "reason": "again", "status": "failed", "dry_run": False},
        ).json()
        assert (bulk["matched"], bulk["changed"]) == (2, 0)
        assert {s["key"] for s in bulk["skipped"]} == {"order-0", "order-1"}
        assert all("would fail again" in s["reason"] for s in bulk["skipped"])
        assert _history(operator, "order-0") == before
        item = operator.get("/api/items/review/order-0").json()
        assert item["status"] == "failed"
        assert item["failure"]["kind"] == "condition"
        moved = operator.post(
            "/api/items/review/order-0/redrive", json={"reason": "by hand", "to": "approved"}
        )
        assert moved.status_code == 200, moved.text
        assert (moved.json()["state"], moved.json()["status"]) == ("approved", "done")
    assert stuck_items(broken.store_url) == []
