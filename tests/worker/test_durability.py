"""A worker killed at any instant loses nothing and repeats no step.

The worker is a real process (``workflows.py`` run as a script) killed with SIGKILL, so
nothing gets a chance to clean up: no ``finally``, no lease handed back, the lock file's
``flock`` released only by the kernel. A fresh store and runner must carry on from the last
committed step.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from statewise.engine import HistoryRecord, Item, ItemStatus
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner

from .workflows import WORKFLOWS, expected_path, registry

WORKER = Path(__file__).with_name("workflows.py")
ITEMS = 300
KILLS = 50
SEED = 20_240_611


class Worker:
    """One worker process on ``db``: started, waited for until it has opened the store."""

    def __init__(self, db: Path, workflow: str, count: int, concurrency: int, pause: float):
        self.log = db.with_suffix(".stderr")
        args = [str(a) for a in (WORKER, db, workflow, count, concurrency, pause)]
        with self.log.open("a") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, *args], stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        assert ready == "ready\n", self.log.read_text()

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.close()

    def finish(self, timeout: float) -> None:
        assert self.process.wait(timeout) == 0, self.log.read_text()
        self.close()

    def close(self) -> None:
        assert self.process.stdout is not None
        self.process.stdout.close()


@contextmanager
def opened(db: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(db)
    try:
        yield store
    finally:
        asyncio.run(store.close())


async def everything(store: SQLiteStore) -> list[tuple[Item, list[HistoryRecord]]]:
    """Every item with its context, and its audit trail."""
    listed = await store.list_items(limit=10_000)
    items = await store.get_items([(i.workflow, i.key) for i in listed])
    return [(i, await store.history(i.workflow, i.key)) for i in items.values()]


def entered(rows: list[HistoryRecord]) -> list[str]:
    """The states an item moved into, in order (retries and branch rows stay in place)."""
    return [r.to_state for r in rows if r.from_state != r.to_state]


def test_a_durable_timer_fires_exactly_once_after_the_worker_was_killed(tmp_path: Path) -> None:
    db = tmp_path / "timers.sqlite"
    began = time.time()
    worker = Worker(db, "deadline", 20, 8, 0.0)
    with opened(db) as store:
        while len(asyncio.run(store.list_items())) < 20:
            time.sleep(0.02)
        worker.kill()  # while it waits for the deadline, one second after the start
        assert asyncio.run(store.state_counts())[0].count == 20
        assert asyncio.run(store.next_timer_due()) > began + 1
        # as if it had died just after claiming them: the timers stay leased for ten minutes
        held = [("deadline", WORKFLOWS["deadline"]().version)]
        assert len(asyncio.run(store.claim_timers("dead", 100, began + 5, 600.0, held))) == 20

    for _ in range(2):  # a fresh store and runner; the second run must find nothing to do
        with opened(db) as store:
            runner = Runner(store, [WORKFLOWS["deadline"]()], registry)
            asyncio.run(runner.run(max_wait=3.0))
            items = asyncio.run(everything(store))
            assert asyncio.run(store.stuck_items()) == []

    assert time.time() - began >= 1.0
    for item, rows in items:
        assert item.state == "expired"
        assert [r.event for r in rows] == ["start", "timeout"]
        assert rows[1].at - rows[0].at >= 1.0


@pytest.mark.stress
def test_a_worker_killed_at_random_moments_loses_nothing_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "stages.sqlite"
    rng = random.Random(SEED)
    for kill in range(KILLS):
        worker = Worker(db, "stages", ITEMS, 4, 0.05)
        time.sleep(rng.uniform(0.05, 0.4))
        assert worker.alive(), f"all work was done after {kill} kills: make the workload larger"
        worker.kill()
    Worker(db, "stages", ITEMS, 16, 0.05).finish(timeout=120)

    with opened(db) as store:
        items = asyncio.run(everything(store))
        assert asyncio.run(store.pending_commands()) == 0
        assert asyncio.run(store.next_timer_due()) is None
        assert asyncio.run(store.stuck_items()) == []

    assert len(items) == ITEMS
    # commands run at least once (a killed attempt runs again, under the same idempotency key);
    # steps commit exactly once: every attempt that began is one command row of the audit trail
    calls = Counter(db.with_suffix(".calls").read_text().split())
    finished = [r for _, rows in items for r in rows if r.event in ("done", "branch_done")]
    assert len(calls) == len([r for r in finished if r.command is not None])
    assert calls.total() > len(calls), "no kill landed while a command was running"
    for item, rows in items:
        n = int(item.key.removeprefix("item-"))
        assert (item.state, item.status) == ("done", ItemStatus.DONE)
        assert (
            [r.seq for r in rows] == list(range(1, len(rows) + 1)) == list(range(1, item.seq + 1))
        )
        assert entered(rows) == expected_path(n), item.key
        assert Counter(entered(rows)) == item.visits
        assert_each_branch_done_once(item, rows)


def assert_each_branch_done_once(item: Item, rows: list[HistoryRecord]) -> None:
    branches = sorted(r.branch or "" for r in rows if r.event == "branch_done")
    if item.visits.get("fanout"):
        assert branches == ["a", "b", "c"], item.key
        parts: dict[str, Any] = item.context["parts_done"]
        assert sorted(parts) == branches
    else:
        assert branches == []
