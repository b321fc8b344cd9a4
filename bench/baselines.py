"""The two hand-written engines statewise is measured against, on the same journal settings.

* ``baseline``: the floor of any durable engine on SQLite. Per transition one UPDATE of a
  narrow item row and one INSERT into history, each its own transaction; it moves no data and
  runs no command, it only spends the same number of commits.
* ``durable``: what a hand-written durable engine is. It runs the bench workflow's own flow
  (the revision loop, the three translation branches and their join) with the same commands,
  keeps each item's context in memory and, per transition, writes one UPDATE of the item row
  carrying its whole context as JSON and one INSERT of a history row with the step's output,
  committed on its own. Items start at about 1 KB (``workload.ITEM_BYTES``) and every stage
  adds its small result.

Both start their items in one bulk transaction (more generous than statewise, which commits
starts in batches) and run ``Spec.concurrency`` items at a time from a queue, as a worker pool
would.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from commands import REVISION_THRESHOLD, Command, Latency, Ledger, build_commands, needs_revision
from workload import FINAL_STATE, BenchFailure, Counts, Spec, Timing, item_key, item_payloads, timed

from statewise.contract import CommandContext

JSON = Any
Job = Callable[[], Awaitable[None]]
_WORKFLOW = "bench_pipeline"
_PLAIN_SCHEMA = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, state TEXT NOT NULL,
    seq INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE history (
    item_id INTEGER NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, from_state TEXT,
    to_state TEXT NOT NULL, event TEXT NOT NULL, PRIMARY KEY (item_id, seq)) WITHOUT ROWID;
"""
_DURABLE_SCHEMA = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, state TEXT NOT NULL,
    seq INTEGER NOT NULL, context TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE history (
    item_id INTEGER NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, from_state TEXT,
    to_state TEXT NOT NULL, event TEXT NOT NULL, output TEXT,
    PRIMARY KEY (item_id, seq)) WITHOUT ROWID;
"""
_PLAIN_STATES = ("intake", "validate", "enrich", "review", "translate", "quality", "publish")
_NEXT = {"intake": "validate", "validate": "enrich", "enrich": "review", "quality": FINAL_STATE}


def open_db(path: str, schema: str) -> sqlite3.Connection:
    """A connection with the store's journal settings (WAL, synchronous=NORMAL) and ``schema``."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db


def dumps(value: JSON) -> str:
    """Compact JSON, as the statewise store writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def run_pool(jobs: Iterable[Job], concurrency: int) -> None:
    """``concurrency`` tasks take jobs from one queue until it is empty."""
    queue = deque(jobs)

    async def worker() -> None:
        while queue:
            await queue.popleft()()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# --- baseline: the commits alone -----------------------------------------------------------


def transitions_per_item(total: int, items: int) -> list[int]:
    """Split ``total`` transitions over ``items`` as evenly as whole numbers allow."""
    share, extra = divmod(total, items)
    return [share + (1 if index < extra else 0) for index in range(items)]


async def plain_item(db: sqlite3.Connection, item_id: int, transitions: int) -> None:
    """Move one item through ``transitions`` states, committing each move on its own."""
    state = _PLAIN_STATES[0]
    for seq in range(1, transitions + 1):
        await asyncio.sleep(0)  # the command "returns at once": yield to the loop like a task
        target = _PLAIN_STATES[seq % len(_PLAIN_STATES)]
        now = time.time()
        db.execute("BEGIN")
        db.execute(
            "UPDATE items SET state = ?, seq = ?, updated_at = ? WHERE id = ?",
            (target, seq, now, item_id),
        )
        db.execute(
            "INSERT INTO history (item_id, seq, at, from_state, to_state, event) "
            "VALUES (?, ?, ?, ?, ?, 'done')",
            (item_id, seq, now, state, target),
        )
        db.execute("COMMIT")
        state = target


async def drive_plain(spec: Spec) -> tuple[Timing, Counts]:
    """Create the item rows, then drive ``spec.transitions`` transitions across them."""
    db = open_db(spec.db_path, _PLAIN_SCHEMA)
    plan = transitions_per_item(spec.transitions, spec.items)

    async def start() -> None:
        now = time.time()
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO items (id, key, state, seq, updated_at) VALUES (?, ?, ?, 0, ?)",
            [(i, item_key(i - 1), _PLAIN_STATES[0], now) for i in range(1, spec.items + 1)],
        )
        db.execute("COMMIT")

    async def run() -> None:
        jobs = (partial(plain_item, db, i, n) for i, n in enumerate(plan, start=1))
        await run_pool(jobs, spec.concurrency)

    try:
        timing = await timed(start, run)
        (transitions,) = db.execute("SELECT COUNT(*) FROM history").fetchone()
        (moved,) = db.execute("SELECT SUM(seq) FROM items").fetchone()
    finally:
        db.close()
    if transitions != spec.transitions or moved != spec.transitions:
        raise BenchFailure(
            f"{spec.name}: wrote {transitions} history rows and moved items {moved} times, "
            f"expected {spec.transitions}"
        )
    return timing, {"items_final": spec.items, "transitions": int(transitions)}


# --- durable: a hand-written durable engine ------------------------------------------------


@dataclass
class DurableItem:
    """The hand-written engine's in-memory copy of one item; the row is rewritten per step."""

    id: int
    key: str
    context: dict[str, JSON]
    state: str = "intake"
    seq: int = 1


