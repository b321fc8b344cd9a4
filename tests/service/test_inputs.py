"""Hostile input through a live service: every refusal is a 4xx in the JSON error shape.

Cursors and ids out of range, documents too deep or not JSON, keys breaking the key rule and
bodies over the configured limits are refused before the store is touched; the items,
their histories and the open tasks are the same afterwards, while a second client goes on
starting items, and no active item is left without work.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from actions.conftest import REVIEW_YAML
from hostile import HOSTILE_BUT_VALID_KEYS, nested
from statewise.store import open_store

from .conftest import Server, login_csrf, run_server

TOO_BIG = 2**64
BAD_JSON_BODIES = [  # raw bodies: json.dumps would refuse to write these
    '{"x": NaN}',
    '{"x": Infinity}',
    '{"x": -Infinity}',
    '{"x": 1e400}',
]
BAD_DOCUMENTS: list[dict[str, Any]] = [
    {"risk": "low", "x": nested(260)},
    {"risk": "low", "n": 10**26},
    {"risk": "low", "order\x1fforged": 1},
]
BAD_KEYS = ["", "   ", "a\x00b", "a\x1fb", "k" * 513]
CANCEL_ALL = {"operation": "cancel", "reason": "cleanup", "dry_run": False}


@pytest.fixture
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A service whose limits come from the environment: 100 kB bodies, 10 kB items."""
    monkeypatch.setenv("STATEWISE_MAX_BODY_BYTES", "100000")
    monkeypatch.setenv("STATEWISE_MAX_ITEM_BYTES", "10000")
    yield from run_server(f"sqlite:///{tmp_path / 'limited.sqlite'}")


def _snapshot(client: httpx.Client) -> list[tuple[str, str, int, int]]:
    """Every item's key, state, seq and history length, and so what a refusal must keep."""
    items = client.get("/api/items", params={"limit": 500}).json()["items"]
    return sorted(
        (
            item["key"],
            item["state"],
            item["seq"],
            len(client.get(f"/api/items/review/{item['key']}/history").json()),
        )
        for item in items
    )


def _refused(answer: httpx.Response, status: int, error: str, message: str = "") -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error and message in body["message"], body


def _raw(client: httpx.Client, path: str, text: str) -> httpx.Response:
    return client.post(path, content=text, headers={"content-type": "application/json"})


def _no_stuck_items(server: Server) -> None:
    async def stuck() -> list[Any]:
        store = open_store(server.store_url)
        try:
            return await store.stuck_items()
        finally:
            await store.close()

    assert asyncio.run(stuck()) == []


class _SecondWriter:
    """Another client starting ``count`` items one by one while the test sends hostile ones."""

    def __init__(self, server: Server, count: int = 20) -> None:
        self.server = server
        self.count = count
        self.started: list[str] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with self.server.client("operator") as client:
            for number in range(self.count):
                key = f"second-{number}"
                body = {"workflow": "review", "key": key, "data": {"amount": 95}}
                if client.post("/api/items", json=body).status_code == 201:
                    self.started.append(key)

    def __enter__(self) -> _SecondWriter:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.thread.join(60)


def _mine(snapshot: list[tuple[str, str, int, int]]) -> list[tuple[str, str, int, int]]:
    return [row for row in snapshot if not row[0].startswith("second-")]


def test_cursors_holding_numbers_out_of_range_are_refused(server: Server) -> None:
    with server.client("viewer") as client:
        for position in ("1e999", "[1e999, 1]", "[1, 100000000000000000000000000]", "[1, -5]",
                         f"[1{'0' * 400}, 1]", "[NaN, 1]"):  # fmt: skip
            cursor = base64.urlsafe_b64encode(position.encode()).decode()
            answer = client.get("/api/items", params={"cursor": cursor})
            _refused(answer, 422, "invalid_input", "is not one this API gave out")
        first = client.get("/api/items", params={"limit": 2}).json()
        rest = client.get("/api/items", params={"limit": 2, "cursor": first["next_cursor"]})
        assert rest.status_code == 200 and len(rest.json()["items"]) == 1


