"""Worker processes on one PostgreSQL: killed at random, frozen past their lease, drained.

These are the production shape: several ``statewise worker`` processes (the real command
line, commands imported from a module named on it) share one PostgreSQL schema. Each test
is bounded in time and checks, afterwards, that every active item has pending work or waits.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statewise.definition import load
from statewise.engine import HistoryRecord, Item, ItemStatus
from statewise.store import Store, open_store
from statewise.worker import ItemWriter

FLEET = Path(__file__).with_name("fleet")
COMMANDS = {"prepare", "part", "finish", "linger"}
ITEMS = 2_000
WORKERS = 4
KILLS = 20
WARM_UP = 0.5
SEED = 20_261_202
PATH = ["prepare", "fanout", "cooling", "finish", "done"]


def dsn_and_schema(url: str) -> tuple[str, str]:
    base, _, query = url.partition("?")
    schema = dict(p.split("=", 1) for p in query.split("&") if p)["schema"]
    return base, schema


class Fleet:
    """Worker processes on one store URL, each a real `statewise worker` command."""

    def __init__(self, url: str, logs: Path, *, lease: float, concurrency: int = 16) -> None:
        self.url = url
        self.logs = logs
        self.lease = lease
        self.concurrency = concurrency
        dsn, schema = dsn_and_schema(url)
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(FLEET), os.environ.get("PYTHONPATH", "")]),
            "FLEET_DSN": dsn,
            "FLEET_SCHEMA": schema,
        }
        self.started = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        self.started += 1
        command = [
            sys.executable, "-m", "statewise", "worker", "--db", self.url,
            "--commands", "fleet_commands", "--concurrency", str(self.concurrency),
            "--lease", str(self.lease), "--drain", "5",
        ]  # fmt: skip
        with self.log_of(self.started).open("wb") as log:
            return subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def log_of(self, number: int) -> Path:
        return self.logs / f"worker-{number}.log"

    def working(self, number: int) -> bool:
        """Whether worker ``number`` is past its start-up: it has said what it holds."""
        return b" holds " in self.log_of(number).read_bytes()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in self.logs.glob("*.log"))


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def prepare(url: str, workflow: str, items: list[tuple[str, dict[str, Any]]]) -> None:
    store = open_store(url)
    try:
        definition = load(FLEET / f"{workflow}.yaml", commands=COMMANDS)
        await store.save_workflow(definition, f"{workflow}.yaml", ["fleet_commands"])
        await ItemWriter(store, [definition]).start(definition, items)
    finally:
        await store.close()


def make_effect_tables(url: str) -> None:
    import psycopg

    dsn, schema = dsn_and_schema(url)
    with psycopg.connect(dsn, autocommit=True, options=f"-c search_path={schema}") as db:
        db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        db.execute("CREATE TABLE attempts (idempotency_key TEXT NOT NULL)")
        db.execute("CREATE TABLE effects (idempotency_key TEXT PRIMARY KEY)")


def effect_tables(url: str) -> tuple[Counter[str], set[str]]:
    import psycopg

    dsn, schema = dsn_and_schema(url)
    with psycopg.connect(dsn, options=f"-c search_path={schema}") as db:
        attempts = Counter(k for (k,) in db.execute("SELECT idempotency_key FROM attempts"))
        effects = {k for (k,) in db.execute("SELECT idempotency_key FROM effects")}
    return attempts, effects


def redone(url: str) -> int | None:
    """Attempts begun again after a kill (None until any attempt began at all)."""
    import psycopg

    dsn, schema = dsn_and_schema(url)
    with psycopg.connect(dsn, options=f"-c search_path={schema}") as db:
        ((began, distinct),) = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT idempotency_key) FROM attempts"
        ).fetchall()
    return None if began == 0 else began - distinct


async def everything(store: Store) -> list[tuple[Item, list[HistoryRecord]]]:
    listed = await store.list_items(limit=ITEMS * 2)
    return [(i, await store.history(i.workflow, i.key)) for i in listed]


def settled_history(url: str) -> list[tuple[Item, list[HistoryRecord]]]:
    """Every item with its history, once nothing is stuck, pending or due any more."""
    store = open_store(url)
    try:
        rows_by_item = run(everything(store))
        assert run(store.stuck_items()) == []
        assert run(store.pending_commands()) == 0
        assert run(store.next_timer_due()) is None
    finally:
        run(store.close())
    return rows_by_item


def wait_until_settled(url: str, workers: list[subprocess.Popen[bytes]], deadline: float) -> None:
    async def settled() -> bool:
        store = open_store(url)
        try:
            counts = await store.state_counts()
            return all(c.status is ItemStatus.DONE for c in counts)
        finally:
            await store.close()

    while time.monotonic() < deadline:
        if run(settled()):
            return
        assert any(w.poll() is None for w in workers), "every worker died"
        time.sleep(0.5)
    raise AssertionError("the fleet did not finish in time")


def stop(workers: list[subprocess.Popen[bytes]]) -> list[int]:
    """SIGTERM every worker and wait for it to drain; one that does not is killed (-9)."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    codes = []
    for worker in workers:
        try:
            codes.append(worker.wait(30))
        except subprocess.TimeoutExpired:
            worker.kill()
            codes.append(worker.wait())
    return codes


