"""The board and a workflow's page as HTML and live JSON, through the real service, on both stores.

The board is one compact row per workflow; the workflow page has the per-state table, each
state linking to the item list of that workflow and state; the figures endpoints send the
same numbers the pages show, with an ETag so an unchanged answer is a bodiless 304.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from service.conftest import Server, login_csrf, run_server
from statewise.engine.item import ItemStatus
from statewise.observe.alerts import Alert, RuleKind, Severity
from statewise.service.pages.figures import Endings, board_rows
from statewise.store.base import StateCount, StateStats

from .test_hostile import IMAGE, SCRIPT


@pytest.fixture
def server(db: str) -> Iterator[Server]:
    yield from run_server(db, items=4, workers=False)


@pytest.fixture
def browser(server: Server) -> Iterator[httpx.Client]:
    """A signed-in viewer's session, as a browser holds it (cookie, no bearer token)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        csrf = login_csrf(client)
        client.post("/dashboard/login", data={"token": server.tokens["viewer"], "csrf": csrf})
        yield client


def _figure(page: str, name: str) -> str:
    """The text of the element that shows live figure ``name`` on ``page`` (a moment's epoch)."""
    found = re.search(rf'data-figure="{re.escape(html.escape(name))}"([^>]*)>([^<]*)<', page)
    assert found, f"no figure {name!r} on the page"
    since = re.search(r'data-since="([^"]+)"', found[1])
    return since[1] if since else html.unescape(found[2])


def _shown(value: str | list[str] | float) -> str:
    """A figure as the page first shows it: its text, or a moment as ``data-since`` has it."""
    return value if isinstance(value, str) else str(value) if isinstance(value, float) else value[0]


def test_the_board_is_one_row_per_workflow_linking_to_its_page(
    browser: httpx.Client,
) -> None:
    page = browser.get("/dashboard")
    assert page.status_code == 200
    assert page.text.count("<tr data-workflow=") == 1
    assert '<a class="strong" href="/dashboard/workflows/review">review</a>' in page.text
    assert _figure(page.text, "review/in_flight") == "4"
    assert _figure(page.text, "review/tasks") == "4"  # each waits in the human state
    assert _figure(page.text, "review/failed") == "0"
    assert _figure(page.text, "review/rates") == "none ended"
    assert _figure(page.text, "review/alerts") == "ok"  # review has a rule on human_review
    assert "<svg" not in page.text  # no graph on the board: it is one table
    # The delivery state of alert episodes: none firing, none failing, a link to the details.
    strip = re.search(
        r'<p class="alert-strip alert-strip-(\w+)"><a href="/dashboard/alerts">', page.text
    )
    assert strip and strip[1] == "quiet"
    assert "<strong>0</strong> firing · <strong>0</strong> deliveries failing" in page.text
    layout = re.search(r'data-layout="([0-9a-f]+)"', page.text)
    assert layout