def test_ids_beyond_64_bits_are_refused_by_the_api(server: Server) -> None:
    with server.client("admin") as admin:
        before = _snapshot(admin)
        for method, path, body, field in (
            ("GET", f"/api/tasks/{TOO_BIG}", None, "task_id"),
            ("POST", f"/api/tasks/{TOO_BIG}/claim", None, "task_id"),
            ("POST", f"/api/tasks/{TOO_BIG}/release", None, "task_id"),
            ("POST", f"/api/tasks/{TOO_BIG}/decide", {"outcome": "approve"}, "task_id"),
            ("DELETE", f"/api/tokens/{TOO_BIG}", None, "token_id"),
        ):
            # The field is named; the bound is worded by pydantic.
            answer = admin.request(method, path, json=body)
            _refused(answer, 422, "invalid_request", f"path.{field}: ")
        assert _snapshot(admin) == before


def test_task_ids_beyond_64_bits_are_refused_by_the_dashboard(server: Server) -> None:
    with httpx.Client(base_url=server.url) as browser:
        browser.post(
            "/dashboard/login",
            data={"token": server.tokens["reviewer"], "csrf": login_csrf(browser)},
        )
        inbox = browser.get("/dashboard/inbox").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', inbox)
        assert csrf is not None
        form = {"csrf": csrf.group(1), "outcome": "approve", "risk": "low"}
        answer = browser.post(f"/dashboard/tasks/{TOO_BIG}/decide", data=form)
        _refused(answer, 422, "invalid_request", "task_id")
    _no_stuck_items(server)


def test_documents_breaking_a_rule_are_refused_at_every_entry_and_change_nothing(
    server: Server,
) -> None:
    with server.client("admin") as admin:
        task = admin.get("/api/tasks").json()[0]
        before = _snapshot(admin)
        with _SecondWriter(server) as second:
            for raw in BAD_JSON_BODIES:
                for path, body in (
                    ("/api/items", '{"workflow": "review", "key": "k", "data": %s}'),
                    ("/api/items/batch",
                     '{"workflow": "review", "items": [{"key": "ok"}, {"key": "k", "data": %s}]}'),
                    ("/api/items/review/order-0/events", '{"name": "approve", "data": %s}'),
                    (f"/api/tasks/{task['id']}/decide", '{"outcome": "approve", "data": %s}'),
                ):  # fmt: skip
                    answer = _raw(admin, path, body % raw)
                    _refused(answer, 422, "invalid_input", "which is no JSON number")
            for document in BAD_DOCUMENTS:
                start = {"workflow": "review", "key": "k", "data": document}
                _refused(admin.post("/api/items", json=start), 422, "invalid_input")
                entry = {"key": "k", "data": document}
                batch = {"workflow": "review", "items": [{"key": "ok"}, entry]}
                _refused(
                    admin.post("/api/items/batch", json=batch), 422, "invalid_input", "items[1]"
                )
                event = {"name": "approve", "data": document}
                answer = admin.post("/api/items/review/order-0/events", json=event)
                _refused(answer, 422, "invalid_input", "the data of event 'approve'")
                decision = {"outcome": "approve", "data": document}
                answer = admin.post(f"/api/tasks/{task['id']}/decide", json=decision)
                _refused(answer, 422, "invalid_input", f"the form data of task {task['id']}")
        assert _mine(_snapshot(admin)) == before
        assert len(second.started) == second.count
        assert len(_snapshot(admin)) == len(before) + second.count
        assert admin.get(f"/api/tasks/{task['id']}").json()["status"] == "open"
    _no_stuck_items(server)


def test_one_key_rule_for_single_and_batch_starts(server: Server) -> None:
    with server.client("operator") as operator:
        before = _snapshot(operator)
        for key in BAD_KEYS:
            start = {"workflow": "review", "key": key, "data": {"amount": 1}}
            _refused(operator.post("/api/items", json=start), 422, "invalid_request", "body.key")
            batch = {"workflow": "review", "items": [{"key": "fine"}, {"key": key}]}
            answer = operator.post("/api/items/batch", json=batch)
            _refused(answer, 422, "invalid_request", "body.items.1.key")
        assert _snapshot(operator) == before
        batch = {
            "workflow": "review",
            "items": [{"key": key, "data": {"amount": 95}} for key in HOSTILE_BUT_VALID_KEYS],
        }
        answer = operator.post("/api/items/batch", json=batch)
        assert answer.json()["created"] == len(HOSTILE_BUT_VALID_KEYS), answer.text
        listed = {item["key"] for item in operator.get("/api/items").json()["items"]}
        assert set(HOSTILE_BUT_VALID_KEYS) <= listed
    _no_stuck_items(server)


