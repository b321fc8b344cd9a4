"""The inbox in real Chromium with 2,000 open tasks: filter, claim from the list, open a task,
decide with a validation error that keeps every typed value, decide again, see it confirmed.

Screenshots at 1440 px and 390 px wide go to tests/dashboard/artifacts/ for a person to look at.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from service.conftest import Server, run_server, stuck_items
from service.test_inbox_pages import INBOX_YAML, TYPED

from .browser import ARTIFACTS, browser_page, screenshot
from .test_pages import _sign_in

TASKS = 2000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """2,000 tasks; a third moved to a second queue, some overdue, some soon due (for the SLA)."""
    path = tmp_path_factory.mktemp("inbox") / "inbox.sqlite"
    for server in run_server(f"sqlite:///{path}", items=TASKS, workflow=INBOX_YAML):
        with closing(sqlite3.connect(path)) as db, db:
            db.execute("UPDATE tasks SET queue = 'refunds' WHERE id % 3 = 0")
            db.execute("UPDATE tasks SET due_at = due_at - 7200 WHERE id % 7 = 0")
            db.execute("UPDATE tasks SET due_at = due_at - 3000 WHERE id % 7 = 1")
            db.execute("UPDATE tasks SET due_at = NULL WHERE id % 11 = 0")
        yield server


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    yield from browser_page()


def _no_sideways_scroll(page: Any) -> None:
    """Nothing inside <main> is wider than the viewport (the shared header is the board's)."""
    wide = page.evaluate(
        "() => [...document.querySelectorAll('main *')]"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
        ".map(e => e.tagName + '.' + e.className)"
    )
    assert wide == [], wide


def test_filter_claim_open_and_decide_with_a_refusal_that_keeps_the_values(
    page: Any, server: Server
) -> None:
    page.set_viewport_size({"width": 1440, "height": 1000})
    _sign_in(page, server, "reviewer")
    page.goto(f"{server.url}/dashboard/inbox")
    assert page.inner_text("#range") == "1\u201350 of 2,000 open tasks"
    assert page.locator("tr[data-task]").count() == 50
    assert page.locator("tr.sla-row-overdue").count() > 0  # due first: the overdue lead
    screenshot(page, "inbox-1440")

    page.select_option("#f-queue", "refunds")
    page.select_option("#f-sort", "-due")  # latest due first: a task not yet overdue
    page.check("#f-unclaimed")
    page.click(".inbox-filters button.primary")
    page.wait_for_url("**/dashboard/inbox?queue=refunds&unclaimed=1&sort=-due")
    assert page.inner_text("#range") == "1\u201350 of 666 open tasks"
    queues = page.locator("tr[data-task] td:nth-child(3)").all_inner_texts()
    assert set(queues) == {"refunds"}
    page.click("a[rel=next]")
    page.wait_for_url("**/dashboard/inbox?queue=refunds&unclaimed=1&sort=-due&page=2")
    assert page.inner_text("#range") == "51\u2013100 of 666 open tasks"

    row = page.locator("tr[data-task]").first
    task_id = row.get_attribute("data-task")
    row.locator("button:has-text('Claim')").click()
    page.wait_for_url("**/dashboard/inbox?queue=refunds&unclaimed=1&sort=-due&page=2")
    assert page.locator(f"#task-{task_id}").count() == 0  # claimed: no longer unclaimed
    page.goto(f"{server.url}/dashboard/inbox?mine=1&queue=refunds")
    mine = page.locator(f"#task-{task_id}")
    assert mine.locator("td:nth-child(5)").inner_text() == "you"
    assert mine.locator("button").inner_text() == "Release"

    mine.locator("a.task-link").click()
    page.wait_for_selector(".subject")
    assert "intake.value" in page.inner_text(".subject")
    assert page.input_value("[name='field.seen']") == "50"  # x-context: amount
    screenshot(page, "task-1440")
    page.fill("[name='field.reply']", TYPED)
    page.fill("[name='field.count']", "0")
    page.fill("#comment", "first try")
    page.click("button:has-text('Let it ship')")
    page.wait_for_selector(".field-error")
    assert page.input_value("[name='field.reply']") == TYPED
    assert page.input_value("[name='field.count']") == "0"
    assert page.input_value("#comment") == "first try"
    risk = page.locator(".field[data-field=risk]")
    assert risk.locator(".field-error").inner_text() == "this field is required"
    assert risk.locator("select").get_attribute("aria-invalid") == "true"
    count = page.locator(".field[data-field=count]")
    assert "less than the minimum of 1" in count.locator(".field-error").inner_text()
    assert page.locator(".field[data-field=reply] .field-error").count() == 0
    screenshot(page, "task-refused-1440")

    page.select_option("[name='field.risk']", "low")
    page.fill("[name='field.count']", "2")
    page.click("button:has-text('Let it ship')")
    page.wait_for_selector("#confirmation")
    assert page.inner_text("#confirmation").startswith("Decided: Let it ship — item order-")
    screenshot(page, "task-decided-1440")
    page.click("#confirmation a.back-link")
    page.wait_for_url("**/dashboard/inbox?queue=refunds&mine=1")
    assert page.locator(f"#task-{task_id}").count() == 0
    assert stuck_items(server.store_url) == []


def test_at_390_px_the_list_and_a_task_fit_the_phone(page: Any, server: Server) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    _sign_in(page, server, "reviewer")
    page.goto(f"{server.url}/dashboard/inbox")
    screenshot(page, "inbox-390")
    page.screenshot(path=str(ARTIFACTS / "inbox-390-first-screen.png"))  # what a phone shows
    _no_sideways_scroll(page)
    page.locator("tr[data-task] a.task-link").first.click()
    page.wait_for_selector(".task-form")
    screenshot(page, "task-390")
    _no_sideways_scroll(page)
