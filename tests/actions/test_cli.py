"""The command-line door to people's actions: show, task, redrive, bulk, token."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from statewise.cli import app
from statewise.definition import loads
from statewise.store import open_store
from statewise.worker.runner import Runner

from .conftest import PAYMENT_YAML, REVIEW_YAML, registry

COMMANDS = str(Path(__file__).with_name("conftest.py"))


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def _started(db: Path) -> None:
    async def main() -> None:
        store = open_store(str(db))
        try:
            review = loads(REVIEW_YAML, file="review.yaml", commands=registry.names())
            await store.save_workflow(review, "review.yaml", [COMMANDS])
            runner = Runner(store, [review], registry)
            await runner.start(review, [("order-1", {"amount": 50}), ("order-2", {"amount": 50})])
            await runner.run(max_wait=0)
        finally:
            await store.close()

    asyncio.run(main())


def test_a_person_works_an_item_from_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite"
    _started(db)
    code, out = _cli("show", "order-1", "--db", str(db), "--json")
    assert code == 0, out
    view = json.loads(out)
    assert view["state"] == "human_review" and view["tasks"][0]["status"] == "open"
    code, out = _cli("show", "order-1", "--db", str(db))
    assert code == 0 and "human_review" in out and "task_due" in out

    code, out = _cli("task", "list", "--db", str(db))
    assert code == 0 and "compliance" in out and "approve, reject" in out
    task_id = str(view["tasks"][0]["id"])
    code, out = _cli("task", "decide", task_id, "approve", "--db", str(db), "--data", "{}")
    assert code == 1 and "'risk' is a required property" in out
    code, out = _cli(
        "task", "decide", task_id, "approve", "--db", str(db), "--data", '{"risk": "low"}',
        "--comment", "fine", "--as", "dana",
    )  # fmt: skip
    assert code == 0, out
    assert "approved" in _cli("show", "order-1", "--db", str(db))[1]

    code, out = _cli("bulk", "pause", "--db", str(db), "--state", "human_review", "--reason", "x")
    assert code == 0 and "1 item(s) match" in out
    code, out = _cli(
        "bulk", "pause", "--db", str(db), "--state", "human_review", "--reason", "x", "--yes"
    )
    assert code == 0 and "1 of 1 item(s) changed" in out
    code, out = _cli("redrive", "order-2", "--db", str(db), "--to", "rejected", "--reason", "no")
    assert code == 0 and "rejected" in out
    code, out = _cli("redrive", "order-2", "--db", str(db), "--to", "nowhere", "--reason", "no")
    assert code == 1 and "has no state 'nowhere'" in out
    code, out = _cli("redrive", "order-2", "--db", str(db), "--reason", " ")
    assert code == 2 and "--reason must say why" in out


def test_token_create_prints_the_secret_last_and_stores_only_its_hash(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite"
    _started(db)
    code, out = _cli("token", "create", "--role", "reviewer", "--name", "dana", "--db", str(db))
    assert code == 0, out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("sw_") and len(secret) > 40
    code, out = _cli("token", "list", "--db", str(db))
    assert code == 0 and "dana" in out and secret not in out
    assert secret.encode() not in db.read_bytes()
    code, out = _cli("token", "revoke", "1", "--db", str(db))
    assert code == 0 and "revoked" in out


def _payment_started(url: str) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            payment = loads(PAYMENT_YAML, file="payment.yaml", commands=registry.names())
            await store.save_workflow(payment, "payment.yaml", [COMMANDS])
            runner = Runner(store, [payment], registry)
            await runner.start(payment, [("inv-1", {"amount": 50})])
            await runner.run(max_wait=0)
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("event", "data", "why"),
    [
        ("pay", '{"amount": "abc"}', "its data does not fit the event's schema (amount: "),
        ("pay", "{}", "its data does not fit the event's schema (data: "),
        ("tip", '{"amount": "abc"}', "condition `event.data.amount > 10` failed"),
        ("tip", '{"k%/?#\u00fc": 1}', "condition `event.data.amount > 10`"),
    ],
)
def test_send_refuses_bad_event_data_with_one_line_and_changes_nothing(
    url: str, event: str, data: str, why: str
) -> None:
    _payment_started(url)
    code, before = _cli("show", "inv-1", "--db", url, "--json")
    assert code == 0, before
    assert json.loads(before)["state"] == "checkout"

    code, out = _cli("send", "inv-1", event, "--db", url, "--data", data)

    assert code == 1, out
    assert "accepted" not in out
    (line,) = out.strip().splitlines()
    assert line.startswith(f"error: event '{event}' for item 'inv-1' was refused")
    assert why in line and line.endswith("nothing changed")
    code, after = _cli("show", "inv-1", "--db", url, "--json")
    assert after == before  # the item and its history alike

    code, out = _cli("send", "inv-1", event, "--db", url, "--data", '{"amount": 20}')
    assert code == 0 and "accepted" in out, out
    assert json.loads(_cli("show", "inv-1", "--db", url, "--json")[1])["state"] == "paid"
