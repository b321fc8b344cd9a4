"""The inbox and task pages over HTTP: the list with its total, counts and filters, claiming
from it (two reviewers at once), the task's subject and form, a refused decision that keeps
what was typed, and the confirmation of one that went through."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from service.conftest import Server, login_csrf, run_server, stuck_items

INBOX_YAML = """
workflow: review
version: 1
events:
  approve: {description: The order may ship now., label: Let it ship}
  reject: The order is refused for good.
states:
  intake:
    kind: initial
    command: score
    transitions:
      - to: human_review
        when: intake.value < 90
      - to: approved
        else: true
  human_review:
    kind: human
    task:
      queue: compliance
      title: Check the order
      show: [intake.value, amount, nowhere.to_be_found]
      form:
        type: object
        properties:
          risk: {type: string, enum: [low, high]}
          reply: {type: string, title: Reply to the customer}
          count: {type: integer, minimum: 1}
          seen: {type: number, title: Amount seen, x-context: amount}
        required: [risk, reply]
      due: 1h
    transitions:
      - on: approve
        to: ship
      - on: reject
        to: rejected
  ship:
    command: ship
    transitions:
      - to: approved
  approved: {kind: final}
  rejected: {kind: final}
"""
TYPED = "Dear <b>Zoë</b>,\nyour order ships & arrives soon"


@pytest.fixture
def server(db: str) -> Iterator[Server]:
    yield from run_server(db, items=3, workflow=INBOX_YAML)


@contextmanager
def _browser(server: Server, role: str) -> Iterator[tuple[httpx.Client, str]]:
    """A signed-in dashboard client and its CSRF token."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.post(
            "/dashboard/login", data={"token": server.tokens[role], "csrf": login_csrf(client)}
        )
        found = re.search(r'name="csrf" value="([^"]+)"', client.get("/dashboard/inbox").text)
        assert found, "no CSRF value on the inbox"
        yield client, found[1]


def _task_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-task="(\d+)"', page)]


def test_the_list_has_a_total_queue_counts_and_shareable_filters(server: Server) -> None:
    with _browser(server, "reviewer") as (client, csrf):
        page = client.get("/dashboard/inbox").text
        assert "1\u20133 of 3 open tasks" in page
        assert re.search(r'data-queue="compliance"[^>]*>compliance <b>3</b>', page)
        assert "due in 59 min" in page or "due in 1 h" in page
        first = _task_ids(page)[0]
        back = "/dashboard/inbox?sort=-created"
        claimed = client.post(f"/dashboard/tasks/{first}/claim", data={"csrf": csrf, "back": back})
        assert (claimed.status_code, claimed.headers["location"]) == (
            303, "/dashboard/inbox?sort=-created"
        )  # fmt: skip
        assert _task_ids(client.get("/dashboard/inbox?mine=1").text) == [first]
        assert first not in _task_ids(client.get("/dashboard/inbox?unclaimed=1").text)
        assert _task_ids(client.get("/dashboard/inbox?due=overdue").text) == []
        assert _task_ids(client.get("/dashboard/inbox?queue=other").text) == []
        odd = client.get("/dashboard/inbox?sort=sideways&page=0")
        assert odd.status_code == 200 and len(_task_ids(odd.text)) == 3
        assert (
            "sort &#39;sideways&#39; is not one of" in odd.text and "page &#39;0&#39;" in odd.text
        )
        away = {"csrf": csrf, "back": "https://elsewhere.example/x"}
        released = client.post(f"/dashboard/tasks/{first}/release", data=away)
        assert released.headers["location"] == "/dashboard/inbox"  # never off-site
        assert client.post(f"/dashboard/tasks/{first}/claim", data={}).status_code == 403


def test_a_reviewer_outside_the_queue_sees_none_of_it(server: Server) -> None:
    with _browser(server, "billing") as (client, _):
        page = client.get("/dashboard/inbox").text
        assert "0 of 0 open tasks" in page and 'data-queue="compliance"' not in page
        with server.client("viewer") as viewer:
            task = viewer.get("/api/tasks").json()[0]
        refused = client.get(f"/dashboard/tasks/{task['id']}")
        assert refused.status_code == 409 and "which your token does not include" in refused.text


def test_two_reviewers_claim_one_task_one_wins_the_other_is_told(server: Server) -> None:
    with _browser(server, "reviewer") as alice_pair, _browser(server, "admin") as bob_pair:
        _race(*alice_pair, *bob_pair)
    assert stuck_items(server.store_url) == []


