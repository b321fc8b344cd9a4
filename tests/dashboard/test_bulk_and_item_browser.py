"""Bulk with the workflow filter and an item's cancel with its confirmation, in real Chromium.

The service holds ``review`` and ``triage``, which share the state ``human_review``. The
screenshots land in tests/dashboard/artifacts/ for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from service.conftest import Server, run_server, stuck_items

from .browser import browser_page, screenshot
from .test_bulk_and_item_pages import TRIAGE_KEYS, _item, _two_workflows
from .test_pages import _sign_in


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from run_server(
        f"sqlite:///{tmp_path / 'bulk.sqlite'}", items=3, workers=False, catalog=_two_workflows
    )


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    yield from browser_page()


def _offered(page: Any, select: str) -> list[str]:
    return [o.get_attribute("value") for o in page.locator(f"{select} option").all()]


def test_bulk_by_workflow_lists_its_states_then_the_keys_it_paused(
    page: Any, server: Server
) -> None:
    _sign_in(page, server, "operator")
    page.click("header a:has-text('Bulk')")
    page.select_option("#b-state", "approved")  # a state before a workflow: its group's
    assert page.input_value("#b-workflow") == "review"
    page.select_option("#b-workflow", "triage")
    assert [g.get_attribute("label") for g in page.locator("#b-state optgroup").all()] == ["triage"]
    assert "human_review" in _offered(page, "#b-state")
    assert page.input_value("#b-state") == "approved"  # triage has one too: kept
    page.select_option("#b-state", "human_review")
    page.select_option("#b-op", "pause")
    page.fill("#b-older", "0s")
    page.fill("#b-reason", "supplier outage")
    page.click("button:has-text('Count matching items')")
    main = page.inner_text("main")
    assert "2 item(s) match in triage." in main
    assert page.locator("ul.bulk-keys li a").all_inner_texts() == TRIAGE_KEYS
    assert page.input_value("#b-workflow") == "triage"
    assert page.input_value("#b-state") == "human_review"
    screenshot(page, "bulk-dry-run")
    page.click("button:has-text('pause them')")
    assert "pause: 2 of 2 item(s) changed." in page.inner_text("main")
    assert page.locator("ul.bulk-keys li a").all_inner_texts() == TRIAGE_KEYS
    screenshot(page, "bulk-applied")
    page.click("ul.bulk-keys a:has-text('t-1')")
    assert page.inner_text("h1").startswith("t-1") and "paused" in page.inner_text("main")
    assert {_item(server, "triage", key)["status"] for key in TRIAGE_KEYS} == {"paused"}
    assert _item(server, "review", "order-0")["status"] == "waiting"


def test_an_item_is_cancelled_after_a_confirmation_and_the_page_says_so(
    page: Any, server: Server
) -> None:
    key = "São Paulo 1"
    _sign_in(page, server, "operator")
    page.goto(f"{server.url}/dashboard/items/review/{quote(key, safe='')}")
    assert "unassigned" in page.inner_text(".pending") and "UTC" in page.inner_text(".pending")
    assert '"city": "São Paulo"' in page.inner_text("main")
    assert page.locator("button:has-text('Redrive')").count() == 0
    screenshot(page, "item-waiting")
    page.fill("#reason", "duplicate order")
    page.click("button:has-text('Cancel')")
    assert page.inner_text("h1") == f"Cancel item {key}?"
    assert page.input_value("#reason") == "duplicate order"
    assert _item(server, "review", key)["status"] == "waiting"
    screenshot(page, "item-confirm-cancel")
    page.click("button:has-text('Cancel the item')")
    page.wait_for_url(re.compile(r".*\?done=cancel$"))
    assert page.inner_text(".done") == "Cancelled."
    assert "cancelled" in page.inner_text(".card >> nth=0")
    assert page.locator("button:has-text('Redrive')").count() == 1  # now it makes sense
    screenshot(page, "item-cancelled")
    assert _item(server, "review", key)["status"] == "cancelled"
    assert stuck_items(server.store_url) == []


def test_a_viewer_is_offered_no_operator_page_or_form(page: Any, server: Server) -> None:
    """The refusal itself (a 403, which Chromium logs as an error) is checked over HTTP."""
    _sign_in(page, server, "viewer")
    assert page.locator("header a").all_inner_texts() == ["Board", "Items", "Quality", "Alerts"]
    page.goto(f"{server.url}/dashboard/items/review/order-0")
    assert page.locator("text=Operate").count() == 0 and page.locator("form").count() == 1
    screenshot(page, "item-viewer")
