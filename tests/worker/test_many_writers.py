"""Many writers on one SQLite file: a runner, a storm of concurrent sends, and a reader.

This is where the landed engine failed: a ``send`` while a runner was active left an item
active forever with nothing pending, because the runner judged a command result against its
cached copy of the item and deleted the work row unfenced. Here a runner process, three
sender processes and this process (reading) share one file; the invariant *every active item
has a pending command or timer, or is waiting* is checked on every snapshot the reader takes,
and at the end every item is final with a gap-free audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path

from statewise.engine import ItemStatus
from statewise.errors import InvalidEventError, StaleLeaseError
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner

from .storm import definition, registry

ROLE = Path(__file__).with_name("storm.py")
ITEMS = 150
SENDERS = 3
SENDS = 120
PATHS = {
    ("intake", "review", "process", "ship", "shipped"),
    ("intake", "review", "rejected"),
}


def spawn(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROLE), *(str(a) for a in args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def approve_everything_waiting(store: SQLiteStore) -> None:
    runner = Runner(store, [definition()], registry)
    for item in await store.list_items(state="review", limit=ITEMS):
        # the timer or a sender may have got there first
        with contextlib.suppress(InvalidEventError, StaleLeaseError):
            await runner.send("storm", item.key, "approve", {}, "closer")


def test_sends_during_a_run_never_leave_an_item_without_pending_work(tmp_path: Path) -> None:
    db = tmp_path / "storm.sqlite"
    store = SQLiteStore(db)
    setup = Runner(store, [definition()], registry)

    asyncio.run(store.save_workflow(definition(), "storm.yaml", []))
    runner = spawn("runner", db, 60)
    senders = [spawn("sender", db, seed, SENDS, ITEMS) for seed in range(SENDERS)]
    for role in (runner, *senders):
        assert role.stdout is not None and role.stdout.readline() == "ready\n", role.stderr
    asyncio.run(setup.start(definition(), ((f"item-{n}", {"n": n}) for n in range(ITEMS))))
    db.with_suffix(".go").touch()

    snapshots = 0
    violations: list[object] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        violations += asyncio.run(store.stuck_items())
        snapshots += 1
        if all(s.poll() is not None for s in senders):
            asyncio.run(approve_everything_waiting(store))
            counts = asyncio.run(store.state_counts())
            if all(c.status is ItemStatus.DONE for c in counts):
                break
        time.sleep(0.01)
    db.with_suffix(".stop").touch()
    _, runner_errors = runner.communicate(timeout=30)
    assert runner.returncode == 0, runner_errors
    for sender in senders:
        out, err = sender.communicate(timeout=30)
        assert sender.returncode == 0, err
        assert int(out.split()[-1]) > 0, f"no event of this sender was accepted: {out} {err}"

    assert violations == [], violations
    assert snapshots > 20
    items = asyncio.run(store.list_items(limit=ITEMS))
    assert len(items) == ITEMS
    assert {i.status for i in items} == {ItemStatus.DONE}
    assert asyncio.run(store.pending_commands()) == 0
    assert asyncio.run(store.next_timer_due()) is None
    for item in items:
        rows = asyncio.run(store.history("storm", item.key))
        assert [r.seq for r in rows] == list(range(1, item.seq + 1)), item.key
        moves = tuple(dict.fromkeys(r.to_state for r in rows if r.from_state != r.to_state))
        assert moves in PATHS, (item.key, moves)
    asyncio.run(store.close())