def _race(alice: httpx.Client, alice_csrf: str, bob: httpx.Client, bob_csrf: str) -> None:
    """Both claim the first task at the same moment."""
    task = _task_ids(alice.get("/dashboard/inbox").text)[0]
    answers: dict[str, httpx.Response] = {}
    start = threading.Barrier(2)

    def claim(name: str, client: httpx.Client, csrf: str) -> None:
        start.wait()
        answers[name] = client.post(f"/dashboard/tasks/{task}/claim",
                                    data={"csrf": csrf, "back": "/dashboard/inbox"})  # fmt: skip

    threads = [threading.Thread(target=claim, args=a) for a in
               (("alice", alice, alice_csrf), ("bob", bob, bob_csrf))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(answer.status_code for answer in answers.values())
    assert codes == [200, 303], codes  # the winner goes back to the list; the loser sees it
    loser = next(name for name, a in answers.items() if a.status_code == 200)
    winner = "token:admin" if loser == "alice" else "token:reviewer"
    message = html.unescape(answers[loser].text)
    assert f"task {task} is claimed by {winner}, so it cannot be claimed by you" in message
    assert f'data-task="{task}"' in answers[loser].text  # the list, still there


def test_the_task_page_shows_the_subject_and_a_form_that_keeps_what_was_typed(
    server: Server,
) -> None:
    with _browser(server, "reviewer") as (client, csrf):
        task = _task_ids(client.get("/dashboard/inbox").text)[0]
        page = client.get(f"/dashboard/tasks/{task}?back=%2Fdashboard%2Finbox%3Fmine%3D1").text
        assert re.search(r"<dt>intake.value</dt><dd[^>]*>50</dd>", page)
        assert re.search(r"<dt>nowhere.to_be_found</dt><dd[^>]*muted[^>]*>not set</dd>", page)
        assert re.search(r'<textarea id="f-2" name="field.reply"', page)  # a reply is prose
        assert re.search(r'name="field.seen"[^>]*value="50"', page)  # x-context: amount
        assert re.search(
            r'<button class="primary" name="outcome" value="approve"[^>]*>Let it ship<', page
        )
        assert re.search(r'<button class="danger" name="outcome" value="reject"[^>]*>Reject<', page)
        form = {"csrf": csrf, "back": "/dashboard/inbox?mine=1", "outcome": "approve",
                "field.reply": TYPED, "field.count": "0", "field.seen": "50",
                "comment": "kept too"}  # fmt: skip
        refused = client.post(f"/dashboard/tasks/{task}/decide", data=form)
        assert refused.status_code == 200  # the page answers, with the problems on it
        text = refused.text
        assert html.escape(TYPED, quote=False) in text and "kept too" in text
        assert re.search(r'data-field="risk">.*?<div class="field-error"[^>]*>this field is '
                         r"required</div>", text, re.S)  # fmt: skip
        assert re.search(r'data-field="count">.*?<div class="field-error"[^>]*>0 is less than '
                         r"the minimum of 1</div>", text, re.S)  # fmt: skip
        assert 'data-field="reply">' in text and "field.reply" in text
        with server.client("viewer") as viewer:
            assert viewer.get(f"/api/tasks/{task}").json()["status"] == "open"
        form["field.risk"], form["field.count"] = "low", "2"
        decided = client.post(f"/dashboard/tasks/{task}/decide", data=form, follow_redirects=True)
        assert decided.status_code == 200
        confirmation = " ".join(
            re.sub(
                r"<[^>]+>", "", decided.text.split('id="confirmation" role="status">')[1]
            ).split()
        )
        assert "Decided: Let it ship — item order-" in confirmation
        assert "moved to ship" in confirmation or "moved to approved" in confirmation
        assert 'href="/dashboard/inbox?mine=1">Back to the inbox' in decided.text
        with server.client("viewer") as viewer:
            stored = viewer.get(f"/api/tasks/{task}").json()
        assert stored["data"] == {"risk": "low", "reply": TYPED, "count": 2, "seen": 50.0}
        assert stored["comment"] == "kept too"
    assert stuck_items(server.store_url) == []


PAIR_YAML = """
workflow: pair
version: 1
states:
  intake:
    kind: initial
    command: score
    transitions: [{to: review}]
  review:
    kind: parallel
    branches:
      senior:
        task: {queue: compliance, title: Senior review}
        outcomes: [approve, reject]
      legal:
        task: {queue: compliance, title: Legal review}
        outcomes: [approve, reject]
    transitions: [{to: approved}]
  approved: {kind: final}
"""


def test_tasks_of_parallel_branches_name_their_branch_and_are_decided_apart(db: str) -> None:
    """Both reviews of one item are listed at once; deciding one leaves the other open."""
    for server in run_server(db, items=1, workflow=PAIR_YAML):
        with _browser(server, "reviewer") as (client, csrf):
            page = client.get("/dashboard/inbox").text
            assert "branch senior" in page and "branch legal" in page
            first, second = _task_ids(page)
            task_page = client.get(f"/dashboard/tasks/{first}").text
            assert "review · branch senior · queue compliance" in task_page
            form = {"csrf": csrf, "back": "/dashboard/inbox", "outcome": "approve"}
            client.post(f"/dashboard/tasks/{first}/decide", data=form)
            assert _task_ids(client.get("/dashboard/inbox").text) == [second]
            client.post(f"/dashboard/tasks/{second}/decide", data=form)
            with server.client("viewer") as viewer:
                (item,) = viewer.get("/api/items").json()["items"]
            assert item["state"] == "approved"
        assert stuck_items(server.store_url) == []
