"""A running fleet takes up deployed versions without a restart, through real processes.

`statewise serve` and `statewise worker` started on an empty store run an item of a workflow
`statewise deploy` stored after they started; a `statewise worker` holding invoice@1 takes up
invoice@2 once it is deployed and runs the new work of items `statewise migrate --no-wait`
moved onto it. Both on a SQLite file and on PostgreSQL, each checked against the store's
invariant.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from statewise.definition import loads
from statewise.engine.item import Item
from statewise.store import open_store
from statewise.worker.writer import ItemWriter
from test_cli import invoke
from test_cli_versions import V1, stuck, write_project

REFRESH = "0.2"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, {"a": 50, "b": 60})


@contextmanager
def _process(*args: str) -> Iterator[Callable[[], str]]:
    """A statewise process for the block; yields a function that stops it and returns its log."""
    started = subprocess.Popen(
        [sys.executable, "-m", "statewise", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log: list[str] = []

    def stop() -> str:
        if not log:
            started.send_signal(signal.SIGTERM)
            log.append(started.communicate(timeout=60)[0])
        return log[0]

    try:
        yield stop
    finally:
        if started.poll() is None:
            started.kill()
        stop()


def _items(db: str, *keys: str) -> list[Item]:
    async def read() -> list[Item]:
        store = open_store(db)
        try:
            return [await store.get_item("invoice", key) for key in keys]
        finally:
            await store.close()

    return asyncio.run(read())


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_on_an_empty_store_runs_a_workflow_deployed_after_it_started(
    db: str, project: Path
) -> None:
    port = _free_port()
    commands = str(project / "commands.py")
    serve = ("serve", "--db", db, "--port", str(port), "-c", commands, "--refresh-every", REFRESH)
    with _process(*serve) as stop:
        base = f"http://127.0.0.1:{port}"
        _until(lambda: _answers(base))
        code, out = invoke("deploy", project / "v1.yaml", "--db", db, "-c", commands)
        assert code == 0, out
        code, out = invoke("token", "create", "--role", "operator", "--db", db)
        assert code == 0, out
        headers = {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            # Left to the periodic refresh: the workflow is listed as held within its interval.
            _until(lambda: [w["held"] for w in client.get("/api/workflows").json()] == [True])
            body = {"workflow": "invoice", "key": "paid-1", "data": {"amount": 500}}
            started = client.post("/api/items", json=body)
            assert started.status_code == 201, started.text
            _until(lambda: client.get("/api/items/invoice/paid-1").json()["status"] == "done")
            assert client.get("/api/items/invoice/paid-1").json()["state"] == "paid"
        output = " ".join(stop().split())  # the banner is wrapped to the terminal's width
    assert "this service takes them up within 0.2s, without a restart" in output
    assert "now holds invoice@1" in output
    assert stuck(db) == []


def test_a_worker_holding_v1_runs_the_new_work_of_items_migrated_onto_v2(
    db: str, project: Path
) -> None:
    commands = str(project / "commands.py")
    code, out = invoke(
        "run", project / "v1.yaml", "--items", project / "items.jsonl", "-c", commands, "--db", db
    )
    assert code == 0, out
    assert [i.state for i in _items(db, "a", "b")] == ["review", "review"]
    port = _free_port()
    worker = ("worker", "--db", db, "-c", commands, "--refresh-every", REFRESH, "--no-prune",
              "--health-port", str(port))  # fmt: skip
    with _process(*worker) as stop:
        _until(lambda: _answers(f"http://127.0.0.1:{port}"))  # it has loaded invoice@1 only
        assert invoke("deploy", project / "v2.yaml", "--db", db, "-c", commands)[0] == 0
        code, out = invoke(
            "migrate", "invoice", "--to", "2", "--map", "review=pay", "--reason", "pay now",
            "--no-wait", "--db", db, "-c", commands,
        )  # fmt: skip
        assert code == 0, out
        _until(lambda: [(i.status.value, i.state) for i in _items(db, "a", "b")] == [
            ("done", "paid"), ("done", "paid")
        ])  # fmt: skip
        assert [i.version for i in _items(db, "a", "b")] == [2, 2]
        output = stop()
    assert re.search(r"worker \S+ holds invoice@1$", output, re.MULTILINE), output
    assert "now holds invoice@2" in output
    assert stuck(db) == []


def test_a_worker_started_on_an_empty_store_runs_what_is_deployed_later(
    db: str, project: Path
) -> None:
    commands = str(project / "commands.py")
    assert invoke("db", "upgrade", "--db", db)[0] == 0  # an empty store, as a fresh deployment has
    port = _free_port()
    worker = ("worker", "--db", db, "-c", commands, "--refresh-every", REFRESH, "--no-prune",
              "--health-port", str(port))  # fmt: skip
    with _process(*worker) as stop:
        _until(lambda: _answers(f"http://127.0.0.1:{port}"))
        assert invoke("deploy", project / "v1.yaml", "--db", db, "-c", commands)[0] == 0
        asyncio.run(_start(db, "late", 500))  # another writer: no runner of its own
        _until(lambda: [(i.status.value, i.state) for i in _items(db, "late")] == [
            ("done", "paid")
        ])  # fmt: skip
        output = " ".join(stop().split())
    assert "the store has no workflows yet" in output
    assert "this worker takes them up within 0.2s, without a restart" in output
    assert "now holds invoice@1" in output
    assert stuck(db) == []


async def _start(db: str, key: str, amount: int) -> None:
    store = open_store(db)
    try:
        v1 = loads(V1, file="v1.yaml")
        report = await ItemWriter(store, [v1]).start(v1, [(key, {"amount": amount})])
        assert report.created == 1
    finally:
        await store.close()
