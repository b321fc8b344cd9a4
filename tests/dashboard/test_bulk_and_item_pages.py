"""The bulk and item pages through the live service, on both stores (issue 16, section 3).

The service holds two workflows, ``review`` and ``triage``, that share the state name
``human_review``: the bulk page's workflow filter and state choice must keep them apart.
Keys hold ``%``, ``/``, ``?``, spaces and non-ASCII; each is listed, linked and operated on
as itself. Refusals (role, CSRF, signed out) are styled pages, and pages a role cannot use
are not offered.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import html
import importlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from actions.conftest import registry
from service.conftest import REVIEW_YAML, Server, login_csrf, run_server, stuck_items
from statewise.cli import app
from statewise.definition import loads
from statewise.store.base import Store
from statewise.worker.catalog import Catalog
from statewise.worker.runner import Runner

# The module, not the function `statewise.actions.bulk` names in its package.
bulk_action = importlib.import_module("statewise.actions.bulk")
TRIAGE_YAML = REVIEW_YAML.replace("workflow: review", "workflow: triage")
HOSTILE = ["50%", "a/b", "what?", "São Paulo 1", "x y"]
TRIAGE_KEYS = ["t-1", "t-2"]
CITY = "São Paulo"
COMMANDS = str(Path(__file__).parent.parent / "actions" / "conftest.py")  # the test registry


async def _two_workflows(store: Store) -> Catalog:
    """review (with hostile keys besides order-N) and triage, both waiting in human_review."""
    review = loads(REVIEW_YAML, file="review.yaml", commands=registry.names())
    triage = loads(TRIAGE_YAML, file="triage.yaml", commands=registry.names())
    await store.save_workflow(triage, "triage.yaml", [])
    runner = Runner(store, [review, triage], registry)
    data = {"amount": 50, "city": CITY}
    await runner.start(review, [(key, data) for key in HOSTILE])
    await runner.start(triage, [(key, data) for key in TRIAGE_KEYS])
    await runner.run(max_wait=0)
    return Catalog([review, triage], registry)


@pytest.fixture
def server(db: str) -> Iterator[Server]:
    yield from run_server(db, items=3, workers=False, catalog=_two_workflows)


@contextlib.contextmanager
def _signed_in(server: Server, role: str) -> Iterator[tuple[httpx.Client, str]]:
    """A browser-like client signed in as ``role``, and its session's CSRF secret."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        token = server.tokens[role]
        client.post("/dashboard/login", data={"token": token, "csrf": login_csrf(client)})
        found = re.search(r'name="csrf" value="([^"]+)"', client.get("/dashboard/items").text)
        assert found, "not signed in"
        yield client, found[1]


def _text(answer: httpx.Response) -> str:
    """The page's text with markup escapes undone, for plain assertions on messages."""
    return html.unescape(answer.text)


def _bulk(client: httpx.Client, csrf: str, **fields: str) -> httpx.Response:
    """Post the bulk form; to apply, count first and send what the count's page carries."""
    form = {"csrf": csrf, "operation": "pause", "reason": "supplier outage", **fields}
    if form.get("apply") == "yes" and "counted" not in form:
        count = client.post("/dashboard/bulk", data={**form, "apply": ""})
        found = re.search(r'name="counted" value="([^"]*)"', count.text)
        form["counted"] = html.unescape(found[1]) if found else ""
    return client.post("/dashboard/bulk", data=form)


def _listed(answer: httpx.Response) -> list[str]:
    """The keys the bulk page lists, as their links name them."""
    block = answer.text.split('<ul class="bulk-keys">', 1)
    assert len(block) == 2, answer.text
    return [html.unescape(k) for k in re.findall(r'<li><a href="[^"]+">([^<]*)</a>', block[1])]


def _item(server: Server, workflow: str, key: str) -> dict[str, str]:
    with server.client("viewer") as viewer:
        found: dict[str, str] = viewer.get(f"/api/items/{workflow}/{quote(key, safe='')}").json()
    return found


