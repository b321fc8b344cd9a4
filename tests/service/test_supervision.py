"""`statewise serve` and `statewise worker` as real processes whose runner cannot run.

Another process holds the SQLite file's runner lock (through statewise's own ``running``), the
way a `statewise run` does. While it does, /readyz answers 503 naming the workers and the
holder; once it lets go, the runner is restarted and items started through the API move; when
it never lets go, the process gives up and exits 1 with a clear message.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from statewise.definition import load
from statewise.store import open_store
from statewise.worker import ItemWriter

WORKFLOW = """\
workflow: probe
version: 1
states:
  intake:
    kind: initial
    command: {name: score, result: score}
    transitions:
      - to: done
  done:
    kind: final
"""

COMMANDS = """\
from statewise import CommandRegistry

registry = CommandRegistry()


@registry.command()
def score(ctx):
    return {"value": 1}
"""

HOLD = """\
import asyncio, sys
from statewise.store.sqlite import SQLiteStore


async def hold():
    store = SQLiteStore(sys.argv[1])
    async with store.running("holder"):
        print("holding", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(hold())
"""


class Place:
    """A folder with a store holding the probe workflow, and how to run statewise in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "probe.sqlite"
        (root / "probe_commands.py").write_text(COMMANDS)
        (root / "probe.yaml").write_text(WORKFLOW)
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        }

    def statewise(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "statewise", *args, "--db", str(self.db)],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "statewise", *args, "--db", str(self.db)],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def hold_lock(self) -> subprocess.Popen[str]:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(self.db)],
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        return holder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def release(holder: subprocess.Popen[str]) -> None:
    """Let the holder go: closing its stdin ends it, and with it the lock."""
    holder.communicate(timeout=10)


def readyz(port: int, status: int, process: subprocess.Popen[str]) -> httpx.Response:
    """Poll /readyz until it answers ``status`` (the process must stay up meanwhile)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            if answer.status_code == status:
                return answer
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.05)
    raise AssertionError(f"/readyz never answered {status}")


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Place]:
    made = Place(tmp_path)
    registered = made.statewise("run", "probe.yaml", "--commands", "probe_commands")
    assert registered.returncode == 0, registered.stderr
    yield made


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    if process.poll() is None:
        process.terminate()
    _, err = process.communicate(timeout=30)
    return process.returncode, err


def test_serve_is_not_ready_while_the_lock_is_held_and_works_once_it_is_freed(
    place: Place,
) -> None:
    created = place.statewise("token", "create", "--role", "operator")
    token = created.stdout.strip().splitlines()[-1]
    holder = place.hold_lock()
    port = free_port()
    serving = place.spawn(
        "serve", "--port", str(port), "--commands", "probe_commands",
        "--restarts", "20", "--restart-delay", "0.2",
    )  # fmt: skip
    try:
        down = readyz(port, 503, serving)
        assert down.json()["failed"] == ["workers"]
        assert "is already being run by pid" in down.json()["checks"]["workers"]["detail"]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as api:
            started = api.post("/api/items", json={"workflow": "probe", "key": "k%2F?-ü"})
            assert started.status_code == 201, started.text
            release(holder)
            readyz(port, 200, serving)
            deadline = time.monotonic() + 30
            while api.get("/api/items/probe/k%252F%3F-ü").json()["status"] != "done":
                assert time.monotonic() < deadline, "the item never moved"
                time.sleep(0.05)
    finally:
        if holder.poll() is None:
            release(holder)
        code, err = stop(serving)
    assert code in (0, -signal.SIGTERM), err  # uvicorn ends by the signal it was stopped with
    assert "the workers stopped" in err and "restart 1 of 20" in err
    checked = place.statewise("check")
    assert checked.returncode == 0, checked.stdout


def test_serve_exits_non_zero_when_the_workers_cannot_be_restarted(place: Place) -> None:
    holder = place.hold_lock()
    port = free_port()
    try:
        serving = place.spawn(
            "serve", "--port", str(port), "--commands", "probe_commands",
            "--restarts", "2", "--restart-delay", "0.1",
        )  # fmt: skip
        _, err = serving.communicate(timeout=60)
    finally:
        release(holder)
    assert serving.returncode == 1, err
    assert "error: the workers stopped and were not restarted after 2 restart(s)" in err
    assert "already being run by pid" in err


def test_a_worker_reports_not_ready_on_its_health_port_then_exits_non_zero(place: Place) -> None:
    holder = place.hold_lock()
    port = free_port()
    try:
        working = place.spawn(
            "worker", "--commands", "probe_commands", "--health-port", str(port),
            "--restarts", "3", "--restart-delay", "0.5",
        )  # fmt: skip
        down = readyz(port, 503, working)
        assert down.json()["checks"]["store"] == {"ok": True, "detail": "reachable"}
        assert "already being run by pid" in down.json()["checks"]["workers"]["detail"]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "alive"}
        assert httpx.get(f"http://127.0.0.1:{port}/nothing").status_code == 404
        _, err = working.communicate(timeout=60)
    finally:
        release(holder)
    assert working.returncode == 1, err
    assert "error: the workers stopped and were not restarted after 3 restart(s)" in err


def test_check_reports_work_that_no_runner_took(place: Place) -> None:
    async def start_without_a_runner() -> None:
        store = open_store(str(place.db))
        try:
            definition = load(place.root / "probe.yaml", commands={"score"})
            await ItemWriter(store, [definition]).start(definition, [("waiting", {})])
        finally:
            await store.close()

    asyncio.run(start_without_a_runner())
    assert place.statewise("check").returncode == 0  # nothing left due for 300 s yet
    time.sleep(0.3)
    stalled = place.statewise("check", "--stalled-after", "0.2")
    assert stalled.returncode == 1
    assert "stalled: 1 command(s) and 0 timer(s) have been due for more than 0.2s" in stalled.stdout
