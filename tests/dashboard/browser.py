"""Real headless Chromium (Debian's package) driven by Playwright, or a clear skip.

Playwright's own browser download cannot work here, so the tests use /usr/bin/chromium. Without
it they skip with the install hint locally and fail under CI, like tests/postgres.py does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("STATEWISE_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
HINT = "no Chromium at {path}: apt-get install -y chromium (and pip install playwright)"


def require_chromium() -> None:
    """Skip without a browser, except under CI, where a missing browser is a failure."""
    if CHROMIUM.exists():
        return
    message = HINT.format(path=CHROMIUM)
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def browser_page(expected: str = "") -> Iterator[object]:
    """One page in a fresh headless Chromium, closed afterwards.

    Every console error, script error and dialog is recorded; one that happened fails the
    test when the page closes: a Content-Security-Policy violation shows up as a console
    error, and an ``alert`` from injected markup as a dialog. A test that makes requests fail
    on purpose names its console error in ``expected`` (a substring), and only it is allowed.
    """
    require_chromium()
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console: {m.text}")
                    if m.type == "error" and not (expected and expected in m.text)
                    else None
                ),
            )
            page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
            page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"),
                                              dialog.dismiss()))  # fmt: skip
            yield page
        finally:
            browser.close()
    assert not problems, problems


def screenshot(page: object, name: str) -> Path:
    """Save a full-page PNG under tests/dashboard/artifacts/ for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
