"""One open task of a workflow version the service cannot load never breaks the inbox.

The store holds review@1, which the service loads, and review@2, whose command module is
gone on the service's host (``statewise serve`` skips it at start). Its task is listed,
flagged with why; deciding it is refused with a clear 409; nothing about it changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actions.conftest import REVIEW_YAML, registry
from statewise.contract import CommandContext, CommandRegistry
from statewise.definition import loads
from statewise.store import Store, open_store
from statewise.worker.catalog import Catalog, load_catalog
from statewise.worker.runner import Runner

from .conftest import Server, run_server

GONE_MODULE = "statewise_test_module_that_is_gone"
REVIEW_V2 = REVIEW_YAML.replace("version: 1", "version: 2").replace(
    "command: score", "command: legacy_score"
)


async def _legacy_score(call: CommandContext) -> dict[str, Any]:
    return {"value": call.context["amount"]}


async def _start_on_v2(store_url: str) -> None:
    """Start an item on review@2 where its module still exists, up to its human task."""
    legacy = CommandRegistry()
    legacy.merge(registry)
    legacy.register("legacy_score", _legacy_score)
    store = open_store(store_url)
    try:
        review2 = loads(REVIEW_V2, file="review.yaml", commands=legacy.names())
        await store.save_workflow(review2, "review.yaml", [GONE_MODULE])
        runner = Runner(store, [review2], legacy)
        await runner.start(review2, [("old-1", {"amount": 50})])
        await runner.run(max_wait=0)
        assert (await store.get_item("review", "old-1")).state == "human_review"
    finally:
        await store.close()


async def _as_served(store: Store) -> Catalog:
    """What ``statewise serve --commands actions.conftest`` holds: review@1 only."""
    return await load_catalog(store, ["actions.conftest"])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path / 'unloadable.sqlite'}"
    asyncio.run(_start_on_v2(url))
    yield from run_server(url, items=2, workers=False, catalog=_as_served)


def test_the_inbox_lists_an_unloadable_task_flagged_and_refuses_to_decide_it(
    server: Server,
) -> None:
    with server.client("reviewer") as reviewer:
        answer = reviewer.get("/api/tasks")
        assert answer.status_code == 200, answer.text
        tasks = {task["key"]: task for task in answer.json()}
        assert set(tasks) == {"order-0", "order-1", "old-1"}
        assert tasks["order-0"]["loadable"] is True and tasks["order-0"]["outcomes"]
        old = tasks["old-1"]
        assert old["loadable"] is False and old["outcomes"] == []
        assert "review@2" in old["problem"] and GONE_MODULE in old["problem"]
        assert reviewer.get(f"/api/tasks/{old['id']}").json()["loadable"] is False
        for path, body in (("decide", {"outcome": "approve", "data": {"risk": "low"}}),
                           ("claim", None)):  # fmt: skip
            refused = reviewer.post(f"/api/tasks/{old['id']}/{path}", json=body)
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"] == "task"
            assert "not loadable here" in refused.json()["message"]
        after = reviewer.get(f"/api/tasks/{old['id']}").json()
        assert after["status"] == "open" and after["claimed_by"] is None
        item = reviewer.get("/api/items/review/old-1").json()
        assert item["state"] == "human_review" and item["status"] == "waiting"


def test_the_dashboard_inbox_shows_it_and_still_decides_the_others(server: Server) -> None:
    from dashboard.browser import browser_page, screenshot
    from dashboard.test_pages import _sign_in

    for page in browser_page():
        _sign_in(page, server, "reviewer")
        page.goto(f"{server.url}/dashboard/inbox")
        flagged = page.locator("tr[data-task]", has_text="old-1")
        assert "not loadable here" in flagged.inner_text()
        assert flagged.locator("form").count() == 0  # nothing to claim it with
        screenshot(page, "inbox-unloadable")
        page.locator("tr[data-task]", has_text="order-0").locator("a.task-link").click()
        page.locator("select[name='field.risk']").select_option("low")
        page.click("button:has-text('Approve')")
        page.wait_for_selector("#confirmation")
        deadline = time.time() + 10
        with server.client("viewer") as viewer:
            while viewer.get("/api/items/review/order-0").json()["state"] == "human_review":
                assert time.time() < deadline
                time.sleep(0.1)


def test_the_cli_task_list_shows_it_and_task_decide_refuses_it(server: Server) -> None:
    from typer.testing import CliRunner

    from statewise.cli import app

    db = ["--db", server.store_url, "--commands", "actions.conftest"]
    listed = CliRunner().invoke(app, ["task", "list", *db], env={"COLUMNS": "400"})
    assert listed.exit_code == 0, listed.output
    assert "old-1" in listed.output and "not loadable here" in listed.output
    assert "approve, reject" in listed.output  # the loadable tasks keep their outcomes
    old = next(line for line in listed.output.splitlines() if "old-1" in line).split("\t")[0]
    decided = CliRunner().invoke(app, ["task", "decide", old, "approve", *db])
    assert decided.exit_code == 1 and "not loadable here" in decided.output