def test_the_workflow_filter_keeps_a_shared_state_name_to_its_workflow(server: Server) -> None:
    with _signed_in(server, "operator") as (client, csrf):
        form = client.get("/dashboard/bulk", params={"workflow": "triage"}).text
        assert '<optgroup label="triage" data-workflow="triage">' in form
        assert "<option selected>triage</option>" in form
        ambiguous = _text(_bulk(client, csrf, state="human_review"))
        assert "choose the workflow of state 'human_review' first (it is a state of review, " \
            "triage)" in ambiguous  # fmt: skip
        dry = _bulk(client, csrf, workflow="triage", state="human_review")
        assert "<strong>2</strong> item(s) match in triage." in dry.text
        assert sorted(_listed(dry)) == TRIAGE_KEYS
        counted = re.findall(r'name="counted" value="([^"]*)"', dry.text)[0]
        changed = _bulk(client, csrf, workflow="review", state="human_review", apply="yes",
                        counted=html.unescape(counted))  # fmt: skip
        assert "the filter or the operation changed after the count; nothing was changed. " \
            "Count the matching items again, then apply" in changed.text  # fmt: skip
        applied = _bulk(client, csrf, workflow="triage", state="human_review", apply="yes",
                        counted=html.unescape(counted))  # fmt: skip
        assert "pause</strong>: 2 of 2 item(s) changed." in applied.text
        assert sorted(_listed(applied)) == TRIAGE_KEYS and "Changed items" in applied.text
    assert {_item(server, "triage", k)["status"] for k in TRIAGE_KEYS} == {"paused"}
    assert {_item(server, "review", k)["status"] for k in HOSTILE} == {"waiting"}
    assert stuck_items(server.store_url) == []


def test_a_state_or_age_that_cannot_match_is_refused_saying_what_fits(server: Server) -> None:
    with _signed_in(server, "operator") as (client, csrf):
        typo = _text(_bulk(client, csrf, workflow="review", state="humn_review", apply="yes"))
        assert (
            "state 'humn_review' is not a state of workflow 'review'; did you mean "
            "'human_review'? Its states: review: approved, escalated,"
        ) in typo
        assert "overdue, rejected, ship. Nothing was counted or changed." in typo
        assert "apply" not in re.sub(r'name="apply" value=""', "", typo)  # no apply button
        unknown = _text(_bulk(client, csrf, workflow="reviews"))
        assert "workflow 'reviews' is not held here; choose one of: review, triage" in unknown
        words = _text(_bulk(client, csrf, workflow="review", older_than="4 hours"))
        assert (
            "older than: `4 hours` is not a duration; write it like 500ms, 10s, 5m, 48h, 2d "
            "or 1h30m, or give plain seconds"
        ) in words
        recent = _bulk(client, csrf, workflow="review", older_than="4h")
        assert "<strong>0</strong> item(s) match in review." in recent.text
        assert "Nothing to pause: change the filter." in recent.text
        assert 'value="4h"' in recent.text  # the form keeps what was typed
        time.sleep(0.05)
        aged = _bulk(client, csrf, workflow="review", state="human_review", older_than="10ms")
        assert "<strong>8</strong> item(s) match in review." in aged.text
    with server.client("operator") as api:
        refused = api.post(
            "/api/bulk", json={"operation": "pause", "reason": "x", "state": "humn_review"}
        )
        assert refused.status_code == 422
        assert "is not a state of any workflow held here" in refused.json()["message"]
    args = [
        "bulk",
        "pause",
        "--commands",
        COMMANDS,
        "--db",
        server.store_url,
        "-w",
        "triage",
        "--state",
        "review",
        "--reason",
        "x",
    ]
    cli = CliRunner().invoke(app, args)
    assert "state 'review' is not a state of workflow 'triage'" in cli.output
    assert {_item(server, "review", k)["status"] for k in HOSTILE} == {"waiting"}


