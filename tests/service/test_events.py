"""The events route: bad event data is a 409 in the service's error shape, and changes nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from actions.conftest import PAYMENT_YAML
from statewise.store import open_store

from .conftest import Server, login_csrf, run_server

EVENTS = "/api/items/payment/order-0/events"
REFUSED = [
    ("pay", {"amount": "abc"}, "its data does not fit the event's schema (amount: "),
    ("pay", {}, "its data does not fit the event's schema (data: "),
    ("tip", {"amount": "abc"}, "condition `event.data.amount > 10` failed"),
    ("tip", {"k%/?#ü": 1}, "condition `event.data.amount > 10`"),
]


@pytest.fixture
def payments(db: str) -> Iterator[Server]:
    """The live service, with its own worker, over items waiting in `checkout`."""
    yield from run_server(db, items=2, workflow=PAYMENT_YAML)


def _stuck(server: Server) -> list[Any]:
    async def read() -> list[Any]:
        store = open_store(server.store_url)
        try:
            return list(await store.stuck_items())
        finally:
            await store.close()

    return asyncio.run(read())


def _settled(client: httpx.Client, key: str, state: str) -> None:
    deadline = time.time() + 20
    while client.get(f"/api/items/payment/{key}").json()["state"] != state:
        assert time.time() < deadline, f"{key} never reached {state}"
        time.sleep(0.05)


def test_bad_event_data_is_refused_with_409_and_changes_nothing(payments: Server) -> None:
    with payments.client("operator") as ops:
        item = ops.get("/api/items/payment/order-0").json()
        history = ops.get("/api/items/payment/order-0/history").json()
        assert item["state"] == "checkout"

        for name, data, why in REFUSED:
            answer = ops.post(EVENTS, json={"name": name, "data": data})
            assert answer.status_code == 409, answer.text
            body = answer.json()
            assert set(body) == {"error", "message"} and body["error"] == "invalid_event"
            assert body["message"].startswith(f"event {name!r} for item 'order-0' was refused")
            assert why in body["message"] and body["message"].endswith("nothing changed")

        assert ops.get("/api/items/payment/order-0").json() == item
        assert ops.get("/api/items/payment/order-0/history").json() == history
        assert _stuck(payments) == []

        moved = ops.post(EVENTS, json={"name": "pay", "data": {"amount": 20}})
        assert moved.status_code == 200, moved.text
        _settled(ops, "order-0", "paid")
        assert _stuck(payments) == []


def test_refused_events_racing_a_good_one_leave_one_move_and_nothing_stuck(
    payments: Server,
) -> None:
    headers = {"Authorization": f"Bearer {payments.tokens['operator']}"}

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=payments.url, headers=headers, timeout=30) as api:
            bodies = [{"name": n, "data": d} for n, d, _ in REFUSED]
            bodies.insert(2, {"name": "pay", "data": {"amount": 20}})
            return list(await asyncio.gather(*(api.post(EVENTS, json=b) for b in bodies)))

    answers = [a.status_code for a in asyncio.run(race())]
    assert sorted(answers) == [200] + [409] * len(REFUSED), answers
    assert _stuck(payments) == []
    with payments.client("operator") as ops:
        external = [
            (row["event"], row["to_state"])
            for row in ops.get("/api/items/payment/order-0/history").json()
            if row["event_kind"] == "external"
        ]
        assert external == [("pay", "ship")]
        _settled(ops, "order-0", "paid")
    assert _stuck(payments) == []


def test_an_events_data_and_the_guard_it_failed_show_in_the_api_and_on_the_item_page(
    payments: Server,
) -> None:
    reason = "paid <b>half</b> now, ключ \x00 ✓"
    with payments.client("operator") as ops:
        moved = ops.post(EVENTS, json={"name": "pay", "data": {"amount": 5, "reason": reason}})
        assert moved.status_code == 200, moved.text
        _settled(ops, "order-0", "small")
        history = ops.get("/api/items/payment/order-0/history").json()
    scored = next(row for row in history if row.get("command") == "score")
    assert scored["output"] == {"value": 50} and scored["visit"] == 1 and "duration" in scored
    paid = history[-1]
    assert (paid["event"], paid["condition"], paid["output"]) == (
        "pay", "else", {"amount": 5, "reason": reason}
    )  # fmt: skip
    assert paid["rejected"] == [
        {"condition": "event.data.amount > 10", "values": {"event.data.amount": 5}}
    ]
    assert _stuck(payments) == []

    with httpx.Client(base_url=payments.url) as browser:
        csrf = login_csrf(browser)
        browser.post("/dashboard/login", data={"token": payments.tokens["viewer"], "csrf": csrf})
        page = browser.get("/dashboard/items/payment/order-0").text
    assert "because: paid &lt;b&gt;half&lt;/b&gt; now, ключ ✓" in page  # one line, no NUL
    assert "not <code>event.data.amount &gt; 10</code> event.data.amount=5" in page
    assert "<details><summary>{&#34;value&#34;:50}</summary>" in page and "took " in page
    assert "<b>half</b>" not in page and "ключ \\u0000 ✓" in page  # the full output, escaped