def test_bodies_and_items_over_the_configured_limits_are_refused(limited: Server) -> None:
    with limited.client("operator") as operator:
        before = _snapshot(operator)
        large = {"workflow": "review", "key": "large", "data": {"x": "y" * 200_000}}
        answer = operator.post("/api/items", json=large)  # announced by Content-Length
        _refused(answer, 413, "too_large", "larger than the limit of 100,000 bytes")

        def chunks() -> Iterator[bytes]:
            yield b'{"workflow": "review", "key": "streamed", "data": {"x": "'
            for _ in range(20):
                yield b"y" * 10_000
            yield b'"}}'

        answer = operator.post(
            "/api/items", content=chunks(), headers={"content-type": "application/json"}
        )
        _refused(answer, 413, "too_large", "$STATEWISE_MAX_BODY_BYTES")
        item = {"workflow": "review", "key": "item", "data": {"x": "y" * 20_000}}
        answer = operator.post("/api/items", json=item)
        _refused(answer, 422, "invalid_input", "the limit is 10,000 ($STATEWISE_MAX_ITEM_BYTES)")
        event = {"name": "approve", "data": {"x": "y" * 20_000}}
        answer = operator.post("/api/items/review/order-0/events", json=event)
        _refused(answer, 422, "invalid_input", "the limit is 10,000")
        assert _snapshot(operator) == before
        fits = {"workflow": "review", "key": "fits", "data": {"amount": 95, "x": "y" * 9_000}}
        assert operator.post("/api/items", json=fits).status_code == 201
    _no_stuck_items(limited)


def test_a_body_that_is_not_json_at_all_answers_in_the_error_shape(server: Server) -> None:
    with server.client("operator") as operator:
        deep = '{"workflow": "review", "key": "k", "data": ' + "[" * 100_000 + "]" * 100_000 + "}"
        huge = '{"workflow": "review", "key": "k", "data": {"n": ' + "9" * 5000 + "}}"
        for text in (deep, huge):
            answer = _raw(operator, "/api/items", text)
            _refused(answer, 400, "invalid_request", "the request body cannot be read as JSON")
        assert json.loads(operator.get("/api/items").text)["total"] == 3


@pytest.fixture
def either_store(db: str) -> Iterator[Server]:
    """The service on SQLite and on PostgreSQL, which order NaN differently."""
    yield from run_server(db)


def test_a_filter_older_than_nan_seconds_is_refused_not_matched(either_store: Server) -> None:
    server = either_store
    with httpx.Client(base_url=server.url) as browser:
        browser.post(
            "/dashboard/login",
            data={"token": server.tokens["operator"], "csrf": login_csrf(browser)},
        )
        csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/dashboard/bulk").text)
        assert csrf is not None
        for older in ("nan", "inf", "-1"):
            form = {"csrf": csrf.group(1), "older_than": older, "operation": "cancel",
                    "reason": "cleanup", "apply": "yes"}  # fmt: skip
            answer = browser.post("/dashboard/bulk", data=form)
            assert answer.status_code == 200
            assert f"older than: `{older}` is not a duration; write it like 500ms" in answer.text
    with server.client("operator") as operator:
        for older in ("nan", "inf", "-1"):
            answer = operator.get("/api/items", params={"older_than": older})
            _refused(answer, 422, "invalid_request", "query.older_than")
        for older in ("NaN", "Infinity"):
            body = '{"operation": "cancel", "reason": "x", "dry_run": false, "older_than": %s}'
            _refused(_raw(operator, "/api/bulk", body % older), 422, "invalid_request")
        states = {item["state"] for item in operator.get("/api/items").json()["items"]}
        assert states == {"human_review"}
    _no_stuck_items(server)


def test_a_key_that_is_not_valid_unicode_is_refused_on_either_store(either_store: Server) -> None:
    """A lone surrogate (``\\ud800``) is valid JSON text but no UTF-8: neither store holds it."""
    server = either_store
    single = '{"workflow": "review", "key": "a\\ud800", "data": {"amount": 95}}'
    batch = '{"workflow": "review", "items": [{"key": "fine"}, {"key": "\\udfff"}]}'
    with server.client("operator") as operator:
        before = _snapshot(operator)
        with _SecondWriter(server) as second:
            _refused(_raw(operator, "/api/items", single), 422, "invalid_request", "surrogate")
            answer = _raw(operator, "/api/items/batch", batch)
            _refused(answer, 422, "invalid_request", "body.items.1.key")
        assert _mine(_snapshot(operator)) == _mine(before)
        assert len(second.started) == second.count
    _no_stuck_items(server)