def test_hostile_keys_are_listed_linked_and_counted_beyond_the_first_shown(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_action, "KEYS_SHOWN", 3)  # the service runs in this process
    with _signed_in(server, "operator") as (client, csrf):
        dry = _bulk(client, csrf, workflow="review", state="human_review")
        assert len(_listed(dry)) == 3 and "The first 3 are listed; 5 more match." in dry.text
        monkeypatch.setattr(bulk_action, "KEYS_SHOWN", 100)
        every = _bulk(client, csrf, workflow="review", state="human_review")
        assert sorted(_listed(every)) == sorted([*HOSTILE, "order-0", "order-1", "order-2"])
        for key in HOSTILE:
            link = f'href="/dashboard/items/review/{quote(key, safe="")}"'
            assert link in every.text, key
            opened = client.get(f"/dashboard/items/review/{quote(key, safe='')}")
            assert html.unescape(re.findall(r"<h1>([^<]*)<", opened.text)[0]).strip() == key
        applied = _bulk(client, csrf, workflow="review", q="x y", operation="cancel", apply="yes")
        assert _listed(applied) == ["x y"] and "1 of 1 item(s) changed" in applied.text
    with server.client("operator") as api:
        body = {"operation": "pause", "reason": "x", "workflow": "review", "q": "%"}
        answer = api.post("/api/bulk", json=body).json()
        assert answer["items"] == [{"workflow": "review", "key": "50%"}]
    args = [
        "bulk",
        "pause",
        "--commands",
        COMMANDS,
        "--db",
        server.store_url,
        "-w",
        "review",
        "--key-contains",
        "/",
        "--reason",
        "x",
        "--yes",
    ]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    assert "pause: 1 of 1 item(s) changed" in cli.output and "review/a/b" in cli.output
    assert _item(server, "review", "a/b")["status"] == "paused"
    assert stuck_items(server.store_url) == []


@pytest.fixture
def crowded(db: str) -> Iterator[Server]:
    yield from run_server(db, items=40, workers=False)


