"""Hostile keys and data in real Chromium: each key opens and changes only its own item.

Keys that decode to another key (``inv%41`` and ``invA``), that hold URL syntax (``?``, ``/``,
``#``), non-ASCII, and markup meant to run script. The browser helper fails the test on any
dialog, script error or console error, so an injected ``alert`` or a CSP violation would show.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from service.conftest import Server, run_server, stuck_items

from .browser import browser_page, screenshot
from .test_pages import _sign_in

SCRIPT = "<script>alert(1)</script>"
IMAGE = '"><img src=x onerror=alert(2)>'
HOSTILE = ["inv%41", "a?b", "a/b", "a#b", "naïve ключ", SCRIPT, IMAGE]
BYSTANDERS = ["invA", "a", "b"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from run_server(f"sqlite:///{tmp_path / 'hostile.sqlite'}", items=0)


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    data = {"amount": 50, "note": IMAGE, SCRIPT: [SCRIPT]}
    with server.client("operator") as ops:
        started = ops.post(
            "/api/items/batch",
            json={
                "workflow": "review",
                "items": [{"key": k, "data": data} for k in HOSTILE + BYSTANDERS],
            },
        )
        assert started.json()["created"] == len(HOSTILE + BYSTANDERS), started.text
        deadline = time.time() + 20
        while ops.get("/api/items", params={"state": "human_review"}).json()["total"] < 10:
            assert time.time() < deadline, "the in-process workers did not run the items"
            time.sleep(0.1)
    yield from browser_page()


def _state(server: Server, key: str) -> tuple[str, str]:
    with server.client("viewer") as viewer:
        item = viewer.get(f"/api/items/review/{quote(key, safe='')}").json()
    return item["state"], item["status"]


def test_each_key_opens_its_own_page_and_no_markup_runs(page: Any, server: Server) -> None:
    _sign_in(page, server, "operator")
    for key in HOSTILE + BYSTANDERS:
        page.goto(f"{server.url}/dashboard/items")
        page.get_by_role("link", name=key, exact=True).click()
        page.wait_for_load_state()
        assert page.inner_text("h1").startswith(key), (key, page.url)
        assert SCRIPT in page.inner_text("main")  # the data shows as text
    screenshot(page, "hostile-item")
    page.goto(f"{server.url}/dashboard")
    page.goto(f"{server.url}/dashboard/inbox")
    assert SCRIPT in page.inner_text("main") and IMAGE in page.inner_text("main")
    page.goto(f"{server.url}/dashboard/items/review/{quote('gone' + SCRIPT, safe='')}")
    assert SCRIPT in page.inner_text(".error")  # the not-found message quotes the key
    page.goto(f"{server.url}/dashboard/bulk")
    page.fill("#b-q", IMAGE)
    page.fill("#b-reason", SCRIPT)
    page.click("button:has-text('Count matching items')")
    assert "1 item(s) match" in page.inner_text("main")
    assert page.input_value("#b-q") == IMAGE and page.input_value("#b-reason") == SCRIPT
    page.goto(f"{server.url}/dashboard/items?q={quote(IMAGE)}")
    assert page.locator("tbody tr").count() == 1 and page.input_value("#q") == IMAGE
    screenshot(page, "hostile-items")


@pytest.mark.parametrize(("key", "bystander"), [("inv%41", "invA"), ("a/b", "a"), ("a?b", "a")])
def test_cancelling_one_key_leaves_the_look_alike_alone(
    page: Any, server: Server, key: str, bystander: str
) -> None:
    _sign_in(page, server, "operator")
    page.goto(f"{server.url}/dashboard/items")
    page.get_by_role("link", name=key, exact=True).click()
    page.fill("#reason", "hostile key test")
    page.click("button:has-text('Cancel')")
    assert page.inner_text("h1") == f"Cancel item {key}?"
    page.click("button:has-text('Cancel the item')")
    page.wait_for_url(re.compile(re.escape(quote(key, safe="")) + r"\?done=cancel$"))
    assert page.inner_text("h1").startswith(key)
    assert _state(server, key)[1] == "cancelled"
    assert _state(server, bystander) == ("human_review", "waiting")
    others = [k for k in HOSTILE + BYSTANDERS if k != key]
    assert all(_state(server, k)[1] == "waiting" for k in others)
    assert stuck_items(server.store_url) == []
