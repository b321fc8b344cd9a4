"""Versions through the real service, on both stores: listed with their items, and migrated.

The service holds review@1 (items waiting in a human task) and review@2, which renames the
review state and declares the mapping. A redrive moves one item onto v2, the migrate endpoint
the rest, in a dry run first; the board shows both versions.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from actions.conftest import registry
from service.conftest import REVIEW_YAML, Server, login_csrf, run_server, stuck_items
from statewise.definition import loads
from statewise.store.base import Store
from statewise.worker.catalog import Catalog

V2 = (
    REVIEW_YAML.replace("version: 1", "version: 2").replace("human_review", "second_look")
    + "migrations:\n  human_review: second_look\n"
)


def _catalog(hold_v2: bool) -> Callable[[Store], Awaitable[Catalog]]:
    async def load(store: Store) -> Catalog:
        v1 = loads(REVIEW_YAML, file="review.yaml", commands=registry.names())
        v2 = loads(V2, file="review-v2.yaml", commands=registry.names())
        await store.save_workflow(v2, "review-v2.yaml", [])
        return Catalog([v1, v2] if hold_v2 else [v1], registry)

    return load


@pytest.fixture
def both(db: str) -> Iterator[Server]:
    yield from run_server(db, items=3, catalog=_catalog(True))


@pytest.fixture
def only_v1(db: str) -> Iterator[Server]:
    yield from run_server(db, items=1, catalog=_catalog(False))


def _versions(client: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = client.get("/api/workflows")
    assert answer.status_code == 200, answer.text
    return {f"{w['name']}@{w['version']}": w for w in answer.json()}


def test_versions_are_listed_with_their_items_and_migrated_by_an_operator(both: Server) -> None:
    with both.client("viewer") as viewer, both.client("operator") as operator:
        listed = _versions(viewer)
        assert listed["review@1"]["held"] is True and listed["review@2"]["held"] is True
        assert listed["review@1"]["items"]["waiting"] == 3
        assert set(listed["review@2"]["items"].values()) == {0}

        moved = operator.post(
            "/api/items/review/order-0/redrive", json={"reason": "first", "to_version": 2}
        )
        assert moved.status_code == 200, moved.text
        assert (moved.json()["state"], moved.json()["version"]) == ("second_look", 2)

        migrate = "/api/workflows/review/migrate"
        dry = operator.post(migrate, json={"to": 2})
        assert dry.status_code == 200, dry.text
        assert dry.json()["dry_run"] is True
        assert sorted((m["key"], m["from_state"], m["to_state"]) for m in dry.json()["moves"]) == [
            ("order-1", "human_review", "second_look"),
            ("order-2", "human_review", "second_look"),
        ]
        unknown = operator.post(migrate, json={"to": 3})
        assert unknown.status_code == 404
        assert "stored: review@1, review@2" in unknown.json()["message"]
        for bad in ({"to": 0}, {"to": 2**40}, {"to": "two"}, {"to": 2, "map": ["x"]}):
            assert operator.post(migrate, json=bad).status_code == 422, bad
        no_reason = operator.post(migrate, json={"to": 2, "dry_run": False})
        assert no_reason.status_code == 422 and "reason" in no_reason.json()["message"]
        bad_map = operator.post(migrate, json={"to": 2, "map": {"human_review": "nowhere"}})
        assert bad_map.status_code == 422 and "no state 'nowhere'" in bad_map.json()["message"]
        assert _versions(viewer)["review@1"]["items"]["waiting"] == 2

        done = operator.post(migrate, json={"to": 2, "dry_run": False, "reason": "renamed"})
        assert done.status_code == 200, done.text
        assert sorted(m["key"] for m in done.json()["moves"]) == ["order-1", "order-2"]
        assert done.json()["left"] == []
        listed = _versions(viewer)
        assert listed["review@2"]["items"]["waiting"] == 3
        assert set(listed["review@1"]["items"].values()) == {0}
        tasks = viewer.get("/api/tasks").json()
        assert sorted(t["state"] for t in tasks if t["status"] == "open") == ["second_look"] * 3
        history = viewer.get("/api/items/review/order-1/history").json()
        assert history[-1]["event"] == "migrated" and history[-1]["actor"].endswith("operator")
    assert stuck_items(both.store_url) == []


def test_the_board_lists_each_version_with_its_items(both: Server) -> None:
    with both.client("operator") as operator:
        operator.post("/api/items/review/order-0/redrive", json={"reason": "r", "to_version": 2})
    with httpx.Client(base_url=both.url) as client:
        csrf = login_csrf(client)
        client.post("/dashboard/login", data={"token": both.tokens["viewer"], "csrf": csrf})
        board = client.get("/dashboard").text
        flow = client.get("/dashboard/workflows/review").text
    assert "v2 · 2 versions" in board
    assert 'data-figure="review/tasks">3<' in board  # each version's own human states
    assert 'human_review</a> <span class="muted">(older versions only)</span>' in flow
    assert 'data-figure="review/human_review/count">2<' in flow
    assert 'data-figure="review/second_look/count">1<' in flow
    rows = dict(re.findall(r'<tr data-version="(\d+)"><td>review@\d+</td>(.*?)</tr>', flow))
    assert 'data-figure="review@1/waiting">2<' in rows["1"]  # two still wait on v1
    assert 'data-figure="review@2/waiting">1<' in rows["2"]


def test_a_version_the_service_does_not_hold_is_not_migrated_onto(only_v1: Server) -> None:
    with only_v1.client("operator") as operator:
        listed = _versions(operator)
        assert listed["review@2"]["held"] is False
        answer = operator.post("/api/workflows/review/migrate", json={"to": 2})
        assert answer.status_code == 404
        assert "review@2 is stored but this service cannot run it" in answer.json()["message"]
        assert "--commands" in answer.json()["message"]


def test_items_are_listed_by_version_as_on_the_command_line(both: Server) -> None:
    """`GET /api/items?workflow=review@2` filters by version; an unknown one is a 404."""
    with both.client("operator") as operator:
        operator.post("/api/items/review/order-0/redrive", json={"reason": "r", "to_version": 2})
    with both.client("viewer") as viewer:
        on_v2 = viewer.get("/api/items", params={"workflow": "review@2"})
        assert on_v2.status_code == 200, on_v2.text
        assert [(i["key"], i["version"]) for i in on_v2.json()["items"]] == [("order-0", 2)]
        assert on_v2.json()["total"] == 1
        on_v1 = viewer.get("/api/items", params={"workflow": "review@1"}).json()
        assert sorted(i["key"] for i in on_v1["items"]) == ["order-1", "order-2"]
        assert viewer.get("/api/items", params={"workflow": "review"}).json()["total"] == 3
        unknown = viewer.get("/api/items", params={"workflow": "review@7"})
        assert unknown.status_code == 404
        assert "stored: review@1, review@2" in unknown.json()["message"]
        for bad in ("review@x", "review@-1", "@2", "review@99999999999999999999"):
            answer = viewer.get("/api/items", params={"workflow": bad})
            assert answer.status_code in (404, 422), (bad, answer.text)
