"""Versions deployed while the service runs are taken up without a restart, on both stores.

The service starts holding review@1 with two items waiting in its human task and reloads its
catalog from the test registry's module. `statewise deploy` then stores review@2 (the review
state renamed, with the mapping), and the items are moved onto it and finish, with no
restart: through the API right after the deploy (the request takes the version up), or by
`statewise migrate --no-wait` in another process, whose new work the service's runner claims
once its periodic refresh took v2 up. review@3 needs a command no module here registers: it
is reported, not held, and an item started on it by another writer keeps its work,
unclaimed and not failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.conftest import REVIEW_YAML, Server, run_server, stuck_items
from statewise.definition import loads
from statewise.engine.item import Item, ItemStatus
from statewise.store import Store, open_store
from statewise.worker.catalog import Catalog, load_catalog
from statewise.worker.writer import ItemWriter
from test_cli import invoke

V2 = (
    REVIEW_YAML.replace("version: 1", "version: 2").replace("human_review", "second_look")
    + "migrations:\n  human_review: second_look\n"
)
V3 = REVIEW_YAML.replace("version: 1", "version: 3").replace("command: score", "command: nowhere")


async def _load(store: Store) -> Catalog:
    """As `statewise serve --commands actions.conftest` loads it."""
    return await load_catalog(store, ["actions.conftest"])


@pytest.fixture
def live(db: str) -> Iterator[Server]:
    """A service that refreshes only when a request asks for a version it does not hold."""
    yield from run_server(db, items=2, reload=_load, refresh_every=None)


@pytest.fixture
def polling(db: str) -> Iterator[Server]:
    """A service that also looks for new versions every 0.1 s."""
    yield from run_server(db, items=2, reload=_load, refresh_every=0.1)


def _deploy(tmp_path: Path, server: Server, name: str, source: str) -> None:
    (tmp_path / name).write_text(source)
    code, out = invoke("deploy", tmp_path / name, "--db", server.store_url)
    assert code == 0, out


def _versions(client: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = client.get("/api/workflows")
    assert answer.status_code == 200, answer.text
    return {f"{w['name']}@{w['version']}": w for w in answer.json()}


def _until(check: Any, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def test_a_version_deployed_while_serving_is_migrated_onto_and_run(
    live: Server, tmp_path: Path
) -> None:
    with live.client("operator") as operator, live.client("reviewer") as reviewer:
        _deploy(tmp_path, live, "v2.yaml", V2)
        # At once: a request for a version not held yet takes it up before answering.
        moved = operator.post(
            "/api/items/review/order-0/redrive", json={"reason": "fixed", "to_version": 2}
        )
        assert moved.status_code == 200, moved.text
        assert (moved.json()["state"], moved.json()["version"]) == ("second_look", 2)
        done = operator.post(
            "/api/workflows/review/migrate", json={"to": 2, "dry_run": False, "reason": "renamed"}
        )
        assert done.status_code == 200, done.text
        assert [m["key"] for m in done.json()["moves"]] == ["order-1"]
        assert _versions(operator)["review@2"]["held"] is True
        tasks = [t for t in reviewer.get("/api/tasks").json() if t["status"] == "open"]
        assert sorted(t["state"] for t in tasks) == ["second_look", "second_look"]
        for task in tasks:
            decided = reviewer.post(
                f"/api/tasks/{task['id']}/decide",
                json={"outcome": "approve", "data": {"risk": "low"}},
            )
            assert decided.status_code == 200, decided.text

        def finished() -> bool:
            items = [operator.get(f"/api/items/review/order-{n}").json() for n in range(2)]
            return all(i["status"] == "done" and i["state"] == "approved" for i in items)

        _until(finished)  # v2's `ship` ran in the service's runner, claimed for v2
        started = operator.post("/api/items", json={"workflow": "review", "key": "new", "data": {}})
        assert started.status_code == 201 and started.json()["item"]["version"] == 2
    assert stuck_items(live.store_url) == []


def test_a_version_whose_command_is_missing_is_reported_and_its_work_left(
    live: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="statewise.worker")
    with live.client("operator") as operator:
        _deploy(tmp_path, live, "v3.yaml", V3)
        orphan = asyncio.run(_start_elsewhere(live.store_url))
        assert orphan.state == "intake"
        listed = _until(lambda: _versions(operator).get("review@3") and _versions(operator))
        assert listed["review@3"]["held"] is False and listed["review@1"]["held"] is True
        refused = operator.post("/api/workflows/review/migrate", json={"to": 3})
        assert refused.status_code == 404
        message = refused.json()["message"]
        assert "review@3 is stored but this service cannot run it" in message
        assert "nowhere" in message and "--commands" in message
        _until(lambda: any("skips review@3" in r.getMessage() for r in caplog.records))
        time.sleep(1.0)  # several refreshes and outbox polls: the work must still be there
        item = operator.get("/api/items/review/elsewhere").json()
        assert (item["status"], item["state"], item["version"]) == ("active", "intake", 3)
        history = operator.get("/api/items/review/elsewhere/history").json()
        assert [h["event"] for h in history] == ["start"]
    assert stuck_items(live.store_url) == []


def test_the_runner_takes_up_a_version_another_process_migrated_items_onto(
    polling: Server, tmp_path: Path
) -> None:
    _deploy(tmp_path, polling, "v2.yaml", V2)
    code, out = invoke(
        "migrate", "review", "--to", "2", "--map", "human_review=ship", "--reason", "ship now",
        "--no-wait", "--db", polling.store_url, "--commands", "actions.conftest",
    )  # fmt: skip
    assert code == 0, out
    with polling.client("viewer") as viewer:  # reading items never refreshes: the rounds do

        def shipped() -> bool:
            items = [viewer.get(f"/api/items/review/order-{n}").json() for n in range(2)]
            return all((i["status"], i["state"], i["version"]) == ("done", "approved", 2)
                       for i in items)  # fmt: skip

        _until(shipped)
    assert stuck_items(polling.store_url) == []


async def _start_elsewhere(url: str) -> Item:
    """Start an item on review@3 as a process holding that version's commands would."""
    store = open_store(url)
    try:
        v3 = loads(V3, file="v3.yaml")
        await ItemWriter(store, [v3]).start(v3, [("elsewhere", {"amount": 10})])
        item = await store.get_item("review", "elsewhere")
        assert item.status is ItemStatus.ACTIVE
        return item
    finally:
        await store.close()
