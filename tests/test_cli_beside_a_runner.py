"""The command line beside a process that runs the store: acting succeeds, and says who goes on.

A real ``statewise serve`` holds the SQLite file's runner lock in another process. Commands
that act on items (task decide/claim/release, bulk, send) do their work, exit 0 and say that
the running process continues the item; ``send`` without any runner handles its own item only.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from statewise.store import open_store
from test_cli import invoke

DESK = """\
workflow: desk
version: 1
events:
  reply: the customer answers
  approve: the desk approves
  reject: the desk rejects
states:
  intake:
    kind: initial
    command: route
    transitions:
      - when: path == "review"
        to: review
      - when: path == "nudge"
        to: nudge
      - when: path == "later"
        to: later
      - else: true
        to: letter
  review:
    kind: human
    task: {queue: desk, title: Check it}
    transitions:
      - on: approve
        to: ship
      - on: reject
        to: done
  letter:
    kind: waiting
    transitions:
      - on: reply
        to: ship
  nudge:
    kind: waiting
    transitions:
      - after: 1s
        to: done
  later:
    kind: waiting
    transitions:
      - after: 20s
        to: done
  ship:
    command: ship
    transitions:
      - to: done
  done:
    kind: final
"""

COMMANDS = """\
from statewise import CommandRegistry

registry = CommandRegistry()


@registry.command()
def route(ctx):
    return {}


@registry.command()
def ship(ctx):
    return {"shipped": True}
"""

ITEMS = {
    "r1": "review",
    "r2": "review",
    "r3": "review",
    "l1": "letter",
    "n1": "nudge",
    "t1": "later",
}
LOCKED = "runs this store and will continue"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A SQLite store whose items wait (see ``_seed``)."""
    db = tmp_path / "desk.sqlite"
    _seed(tmp_path, str(db))
    return db


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same, once per dialect."""
    url = f"sqlite:///{tmp_path / 'desk.sqlite'}"
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    _seed(tmp_path, url)
    return url


def _seed(folder: Path, db: str) -> None:
    """Items that wait: three on a human task, one for a reply, two on timers."""
    (folder / "desk.yaml").write_text(DESK)
    (folder / "desk.py").write_text(COMMANDS)
    lines = [json.dumps({"key": key, "data": {"path": path}}) for key, path in ITEMS.items()]
    (folder / "items.jsonl").write_text("\n".join(lines) + "\n")
    code, output = invoke(
        "run", folder / "desk.yaml", "--items", folder / "items.jsonl", "--max-wait", "0",
        "--commands", folder / "desk.py", "--db", db,
    )  # fmt: skip
    assert code == 0, output


@pytest.fixture
def served(db: Path) -> Iterator[subprocess.Popen[str]]:
    """``statewise serve`` on the store, in another process, holding its runner lock."""
    service = subprocess.Popen(
        [sys.executable, "-m", "statewise", "serve", "--db", str(db), "--port", "0",
         "--commands", str(db.parent / "desk.py")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lock = db.with_name(db.name + ".lock")
    try:
        _until(lambda: lock.exists() and f"pid {service.pid}" in lock.read_text(), service)
        yield service
    finally:
        service.terminate()
        service.communicate(timeout=30)


def _until(done: Callable[[], bool], process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 30
    while not done():
        assert process is None or process.poll() is None, "the service exited"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _states(db: Path | str) -> dict[str, str]:
    async def read() -> dict[str, str]:
        store = open_store(str(db))
        try:
            return {item.key: item.state for item in await store.list_items(limit=100)}
        finally:
            await store.close()

    return asyncio.run(read())


def _no_stuck_items(db: Path | str) -> None:
    async def check() -> None:
        store = open_store(str(db))
        try:
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(check())


def _task_of(db: Path, key: str) -> str:
    code, output = invoke("task", "list", "--db", db, "--commands", db.parent / "desk.py")
    assert code == 0, output
    (line,) = [row for row in output.splitlines() if f"desk/{key}" in row]
    return line.split("\t")[0]  # in a pipe the list is TSV, the task's id first


def test_a_decision_beside_the_service_exits_0_and_the_service_continues_the_item(
    db: Path, served: subprocess.Popen[str]
) -> None:
    task = _task_of(db, "r1")

    code, output = invoke(
        "task", "decide", task, "approve", "--db", db, "--commands", db.parent / "desk.py"
    )

    assert code == 0, output
    assert f"task {task} decided: approve; r1 now in ship" in output
    assert f"pid {served.pid} " in output and f"{LOCKED} the item" in output
    assert "already being run" not in output
    _until(lambda: _states(db)["r1"] == "done", served)
    _no_stuck_items(db)


def test_claim_release_and_costs_beside_the_service_exit_0_without_a_lock_message(
    db: Path, served: subprocess.Popen[str]
) -> None:
    task = _task_of(db, "r2")
    commands = ("--db", db, "--commands", db.parent / "desk.py")

    outputs = [
        invoke("task", "claim", task, *commands),
        invoke("task", "release", task, *commands),
        invoke("task", "list", *commands),
        invoke("costs", "--db", db),
    ]

    for code, output in outputs:
        assert code == 0, output
        assert "already being run" not in output and LOCKED not in output
    assert "claimed by cli:cli" in outputs[0][1] and "released" in outputs[1][1]


def test_a_bulk_change_beside_the_service_exits_0_and_says_who_goes_on(
    db: Path, served: subprocess.Popen[str]
) -> None:
    code, output = invoke(
        "bulk", "cancel", "--reason", "duplicate order", "--key-contains", "r3", "--yes",
        "--db", db, "--commands", db.parent / "desk.py",
    )  # fmt: skip

    assert code == 0, output
    assert "cancel: 1 of 1 item(s) changed" in output
    assert f"{LOCKED} the changed items" in output and "already being run" not in output
    _no_stuck_items(db)


def test_a_send_beside_the_service_exits_0_and_says_the_service_continues_the_item(
    db: Path, served: subprocess.Popen[str]
) -> None:
    code, output = invoke("send", "l1", "reply", "--db", db, "--commands", db.parent / "desk.py")

    assert code == 0, output
    assert "l1: reply accepted; now in ship (active)" in output
    assert f"pid {served.pid} " in output and f"{LOCKED} the item" in output
    assert "statewise send" not in output and "already being run" not in output
    _until(lambda: _states(db)["l1"] == "done", served)
    _no_stuck_items(db)


def test_a_send_without_a_runner_handles_its_own_item_only_and_returns_at_once(
    store_url: str, tmp_path: Path
) -> None:
    time.sleep(1.2)  # n1's timer is due now, t1's within the minute a send used to wait

    began = time.monotonic()
    code, output = invoke(
        "send", "l1", "reply", "--db", store_url, "--commands", tmp_path / "desk.py"
    )
    took = time.monotonic() - began

    assert code == 0, output
    assert output.splitlines()[-1] == "l1: now in done (done)"
    assert took < 10, took
    states = _states(store_url)
    assert states["n1"] == "nudge" and states["t1"] == "later"
    _no_stuck_items(store_url)