def test_a_bulk_cancel_beside_a_second_writer_reports_what_it_changed(crowded: Server) -> None:
    """A reviewer decides tasks through the API while the bulk page cancels the same items."""
    server = crowded
    with server.client("reviewer") as reviewer:
        tasks = reviewer.get("/api/tasks").json()

    def decide_half() -> int:
        decided = 0
        with server.client("reviewer") as second:
            for task in tasks[::2]:
                body = {"outcome": "reject", "data": {"risk": "high"}}
                decided += second.post(f"/api/tasks/{task['id']}/decide", json=body).is_success
        return decided

    with (
        _signed_in(server, "operator") as (client, csrf),
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        second_writer = pool.submit(decide_half)
        applied = _bulk(client, csrf, workflow="review", state="human_review",
                        operation="cancel", apply="yes")  # fmt: skip
        decided = second_writer.result()
    changed = int(re.findall(r"(\d+) of \d+ item\(s\) changed", applied.text)[0])
    with server.client("viewer") as viewer:
        cancelled = viewer.get("/api/items", params={"status": "cancelled"}).json()["total"]
        rejected = viewer.get("/api/items", params={"state": "rejected"}).json()["total"]
    assert changed == cancelled and rejected == decided and cancelled + rejected == 40
    assert set(_listed(applied)) <= {f"order-{n}" for n in range(40)}
    assert len(_listed(applied)) == changed
    for key in _listed(applied):
        assert _item(server, "review", key)["status"] == "cancelled"
    assert stuck_items(server.store_url) == []


def test_the_item_page_offers_what_fits_and_confirms_a_cancel(server: Server) -> None:
    key = "a/b"
    url = f"/dashboard/items/review/{quote(key, safe='')}"
    with server.client("reviewer") as reviewer:
        task = next(t for t in reviewer.get("/api/tasks").json() if t["key"] == key)
        assert reviewer.post(f"/api/tasks/{task['id']}/claim").is_success
    with _signed_in(server, "operator") as (client, csrf):
        waiting = client.get(url).text
        assert waiting.count('name="reason"') == 1
        assert ">Redrive</button>" not in waiting  # a waiting item needs none
        assert 'value="pause"' in waiting and 'value="cancel"' in waiting
        assert waiting.index("Open tasks and timers") < waiting.index("<h2>Context")
        assert "assigned to token:reviewer" in waiting
        assert re.search(r"due in (59\.\d|60\.0)m</span> <span class=\"muted\">\(20\d\d-\d\d-\d\d "
                         r"\d\d:\d\d:\d\d UTC\)", waiting)  # fmt: skip
        assert f'"city": "{CITY}"' in html.unescape(waiting) and "\\u00e3" not in waiting
        asked = client.post(
            url + "/operate", data={"csrf": csrf, "operation": "cancel", "reason": "duplicate"}
        )
        assert asked.status_code == 200 and f"Cancel item {key}?" in _text(asked)
        assert 'name="confirmed" value="yes"' in asked.text
        assert _item(server, "review", key)["status"] == "waiting"  # not before confirming
        confirmed = client.post(
            url + "/operate",
            data={"csrf": csrf, "operation": "cancel", "reason": "duplicate", "confirmed": "yes"},
            follow_redirects=True,
        )
        assert '<div class="done" role="status">Cancelled.</div>' in confirmed.text
        assert str(confirmed.url).endswith(url + "?done=cancel")
        assert "since it was cancelled" in confirmed.text and ">Redrive</button>" in confirmed.text
        assert 'value="cancel"' not in confirmed.text
        move = {"csrf": csrf, "to": "overdue", "reason": "customer gave up"}
        asked = client.post(url + "/redrive", data=move)
        assert f"Move item {key} to overdue?" in _text(asked)
        moved = client.post(url + "/redrive", data={**move, "confirmed": "yes"},
                            follow_redirects=True)  # fmt: skip
        assert "Moved to overdue." in moved.text
        assert "since it escalated to overdue" in moved.text
        assert re.search(r"\d\d:\d\d:\d\d UTC", moved.text)  # the timeline's times
    assert _item(server, "review", key)["state"] == "overdue"
    assert {_item(server, "review", k)["status"] for k in HOSTILE if k != key} == {"waiting"}
    assert stuck_items(server.store_url) == []


def test_pages_a_role_cannot_use_are_not_offered_and_refusals_are_pages(server: Server) -> None:
    expected = {
        "viewer": {"Board", "Items", "Quality", "Alerts"},
        "reviewer": {"Board", "Items", "Inbox", "Quality", "Alerts"},
        "operator": {"Board", "Items", "Inbox", "Bulk", "Quality", "Alerts", "What-if"},
    }
    item = "/dashboard/items/review/order-0"
    for role, links in expected.items():
        with _signed_in(server, role) as (client, csrf):
            header = client.get("/dashboard/items").text.split("</header>")[0]
            assert set(re.findall(r'<a href="/dashboard[^"]*">([^<]+)</a>', header)) == links
            page = client.get(item).text
            assert ("Operate</h2>" in page) == (role == "operator"), role
            if role == "operator":
                continue
            for path in ("/dashboard/bulk",):
                refused = client.get(path)
                assert refused.status_code == 403 and _styled(refused)
                assert f"The bulk page needs the operator role; you are signed in as {role}" \
                    in refused.text  # fmt: skip
            cancel = {"csrf": csrf, "operation": "cancel", "reason": "x", "confirmed": "yes"}
            for path, form in ((item + "/operate", cancel), ("/dashboard/bulk", cancel),
                               ("/dashboard/simulate", {"csrf": csrf, "yaml": "x"})):  # fmt: skip
                refused = client.post(path, data=form)
                assert refused.status_code == 403 and _styled(refused), path
                assert "needs the operator role" in refused.text and "Ask an admin" in refused.text
    with _signed_in(server, "operator") as (client, csrf):
        forged = client.post(item + "/operate", data={"csrf": csrf + "x", "operation": "pause",
                                                       "reason": "x"})  # fmt: skip
        assert forged.status_code == 403 and _styled(forged)
        assert "security token (CSRF) is missing or out of date" in forged.text
    with httpx.Client(base_url=server.url) as signed_out:
        refused = signed_out.post("/dashboard/bulk", data={"csrf": csrf})
        assert refused.status_code == 403 and _styled(refused)
        assert "You are signed out" in refused.text and 'href="/dashboard/login"' in refused.text
    assert _item(server, "review", "order-0")["status"] == "waiting"


def _styled(answer: httpx.Response) -> bool:
    """Whether a refusal is a dashboard page (its stylesheet, its frame), not bare text."""
    page = answer.text
    return (
        answer.headers["content-type"].startswith("text/html")
        and '<link rel="stylesheet" href="/static/dashboard.css">' in page
        and '<div class="card refused" role="alert">' in page
    )