def test_the_figures_answer_with_the_page_numbers_and_304_when_unchanged(
    browser: httpx.Client, server: Server
) -> None:
    page = browser.get("/dashboard").text
    first = browser.get("/dashboard/figures")
    assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
    body = first.json()
    assert body["layout"] == re.search(r'data-layout="([0-9a-f]+)"', page)[1]  # type: ignore[index]
    for name, value in body["figures"].items():
        assert _figure(page, name) == _shown(value), name
    etag = first.headers["etag"]
    time.sleep(1.1)  # the oldest item aged: sent as its moment, that is no change
    same = browser.get("/dashboard/figures", headers={"If-None-Match": etag})
    assert (same.status_code, same.content) == (304, b"")
    with server.client("operator") as ops:
        cancelled = ops.post("/api/bulk", json={"operation": "cancel", "reason": "test",
                                                "q": "order-0", "dry_run": False})  # fmt: skip
        assert cancelled.json()["changed"] == 1, cancelled.text
    moved = browser.get("/dashboard/figures", headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    assert moved.json()["figures"]["review/in_flight"] == "3"


def test_figures_need_a_session(server: Server) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        for path in ("/dashboard/figures", "/dashboard/workflows/review/figures"):
            refused = anonymous.get(path)
            assert (refused.status_code, refused.json()) == (401, {"error": "signed out"})
        assert anonymous.get("/dashboard/workflows/review").status_code == 303


def test_the_workflow_page_links_each_state_to_its_items(browser: httpx.Client) -> None:
    page = browser.get("/dashboard/workflows/review")
    assert page.status_code == 200
    text = page.text
    assert (
        '<a href="/dashboard/items?workflow=review&amp;state=human_review">human_review</a>' in text
    )
    assert _figure(text, "review/human_review/count") == "4"
    assert _figure(text, "review/intake/left") == "4"  # all four left intake this hour
    assert (
        '<figure class="workflow-graph" data-graph="/dashboard/workflows/review/graph.json">'
        in text
    )
    assert 'data-live="/dashboard/workflows/review/figures"' in text
    listed = browser.get("/dashboard/items", params={"workflow": "review", "state": "human_review"})
    assert listed.text.count('<a href="/dashboard/items/review/order-') == 4
    assert 'id="workflow" name="workflow" value="review"' in listed.text
    other = browser.get("/dashboard/items", params={"workflow": "other", "state": "human_review"})
    assert "No items match." in other.text


def test_only_states_with_an_alert_rule_show_a_level(browser: httpx.Client) -> None:
    text = browser.get("/dashboard/workflows/review").text
    rows = dict(re.findall(r'<tr data-state="(\w+)">(.*?)</tr>', text, re.S))
    assert _figure(rows["human_review"], "review/human_review/alert") == "ok"
    assert 'data-tone="ok"' in rows["human_review"]
    for state in ("intake", "ship", "approved", "rejected", "overdue"):
        assert "/alert" not in rows[state] and ">ok<" not in rows[state], state


def test_the_workflow_figures_match_the_page(browser: httpx.Client) -> None:
    page = browser.get("/dashboard/workflows/review").text
    figures = browser.get("/dashboard/workflows/review/figures").json()["figures"]
    assert figures["review@1/waiting"] == "4"
    for name, value in figures.items():
        assert _figure(page, name) == _shown(value), name


@pytest.mark.parametrize(
    "name", ["inv%41", "a/b", "a?b", "a#b", "naïve ключ", "nul\x00byte", SCRIPT, IMAGE, "review "]
)
def test_an_unknown_or_hostile_workflow_is_a_404_naming_it(
    browser: httpx.Client, name: str
) -> None:
    page = browser.get(f"/dashboard/workflows/{quote(name, safe='')}")
    assert page.status_code == 404
    assert f"no workflow named {name!r} is held here (held: review)" in html.unescape(page.text)
    assert SCRIPT not in page.text and "<img src=x" not in page.text
    figures = browser.get(f"/dashboard/workflows/{quote(name, safe='')}/figures")
    assert figures.status_code == 404 and repr(name) in figures.text


def _stats(state: str, **ended: int) -> StateStats:
    return StateStats("w", state, 0.0, 0, 0, 1, 0, None, None, None, **ended)


def test_completion_rates_sum_how_items_ended_over_the_states() -> None:
    from actions.conftest import REVIEW_YAML, registry
    from statewise.definition import loads

    review = loads(
        REVIEW_YAML.replace("workflow: review", "workflow: w"), commands=registry.names()
    )
    stats = [
        _stats("ship", finished=18),
        _stats("human_review", escalated=1, cancelled=1),
    ]
    counts = [
        StateCount("w", 1, "human_review", ItemStatus.WAITING, 5, 0.0),
        StateCount("w", 1, "intake", ItemStatus.FAILED, 2, 0.0),
        StateCount("w", 1, "approved", ItemStatus.DONE, 40, 0.0),
    ]
    alert = Alert("w", "human_review", RuleKind.MAX_AGE, 60, 130, 2.2, Severity.CRITICAL)
    (row,) = board_rows([review], {"w": 3}, counts, stats, [alert])
    assert (row.in_flight, row.tasks_waiting, row.failed_items) == (5, 5, 2)
    assert (row.failures_hour, row.finished_hour, row.versions) == (2, 18, 3)
    assert row.endings.rates() == "90% well · 5% escalated · 0% failed · 5% cancelled"
    assert row.figures()["w/alerts"] == ("critical: human_review", "critical")
    assert Endings().rates() == "none ended"


def test_a_workflow_without_rules_shows_no_alert_level() -> None:
    from actions.conftest import REVIEW_YAML, registry
    from statewise.definition import loads

    bare = REVIEW_YAML.replace("alerts:\n  - state: human_review\n    max_age: 4h\n", "")
    (row,) = board_rows([loads(bare, commands=registry.names())], {}, [], [], [])
    assert row.figures()["review/alerts"] == ("", "none")
