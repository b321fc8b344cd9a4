"""Any key reaches its own item over the live API, and acting on one never changes another.

Keys are user data: ``inv%41`` must not reach ``invA`` once decoded twice, ``a/b`` must be
reachable, and ``?`` or ``#`` must not cut the path short.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from .conftest import Server, stuck_items

# Each pair: a hostile key, and the key it would reach if decoded or split wrongly.
HOSTILE = ["inv%41", "a?b", "a/b", "a#b", "%2F", "naïve ключ", "x/history"]
BYSTANDERS = ["invA", "a", "b", "/", "x"]


def url(key: str, tail: str = "") -> str:
    return f"/api/items/review/{quote(key, safe='')}{tail}"


@pytest.fixture
def keyed(server: Server) -> Server:
    with server.client("operator") as ops:
        started = ops.post(
            "/api/items/batch",
            json={
                "workflow": "review",
                "items": [{"key": k, "data": {"amount": 50}} for k in HOSTILE + BYSTANDERS],
            },
        )
        assert started.json()["created"] == len(HOSTILE + BYSTANDERS), started.text
    return server


def test_every_key_reaches_its_own_item(keyed: Server) -> None:
    with keyed.client("viewer") as viewer:
        for key in HOSTILE + BYSTANDERS:
            view = viewer.get(url(key))
            assert view.status_code == 200, (key, view.text)
            assert view.json()["key"] == key
            history = viewer.get(url(key, "/history"))
            assert history.status_code == 200 and history.json()[0]["event"] == "start", key


def test_acting_on_a_hostile_key_changes_that_item_only(keyed: Server) -> None:
    with keyed.client("operator") as ops:
        for key in HOSTILE:
            moved = ops.post(url(key, "/redrive"), json={"to": "rejected", "reason": "test"})
            assert moved.status_code == 200, (key, moved.text)
            assert moved.json()["key"] == key and moved.json()["state"] == "rejected"
        for key in BYSTANDERS:
            assert ops.get(url(key)).json()["state"] in ("intake", "human_review"), key
        refused = ops.post(url("a/b", "/events"), json={"name": "approve"})
        assert refused.status_code == 409 and "'a/b'" in refused.json()["message"]
    assert stuck_items(keyed.store_url) == []