def durable_commit(
    db: sqlite3.Connection, item: DurableItem, to_state: str, event: str, output: JSON
) -> None:
    """One transition: the item row with its whole context, one history row, one commit."""
    item.seq += 1
    now = time.time()
    db.execute("BEGIN")
    db.execute(
        "UPDATE items SET state = ?, seq = ?, context = ?, updated_at = ? WHERE id = ?",
        (to_state, item.seq, dumps(item.context), now, item.id),
    )
    db.execute(
        "INSERT INTO history (item_id, seq, at, from_state, to_state, event, output) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (item.id, item.seq, now, item.state, to_state, event, dumps(output)),
    )
    db.execute("COMMIT")
    item.state = to_state


async def durable_call(
    commands: Mapping[str, Command], item: DurableItem, name: str, branch: str | None = None
) -> JSON:
    """Run one of the bench's commands on the item, yielding to the loop first like a task."""
    await asyncio.sleep(0)
    call = CommandContext(
        workflow=_WORKFLOW,
        key=item.key,
        state=item.state,
        attempt=1,
        idempotency_key=f"{item.key}:{item.seq}:{branch or ''}:1",
        context=item.context,
        branch=branch,
        input=branch,
    )
    return await commands[name](call)


def next_state(state: str, output: JSON) -> str:
    """The workflow's transitions, written by hand: review sends weak drafts back to enrich."""
    if state == "review":
        return "enrich" if output["score"] < REVISION_THRESHOLD else "translate"
    return _NEXT[state]


async def durable_item(
    db: sqlite3.Connection, commands: Mapping[str, Command], item: DurableItem
) -> None:
    """Run one item to the final state, one committed transition per step."""
    while item.state != FINAL_STATE:
        if item.state == "translate":
            results: dict[str, JSON] = item.context.setdefault("translate", {})
            for language in item.context["languages"]:
                output = await durable_call(commands, item, "translate", language)
                results[language] = output
                durable_commit(db, item, "translate", "branch_done", output)
            durable_commit(db, item, "quality", "join", None)
            continue
        output = await durable_call(commands, item, item.state)
        item.context[item.state] = output
        durable_commit(db, item, next_state(item.state, output), "done", output)


async def drive_durable(spec: Spec) -> tuple[Timing, Counts]:
    """Start the items with their 1 KB context, then run each through the workflow."""
    db = open_db(spec.db_path, _DURABLE_SCHEMA)
    ledger = Ledger()
    commands = build_commands(Latency(spec.latency, spec.jitter), ledger)
    items = [
        DurableItem(index, key, payload)
        for index, (key, payload) in enumerate(item_payloads(spec.items), start=1)
    ]

    async def start() -> None:
        now = time.time()
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO items (id, key, state, seq, context, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(i.id, i.key, i.state, i.seq, dumps(i.context), now) for i in items],
        )
        db.executemany(
            "INSERT INTO history (item_id, seq, at, from_state, to_state, event, output) "
            "VALUES (?, ?, ?, NULL, ?, 'start', NULL)",
            [(i.id, i.seq, now, i.state) for i in items],
        )
        db.execute("COMMIT")

    async def run() -> None:
        await run_pool((partial(durable_item, db, commands, i) for i in items), spec.concurrency)

    try:
        timing = await timed(start, run)
        counts = verify_durable(db, spec, ledger)
    finally:
        db.close()
    return timing, counts


def verify_durable(db: sqlite3.Connection, spec: Spec, ledger: Ledger) -> Counts:
    """Check the durable baseline did the statewise run's work, by the same path."""
    where = dict(db.execute("SELECT state, COUNT(*) FROM items GROUP BY state"))
    revised = {
        key
        for (key,) in db.execute(
            "SELECT key FROM items WHERE json_extract(context, '$.enrich.revision') = 2"
        )
    }
    (transitions,) = db.execute("SELECT COUNT(*) FROM history").fetchone()
    (executions,) = db.execute(
        "SELECT COUNT(*) FROM history WHERE event IN ('done', 'branch_done')"
    ).fetchone()
    expected_revised = {item_key(i) for i in range(spec.items) if needs_revision(item_key(i))}
    problems = []
    if where != {FINAL_STATE: spec.items}:
        problems.append(f"items by state are {where}, expected all {spec.items} in publish")
    if revised != expected_revised:
        problems.append(f"{len(revised)} items revised, expected {len(expected_revised)}")
    if transitions != spec.transitions:
        problems.append(
            f"{transitions} transitions where statewise made {spec.transitions}: the "
            "hand-written flow no longer matches bench/workflow.yaml"
        )
    if executions != ledger.executions:
        problems.append(f"{ledger.executions} commands ran but history records {executions}")
    if problems:
        raise BenchFailure(f"{spec.name}: " + "; ".join(problems))
    return {
        "items_final": spec.items,
        "items_revised": len(revised),
        "transitions": int(transitions),
        "command_executions": int(executions),
        "command_latency_seconds": ledger.slept,
    }
