"""The alerts page in real headless Chromium: a delivered and a failing destination, at 390 px."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actions.conftest import REVIEW_YAML
from observe.receiver import Receiver, free_port
from service.conftest import Server, run_server
from statewise.observe.alerting import AlertSettings

from .browser import browser_page, screenshot

WATCHED = REVIEW_YAML.replace(
    "alerts:\n  - state: human_review\n    max_age: 4h\n",
    "alerts:\n  - state: human_review\n    on_enter: true\n"
    "destinations:\n  lead:\n    url_env: ALERTS_PAGE_HOOK\n    preset: chat\n"
    "  ops:\n    url_env: ALERTS_PAGE_DOWN\n    secret_env: ALERTS_PAGE_SECRET\n",
)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    receiver = Receiver()
    receiver.start()
    monkeypatch.setenv("ALERTS_PAGE_HOOK", f"{receiver.url}/chat")
    monkeypatch.setenv("ALERTS_PAGE_DOWN", f"http://127.0.0.1:{free_port()}/down")
    monkeypatch.setenv("ALERTS_PAGE_SECRET", "k")
    store = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    try:
        yield from run_server(
            store, items=2, workflow=WATCHED, alerts=AlertSettings(every=0.2, backoff=3600)
        )
    finally:
        receiver.stop()


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    yield from browser_page()


def test_the_alerts_page_shows_each_destinations_delivery_on_a_phone(
    page: Any, server: Server
) -> None:
    with server.client("viewer") as viewer:
        deadline = time.time() + 20
        while viewer.get("/api/alerts").json()["failing"] == 0 and time.time() < deadline:
            time.sleep(0.1)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/dashboard/login")
    page.fill("#token", server.tokens["viewer"])
    page.click("button.primary")
    page.wait_for_url(f"{server.url}/dashboard")
    page.goto(f"{server.url}/dashboard/alerts")

    strip = page.locator(".alert-strip").inner_text()
    assert strip == "1 firing · 1 delivery failing"
    rows = page.locator(".deliveries tbody tr")
    assert rows.count() == 2
    delivered = page.locator("tr.delivery-delivered").inner_text()
    retrying = page.locator("tr.delivery-retrying").inner_text()
    assert [line.strip() for line in delivered.splitlines()][:4] == [
        "lead",
        "firing",
        "delivered",
        "1",
    ]
    assert "ops" in retrying and "retrying" in retrying and "refused" in retrying.lower()
    assert page.locator(".episode-keys a").count() == 2
    # Nothing of the page's own runs wider than the phone (the shared header is the board's).
    overflowing = page.evaluate(
        "[...document.querySelectorAll('.alert-strip, .alert-episode, .deliveries')]"
        ".filter(e => e.scrollWidth > e.clientWidth + 1"
        " || e.getBoundingClientRect().right > window.innerWidth).length"
    )
    screenshot(page, "alerts_page_390")
    assert overflowing == 0
