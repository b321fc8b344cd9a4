"""The dashboard in real headless Chromium: sign in, decide a task, redrive, act in bulk.

Each test saves a screenshot under tests/dashboard/artifacts/ for a person to look at.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from actions.conftest import REVIEW_YAML, registry
from service.conftest import Server, login_csrf, run_server
from statewise.definition import loads
from statewise.store import open_store
from statewise.worker.runner import Runner

from .browser import browser_page, screenshot


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from run_server(f"sqlite:///{tmp_path / 'dash.sqlite'}", items=4)


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    yield from browser_page()


def _off_the_loop(work: Any) -> None:
    """Run a coroutine on a thread of its own: Playwright's sync API holds this thread's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, work).result()


def _sign_in(page: Any, server: Server, role: str) -> None:
    page.goto(f"{server.url}/dashboard")
    assert page.url.endswith("/dashboard/login")
    page.fill("#token", server.tokens[role])
    page.click("button.primary")
    page.wait_for_url(f"{server.url}/dashboard")


def test_a_reviewer_decides_a_task_through_its_form(page: Any, server: Server) -> None:
    _sign_in(page, server, "reviewer")
    page.goto(f"{server.url}/dashboard/inbox")
    first = page.locator("tr[data-task]").first
    task_id = first.get_attribute("data-task")
    first.locator("a.task-link").click()
    page.locator("select[name='field.risk']").select_option("low")
    page.fill("#comment", "checked the invoice")
    page.click("button[value=approve]")
    page.wait_for_selector("#confirmation")
    page.click("#confirmation a.back-link")
    page.wait_for_url(f"{server.url}/dashboard/inbox")
    assert page.locator(f"#task-{task_id}").count() == 0
    with server.client("viewer") as viewer:
        task = viewer.get(f"/api/tasks/{task_id}").json()
    assert (task["status"], task["decided_by"], task["comment"], task["data"]) == (
        "decided", "token:reviewer", "checked the invoice", {"risk": "low"}
    )  # fmt: skip
    page.goto(f"{server.url}/dashboard/items/review/{task['key']}")
    assert "checked the invoice" in page.inner_text("main")
    decided = page.locator("tr", has_text="checked the invoice").locator("details")
    assert not decided.locator("pre").is_visible()  # folded: its summary line only
    decided.locator("summary").click()
    assert decided.locator("pre").is_visible() and '"risk": "low"' in decided.inner_text()
    screenshot(page, "item-timeline")


@pytest.fixture
def api_only(tmp_path: Path) -> Iterator[Server]:
    """A service without workers: the test's own runner plays the worker (SQLite has one)."""
    yield from run_server(f"sqlite:///{tmp_path / 'api.sqlite'}", items=4, workers=False)


def test_an_operator_redrives_an_escalated_item(api_only: Server) -> None:
    server = api_only
    _off_the_loop(_escalate(server.store_url, "order-3"))
    page_of = browser_page()
    page = next(page_of)
    _sign_in(page, server, "operator")
    page.goto(f"{server.url}/dashboard/items/review/order-3")
    assert "overdue" in page.inner_text("main")
    page.select_option("#to", "human_review")
    page.fill("#reason", "customer called back")
    page.click('button:has-text("Redrive")')
    assert page.inner_text("h1") == "Move item order-3 to human_review?"
    page.click('button:has-text("Move to human_review")')
    page.wait_for_url(re.compile(r".*/dashboard/items/review/order-3\?done=move$"))
    assert page.inner_text(".done") == "Moved to human_review."
    text = page.inner_text("main")
    assert "customer called back" in text and "human_review" in text
    with server.client("viewer") as viewer:
        assert viewer.get("/api/items/review/order-3").json()["state"] == "human_review"
    screenshot(page, "redrive")
    page_of.close()


def test_forms_without_the_csrf_token_are_refused(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        csrf = login_csrf(client)
        signed = client.post(
            "/dashboard/login", data={"token": server.tokens["operator"], "csrf": csrf}
        )
        assert signed.status_code == 303 and "httponly" in signed.headers["set-cookie"].lower()
        forged = client.post(
            "/dashboard/items/review/order-0/redrive", data={"to": "rejected", "reason": "x"}
        )
        assert forged.status_code == 403 and "CSRF" in forged.text
    with server.client("viewer") as viewer:
        assert viewer.get("/api/items/review/order-0").json()["state"] == "human_review"


async def _escalate(store_url: str, key: str) -> None:
    """Let the item's task expire, as a worker does once its due time has passed."""
    store = open_store(store_url)
    try:
        review = loads(REVIEW_YAML, file="review.yaml", commands=registry.names())
        await Runner(store, [review], registry, clock=lambda: time.time() + 7200).run(max_wait=0)
        assert (await store.get_item("review", key)).state == "overdue"
    finally:
        await store.close()


def test_an_operator_counts_then_pauses_items_in_bulk(page: Any, server: Server) -> None:
    _sign_in(page, server, "operator")
    page.goto(f"{server.url}/dashboard/bulk")
    page.select_option("#b-workflow", "review")
    page.select_option("#b-state", "human_review")
    page.select_option("#b-op", "pause")
    page.fill("#b-reason", "supplier outage")
    page.click("button:has-text('Count matching items')")
    assert "4 item(s) match" in page.inner_text("main")
    with server.client("viewer") as viewer:
        assert viewer.get("/api/items", params={"status": "paused"}).json()["total"] == 0
    page.click("button:has-text('pause them')")
    assert "4 of 4 item(s) changed" in page.inner_text("main")
    with server.client("viewer") as viewer:
        assert viewer.get("/api/items", params={"status": "paused"}).json()["total"] == 4
    screenshot(page, "bulk")
