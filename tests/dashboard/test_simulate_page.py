"""The what-if page in real headless Chromium: load a workflow, change its threshold, simulate.

The screenshot lands in tests/dashboard/artifacts/ for a person to look at.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replay.records import registry, run_for_real, screener, screening, screening_items
from service.conftest import Server, run_server
from statewise.store import Store
from statewise.worker.catalog import Catalog

from .browser import browser_page, screenshot


async def _held(store: Store) -> Catalog:
    return Catalog([screening()], registry)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path / 'whatif.sqlite'}"
    asyncio.run(run_for_real(url, screening(), screening_items(), screener))
    yield from run_server(url, items=0, workers=False, catalog=_held)


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    yield from browser_page()


def test_an_operator_changes_a_threshold_and_sees_what_it_would_have_done(
    page: Any, server: Server
) -> None:
    page.goto(f"{server.url}/dashboard")
    page.fill("#token", server.tokens["operator"])
    page.click("button.primary")
    page.wait_for_url(f"{server.url}/dashboard")
    page.click("header a:has-text('What-if')")
    page.select_option("#sv", "screening@1")
    page.click("button:has-text('Load its YAML')")
    assert "scoring.risk >= 0.5" in page.input_value("#s-yaml")
    page.fill("#s-yaml", page.input_value("#s-yaml").replace(">= 0.5", ">= 0.7"))
    page.click("button:has-text('Simulate')")
    main = page.inner_text("main")
    assert "20 item(s) replayed through screening@1" in main
    assert "4 item(s) change" in main
    assert "the change would have let through what reviewers overrode on" in main
    page.click("table.changed a:has-text('order-12')")
    assert page.url.endswith("/dashboard/items/screening/order-12")
    page.go_back()
    screenshot(page, "simulate")

    page.fill("#s-yaml", page.input_value("#s-yaml").replace(">= 0.7", ">= data.limt"))
    page.click("button:has-text('Simulate')")
    main = page.inner_text("main")
    assert "20 item(s) would fail on a defect of this YAML, not a business outcome" in main
    assert "condition `scoring.risk >= data.limt` read" in main