@pytest.fixture
def fleet(postgres_url: str, tmp_path: Path) -> Iterator[Fleet]:
    make_effect_tables(postgres_url)
    made = Fleet(postgres_url, tmp_path, lease=2.0)
    yield made


@pytest.mark.stress
def test_four_workers_killed_at_random_lose_nothing_and_repeat_nothing(fleet: Fleet) -> None:
    items = [(f"item-{n}", {"parts": ["a", "b", "c"]}) for n in range(ITEMS)]
    run(prepare(fleet.url, "fleet", items))
    rng = random.Random(SEED)
    workers = [fleet.spawn() for _ in range(WORKERS)]
    try:
        kills = kill_at_random(fleet, workers, rng)
        wait_until_settled(fleet.url, workers, time.monotonic() + 240)
    finally:
        exits = stop(workers)
    assert exits == [0] * WORKERS, fleet.log_text()

    rows_by_item = settled_history(fleet.url)

    assert len(rows_by_item) == ITEMS
    succeeded: list[str] = []
    for item, rows in rows_by_item:
        assert (item.state, item.status) == ("done", ItemStatus.DONE), item.key
        assert [r.seq for r in rows] == list(range(1, item.seq + 1)), item.key
        assert [r.to_state for r in rows if r.from_state != r.to_state] == PATH, item.key
        assert sorted(r.branch or "" for r in rows if r.event == "branch_done") == ["a", "b", "c"]
        assert len([r for r in rows if r.event_kind == "timer" and r.to_state == "finish"]) == 1
        n = int(item.key.removeprefix("item-"))
        retries = [r for r in rows if r.event == "failed"]
        assert len(retries) == (3 if n % 5 == 0 else 0), (item.key, retries)
        succeeded += [
            _idempotency_key(item.key, r)
            for r in rows
            if r.event in ("done", "branch_done") and r.command is not None
        ]
    attempts, effects = effect_tables(fleet.url)
    assert len(succeeded) == len(set(succeeded)), "a step was committed twice"
    assert effects == set(succeeded), "an effect is missing or belongs to no committed step"
    assert attempts.total() > len(effects), "no kill landed while a command was running"
    assert kills >= KILLS


