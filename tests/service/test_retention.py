"""Pruning through the API (admins only) and by the service's own rounds of the policies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from actions.conftest import REVIEW_YAML

from .conftest import Server, run_server, stuck_items

KEYS = ["a/b?%", "naïve-日本"]


@pytest.fixture
def service(db: str) -> Iterator[Server]:
    yield from run_server(db, items=1)


def history(client: httpx.Client, key: str) -> list[dict[str, object]]:
    answer = client.get(f"/api/items/review/{quote(key, safe='')}/history")
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, object]] = answer.json()
    return rows


def finish(client: httpx.Client, keys: list[str]) -> None:
    """Start ``keys`` on a path straight to `approved` and wait until they are done."""
    for key in keys:
        body = {"workflow": "review", "key": key, "data": {"amount": 95}}
        assert client.post("/api/items", json=body).status_code == 201
    deadline = time.time() + 20
    for key in keys:
        while client.get(f"/api/items/review/{quote(key, safe='')}").json()["status"] != "done":
            assert time.time() < deadline, f"{key} never finished"
            time.sleep(0.05)


def test_admins_prune_by_age_dry_run_first_and_nothing_else_is_touched(service: Server) -> None:
    with (
        service.client("admin") as admin,
        service.client("operator") as ops,
        service.client("viewer") as viewer,
    ):
        finish(ops, KEYS)
        waiting = history(ops, "order-0")
        time.sleep(0.4)
        body = {"finished_before": "0.3s", "what": "history"}
        assert viewer.post("/api/prune", json=body).status_code == 403
        assert ops.post("/api/prune", json=body).status_code == 403
        for bad in ("-3d", "abc", 0, True, 1.7976931348623157e308, "4000000d"):  # fuzzed: a 500
            refused = admin.post("/api/prune", json={"finished_before": bad})
            assert refused.status_code == 422 and refused.json()["error"], refused.text

        dry = admin.post("/api/prune", json=body)

        assert dry.status_code == 200, dry.text
        assert dry.json()["dry_run"] is True and dry.json()["total"]["items"] == len(KEYS)
        assert all(len(history(ops, key)) > 1 for key in KEYS)
        done = admin.post("/api/prune", json={**body, "dry_run": False}).json()
        assert done["total"] == dry.json()["total"] and done["total"]["bytes"] > 0
        for key in KEYS:
            (row,) = history(ops, key)
            assert row["event"] == "history_pruned" and row["actor"] == "token:admin"
        assert history(ops, "order-0") == waiting  # waiting for a person: never pruned
    assert stuck_items(service.store_url) == []


def test_the_service_applies_the_policies_by_itself(tmp_path: Path) -> None:
    kept = REVIEW_YAML.replace("version: 1\n", "version: 1\nretention: {history: 0.5s}\n")
    url = f"sqlite:///{tmp_path / 'service.sqlite'}"
    for server in run_server(url, items=1, workflow=kept, prune_every=0.2):
        with server.client("operator") as ops:
            finish(ops, KEYS)
            deadline = time.time() + 10
            while any(len(history(ops, key)) > 1 for key in KEYS):
                assert time.time() < deadline, "the policy never pruned the finished items"
                time.sleep(0.1)
            (row,) = history(ops, KEYS[0])
            assert row["actor"] == "retention" and "retention policy history: 500ms" in str(
                row["note"]
            )
            assert len(history(ops, "order-0")) > 1
