"""The board and a workflow's page in real headless Chromium: links, live figures, phones.

Each test saves screenshots under tests/dashboard/artifacts/ for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.conftest import Server, run_server

from .browser import browser_page, screenshot
from .test_pages import _sign_in

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
PAGES = [
    "/dashboard",
    "/dashboard/workflows/review",
    "/dashboard/items",
    "/dashboard/items?workflow=review&state=human_review",
    "/dashboard/items/review/order-0",
    "/dashboard/inbox",
    "/dashboard/bulk",
    "/dashboard/quality",
    "/dashboard/simulate",
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from run_server(f"sqlite:///{tmp_path / 'board.sqlite'}", items=4)


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    yield from browser_page()


def _figure(page: Any, name: str) -> str:
    """The text a live figure shows now."""
    text: str = page.locator(f'[data-figure="{name}"]').inner_text()
    return text


def test_a_state_row_opens_the_item_list_of_that_workflow_and_state(
    page: Any, server: Server
) -> None:
    page.set_viewport_size(DESKTOP)
    _sign_in(page, server, "viewer")
    assert _figure(page, "review/tasks") == "4"
    screenshot(page, "board-1440")
    page.get_by_role("link", name="review", exact=True).click()
    page.wait_for_url(f"{server.url}/dashboard/workflows/review")
    assert _figure(page, "review/human_review/count") == "4"
    assert page.locator('tr[data-state="intake"] td').nth(1).inner_text() == ""  # no rule
    # The graph is laid out in the page (ELK) above the table; each state is a link.
    node = page.locator('figure.workflow-graph a.wg-node[data-state="human_review"]')
    node.wait_for(timeout=20_000)
    assert node.get_attribute("href") == "/dashboard/items?workflow=review&state=human_review"
    assert node.locator("text.wg-count").text_content() == "4 items"
    screenshot(page, "workflow-1440")
    page.locator('tr[data-state="human_review"]').get_by_role("link", name="human_review").click()
    page.wait_for_url(re.compile(r".*/dashboard/items\?workflow=review&state=human_review$"))
    assert page.locator("tbody tr").count() == 4
    assert page.input_value("#workflow") == "review" and page.input_value("#state") == (
        "human_review"
    )


def test_a_number_changes_in_place_when_items_move(page: Any, server: Server) -> None:
    _sign_in(page, server, "viewer")
    page.goto(f"{server.url}/dashboard/workflows/review")
    page.evaluate("() => { window.unreloaded = true; }")  # gone if the page were reloaded
    assert _figure(page, "review/human_review/count") == "4"
    with server.client("operator") as ops:
        started = ops.post(
            "/api/items/batch",
            json={
                "workflow": "review",
                "items": [{"key": f"new-{n}", "data": {"amount": 20}} for n in range(3)],
            },
        )
        assert started.json()["created"] == 3, started.text
    page.wait_for_function(
        "() => document.querySelector('[data-figure=\"review/human_review/count\"]')"
        ".textContent === '7'",
        timeout=20_000,
    )
    assert page.evaluate("() => window.unreloaded") is True
    # The graph heard the same change and refreshed its count in place.
    page.wait_for_function(
        "() => { const n = document.querySelector("
        "'figure.workflow-graph a.wg-node[data-state=\"human_review\"] text.wg-count');"
        " return n !== null && n.textContent === '7 items'; }",
        timeout=20_000,
    )
    assert re.fullmatch(r"updated \d\d:\d\d:\d\d", page.inner_text("#updated"))
    oldest = page.locator('[data-figure="review/human_review/oldest"]')
    assert re.fullmatch(r"\d+\.\ds", oldest.inner_text())  # the moment, shown as an age


@pytest.fixture
def unreliable(server: Server) -> Iterator[Any]:
    """A page whose requests the test makes fail, as a restarting server's do."""
    yield from browser_page(expected="net::ERR_FAILED")


def test_an_unreachable_server_is_said_and_retried(unreliable: Any, server: Server) -> None:
    page = unreliable
    _sign_in(page, server, "viewer")
    page.route("**/dashboard/figures", lambda route: route.abort())  # the server is away
    page.wait_for_function(
        "() => document.querySelector('#updated').textContent.startsWith('update failed')",
        timeout=20_000,
    )
    assert re.fullmatch(r"update failed, retrying in \d+ s", page.inner_text("#updated"))
    page.unroute("**/dashboard/figures")  # back again
    with server.client("operator") as ops:
        ops.post("/api/items", json={"workflow": "review", "key": "late", "data": {"amount": 1}})
    page.wait_for_function(
        "() => document.querySelector('[data-figure=\"review/tasks\"]').textContent === '5'",
        timeout=40_000,
    )
    assert page.inner_text("#updated").startswith("updated ")


def test_no_dashboard_page_scrolls_sideways_on_a_phone(page: Any, server: Server) -> None:
    page.set_viewport_size(PHONE)
    _sign_in(page, server, "admin")
    for path in PAGES:
        page.goto(f"{server.url}{path}")
        width = page.evaluate("() => document.scrollingElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
        name = re.sub(r"\W+", "-", path.removeprefix("/dashboard")).strip("-") or "board"
        screenshot(page, f"phone-{name}")
    header = page.locator("header").bounding_box()
    assert header["width"] <= PHONE["width"]
    page.context.clear_cookies()
    page.goto(f"{server.url}/dashboard/login")
    assert page.evaluate("() => document.scrollingElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "phone-login")