def test_text_holding_nul_is_refused_as_input_on_postgresql(postgres_url: str) -> None:
    """PostgreSQL text cannot hold NUL: a lookup or filter with one is the caller's 4xx."""
    for server in run_server(postgres_url):
        with server.client("operator") as operator:
            before = _snapshot(operator)
            with _SecondWriter(server) as second:
                answers = [
                    operator.get("/api/items/review/order%000"),
                    operator.get("/api/items/review%00/order-0/history"),
                    operator.get("/api/items", params={"state": "human\x00review"}),
                    operator.post("/api/bulk", json={**CANCEL_ALL, "state": "\x00"}),
                ]
            for answer in answers:
                _refused(answer, 422, "invalid_input", "NUL character (U+0000)")
            assert _mine(_snapshot(operator)) == _mine(before)
            assert len(second.started) == second.count
        _no_stuck_items(server)


def test_reasons_and_comments_over_the_text_limit_are_refused(server: Server) -> None:
    """The audit trail keeps them with every step, and a bulk operation copies one per item."""
    long = "r" * 10_001
    with server.client("admin") as admin:
        task = admin.get("/api/tasks").json()[0]
        before = _snapshot(admin)
        with _SecondWriter(server) as second:
            answers = [
                admin.post("/api/bulk", json={**CANCEL_ALL, "reason": long}),
                admin.post(
                    "/api/items/review/order-0/redrive", json={"to": "rejected", "reason": long}
                ),
                admin.post(
                    f"/api/tasks/{task['id']}/decide",
                    json={"outcome": "approve", "comment": long, "data": {"risk": "low"}},
                ),
            ]
        for answer in answers:
            _refused(answer, 422, "invalid_input", "10,001 characters long; the limit is 10,000")
        assert _mine(_snapshot(admin)) == _mine(before)
        assert len(second.started) == second.count
        fine = admin.post(
            "/api/items/review/order-0/redrive", json={"to": "rejected", "reason": "r" * 10_000}
        )
        assert fine.status_code == 200, fine.text
    _no_stuck_items(server)


def test_item_data_beside_the_key_is_refused_with_the_right_shape(server: Server) -> None:
    # pydantic would drop the stray fields and start the item with no data at all.
    with server.client("operator") as operator:
        before = _snapshot(operator)
        start = {"workflow": "review", "key": "flat %/?", "amount": 1}
        says = (
            'has "amount" beside "key"; an item\'s data goes under "data", like '
            '{"key": "flat %/?", "data": {"amount": 1}}'
        )
        _refused(operator.post("/api/items", json=start), 422, "invalid_request", says)
        entries = [{"key": "fine"}, {"key": "flat %/?", "amount": 1}]
        answer = operator.post("/api/items/batch", json={"workflow": "review", "items": entries})
        _refused(answer, 422, "invalid_request", "body.items.1: Value error, the item has")
        assert _snapshot(operator) == before
    _no_stuck_items(server)


def test_start_data_lacking_a_declared_input_key_is_refused_by_the_api(tmp_path: Path) -> None:
    declared = REVIEW_YAML.replace("version: 1\n", "version: 1\ninput: [amount]\n")
    assert declared != REVIEW_YAML
    for server in run_server(f"sqlite:///{tmp_path / 'declared.sqlite'}", workflow=declared):
        with server.client("operator") as operator:
            before = _snapshot(operator)
            start = {"workflow": "review", "key": "no amount ü/%?", "data": {"amont": 5}}
            says = (
                "the data of item 'no amount ü/%?' lacks `amount`, which the workflow declares "
                'under `input:`; give every declared key under "data", like '
                '{"key": "no amount ü/%?", "data": {"amount": "..."}}'
            )
            _refused(operator.post("/api/items", json=start), 422, "invalid_input", says)
            entries = [{"key": "fine", "data": {"amount": 5}}, {"key": "bare"}]
            answer = operator.post(
                "/api/items/batch", json={"workflow": "review", "items": entries}
            )
            _refused(
                answer, 422, "invalid_input", "items[1]: the data of item 'bare' lacks `amount`"
            )
            assert _snapshot(operator) == before
            fine = {"workflow": "review", "key": "fine", "data": {"amount": 5}}
            assert operator.post("/api/items", json=fine).status_code == 201
        _no_stuck_items(server)
