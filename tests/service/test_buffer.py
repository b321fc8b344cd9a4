"""The events route answers whether an event was taken or kept, and until when."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from actions.test_buffer import ORDER_YAML

from .conftest import Server, login_csrf, run_server, stuck_items


@pytest.fixture
def orders(db: str) -> Iterator[Server]:
    """The live service, with its own worker, over items waiting in `approval`."""
    yield from run_server(db, items=1, workflow=ORDER_YAML)


def _settled(client: httpx.Client, state: str) -> None:
    deadline = time.time() + 20
    while client.get("/api/items/order/order-0").json()["state"] != state:
        assert time.time() < deadline, f"order-0 never reached {state}"
        time.sleep(0.05)


def test_an_early_event_is_answered_buffered_until_and_delivered_later(orders: Server) -> None:
    events = "/api/items/order/order-0/events"
    with orders.client("operator") as ops:
        sent_at = time.time()
        kept = ops.post(events, json={"name": "paid", "data": {"amount": 20, "ref": "ü/%?"}})
        assert kept.status_code == 200, kept.text
        body = kept.json()
        assert (body["outcome"], body["state"]) == ("buffered", "approval")
        assert sent_at + 24 * 3600 <= body["buffered_until"] <= time.time() + 24 * 3600
        assert body["message"].startswith("paid buffered until ") and " UTC: " in body["message"]
        assert stuck_items(orders.store_url) == []
        (kept,) = ops.get("/api/items/order/order-0").json()["pending"]["buffered"]
        assert (kept["name"], kept["expires_at"]) == ("paid", body["buffered_until"])
        with httpx.Client(base_url=orders.url) as browser:
            csrf = login_csrf(browser)
            token = orders.tokens["viewer"]
            browser.post("/dashboard/login", data={"token": token, "csrf": csrf})
            page = browser.get("/dashboard/items/order/order-0").text
        assert "buffered event paid from token:operator, kept until " in page

        refused = ops.post(events, json={"name": "paid", "data": {"amount": "x"}})
        assert refused.status_code == 409 and "does not fit" in refused.json()["message"]

        approved = ops.post(events, json={"name": "approve"})
        assert approved.status_code == 200, approved.text
        assert approved.json()["outcome"] == "accepted"
        assert approved.json()["buffered_until"] is None
        _settled(ops, "done")
        rows = ops.get("/api/items/order/order-0/history").json()
        paid = [(r["event_kind"], r["actor"], r["output"]) for r in rows if r["event"] == "paid"]
        assert paid == [
            ("buffered", "token:operator", {"amount": 20, "ref": "ü/%?"}),
            ("buffer_delivered", "token:operator", {"amount": 20, "ref": "ü/%?"}),
        ]
    assert stuck_items(orders.store_url) == []