def kill_at_random(fleet: Fleet, workers: list[subprocess.Popen[bytes]], rng: random.Random) -> int:
    """SIGKILL a random worker every few hundred milliseconds and start a new one in its place.

    At least KILLS times, and on until one kill has landed in the middle of a command (another
    worker then ran that attempt again). A worker is killed only once it has worked for
    WARM_UP seconds (its start-up done), so on a loaded machine kills cannot outpace start-ups.
    """
    # Generous: on a loaded two-core machine a replaced worker takes seconds to start, and each
    # kill waits for a warmed-up one (180 s ran out once in CI with the whole suite beside it).
    deadline = time.monotonic() + 360
    while redone(fleet.url) is None:  # the workers are up and working
        assert time.monotonic() < deadline, fleet.log_text()
        time.sleep(0.1)
    numbers = list(range(1, len(workers) + 1))  # each slot's worker, by its log's number
    working_since: dict[int, float] = {}
    kills = 0
    while kills < KILLS or not redone(fleet.url):
        assert time.monotonic() < deadline, "the kills never landed in a running command"
        time.sleep(rng.uniform(0.2, 0.5))
        now = time.monotonic()
        for number in numbers:
            if number not in working_since and fleet.working(number):
                working_since[number] = now
        ripe = [
            slot for slot, n in enumerate(numbers) if now - working_since.get(n, now) >= WARM_UP
        ]
        if not ripe:
            continue
        victim = rng.choice(ripe)
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait()
        workers[victim] = fleet.spawn()
        numbers[victim] = fleet.started
        kills += 1
    return kills


def _idempotency_key(key: str, row: HistoryRecord) -> str:
    """The key the command saw, rebuilt from its audit row (see RunCommand.idempotency_key)."""
    state = row.from_state
    branch = f"/{row.branch}" if row.branch is not None else ""
    return f"{key}:{state}#1{branch}:{row.attempt}"


@pytest.mark.stress
def test_a_worker_frozen_past_its_lease_cannot_commit_when_it_wakes(fleet: Fleet) -> None:
    run(prepare(fleet.url, "linger", [("slow-1", {"pause": 3.0})]))
    frozen = fleet.spawn()
    workers = [frozen]
    try:
        deadline = time.monotonic() + 60
        while not effect_tables(fleet.url)[0]:  # the command began on the first worker
            assert time.monotonic() < deadline, fleet.log_text()
            time.sleep(0.05)
        frozen.send_signal(signal.SIGSTOP)
        time.sleep(fleet.lease + 1.0)  # its lease runs out while it cannot heartbeat
        workers.append(fleet.spawn())
        wait_until_settled(fleet.url, workers[1:], time.monotonic() + 60)
        frozen.send_signal(signal.SIGCONT)
        time.sleep(4.0)  # its command ends and it tries to commit
    finally:
        frozen.send_signal(signal.SIGCONT)
        exits = stop(workers)
    assert exits == [0, 0], fleet.log_text()

    store = open_store(fleet.url)
    try:
        item = run(store.get_item("linger", "slow-1"))
        rows = run(store.history("linger", "slow-1"))
        assert run(store.stuck_items()) == []
    finally:
        run(store.close())
    assert (item.state, item.status, item.seq) == ("done", ItemStatus.DONE, 2)
    assert [(r.event, r.to_state) for r in rows] == [("start", "work"), ("done", "done")]
    attempts, effects = effect_tables(fleet.url)
    assert attempts["slow-1:work#1:1"] == 2  # both workers ran the attempt ...
    assert effects == {"slow-1:work#1:1"}  # ... and its effect happened once


def test_sigterm_lets_a_running_command_finish_and_commit_before_the_worker_exits(
    fleet: Fleet,
) -> None:
    run(prepare(fleet.url, "linger", [("drained-1", {"pause": 1.5})]))
    worker = fleet.spawn()
    try:
        deadline = time.monotonic() + 60
        while not effect_tables(fleet.url)[0]:  # the command is running
            assert time.monotonic() < deadline, fleet.log_text()
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, fleet.log_text()
    finally:
        stop([worker])
    store = open_store(fleet.url)
    try:
        item = run(store.get_item("linger", "drained-1"))
        assert run(store.pending_commands()) == 0
    finally:
        run(store.close())
    assert (item.state, item.status) == ("done", ItemStatus.DONE)
