"""One benchmark scenario per process: ``python bench/scenarios.py SPEC.json RESULT.json``.

Each scenario runs in a fresh interpreter so that its peak RSS (``ru_maxrss``) is its own.
Two engines do the same work:

* ``statewise``: the bench workflow through ``Runner`` on a ``SQLiteStore``;
* ``baseline``: plain asyncio + sqlite3 with the same journal settings, one UPDATE of the item
  row and one INSERT into history per transition, each transition its own transaction.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from commands import LANGUAGES, Latency, Ledger, build_registry, needs_revision
from measure import cpu_seconds, db_footprint, peak_rss_bytes

from statewise.definition import Definition, load
from statewise.store import SQLiteStore
from statewise.worker.registry import CommandRegistry
from statewise.worker.runner import Runner

JSON = Any
Engine = Literal["statewise", "baseline"]
Counts = dict[str, JSON]
WORKFLOW_FILE = Path(__file__).with_name("workflow.yaml")
FINAL_STATE = "publish"


@dataclass(frozen=True, slots=True)
class Spec:
    """What one scenario process runs.

    ``transitions`` is the total the baseline drives (taken from a statewise run of the same
    size); statewise ignores it.
    """

    name: str
    engine: Engine
    items: int
    db_path: str
    latency: float = 0.0
    jitter: float = 0.0
    concurrency: int = 64
    batch_size: int = 256
    transitions: int = 0


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall time of a run, split into starting the items and running them to the end."""

    start_seconds: float
    run_seconds: float
    cpu_seconds: float

    @property
    def total_seconds(self) -> float:
        """Start plus run."""
        return self.start_seconds + self.run_seconds


class BenchFailure(RuntimeError):
    """A run did not do the work it was asked to; its figures must not be reported."""


Driver = Callable[[Spec], Coroutine[Any, Any, tuple[Timing, Counts]]]


# --- shared ------------------------------------------------------------------------------------


def item_key(index: int) -> str:
    """Business key of the ``index``-th item."""
    return f"item-{index:06d}"


def item_payloads(count: int) -> Iterator[tuple[str, dict[str, JSON]]]:
    """Start data of every item: a title and the languages the parallel stage maps over."""
    for index in range(count):
        yield item_key(index), {"title": f"Article {index}", "languages": list(LANGUAGES)}


async def timed(start: Callable[[], Awaitable[None]], run: Callable[[], Awaitable[None]]) -> Timing:
    """Time ``start`` then ``run``, and the CPU time both took."""
    cpu_before, began = cpu_seconds(), time.perf_counter()
    await start()
    started = time.perf_counter()
    await run()
    ended = time.perf_counter()
    return Timing(started - began, ended - started, cpu_seconds() - cpu_before)


def measure(spec: Spec, drive: Driver) -> dict[str, JSON]:
    """Run ``drive`` for ``spec`` and add the figures every engine reports."""
    rss_before = peak_rss_bytes()
    timing, counts = asyncio.run(drive(spec))
    rss_after = peak_rss_bytes()
    footprint = db_footprint(Path(spec.db_path))
    transitions = int(counts["transitions"])
    return {
        "spec": asdict(spec),
        **counts,
        "start_seconds": timing.start_seconds,
        "run_seconds": timing.run_seconds,
        "wall_seconds": timing.total_seconds,
        "transitions_per_second": transitions / timing.total_seconds,
        "cpu_seconds": timing.cpu_seconds,
        "cpu_utilisation": timing.cpu_seconds / timing.total_seconds,
        "peak_rss_bytes": rss_after,
        "peak_rss_delta_bytes": rss_after - rss_before,
        "db": footprint.as_dict(),
        "db_bytes_per_transition": footprint.total_bytes / transitions,
    }


# --- statewise ---------------------------------------------------------------------------------


def load_definition(registry: CommandRegistry) -> Definition:
    """The bench workflow from its YAML file, checked against the registered commands."""
    return load(WORKFLOW_FILE, commands=registry.names())


async def drive_statewise(
    spec: Spec, on_store: Callable[[SQLiteStore], None] | None = None
) -> tuple[Timing, Counts]:
    """Start ``spec.items`` items and run them to their final state.

    ``on_store`` sees the store before the run (the profiler uses it to trace SQL).
    """
    ledger = Ledger()
    registry = build_registry(Latency(spec.latency, spec.jitter), ledger)
    definition = load_definition(registry)
    store = SQLiteStore(spec.db_path)
    if on_store is not None:
        on_store(store)
    runner = Runner(
        store, [definition], registry, concurrency=spec.concurrency, batch_size=spec.batch_size
    )

    async def start() -> None:
        report = await runner.start(definition, item_payloads(spec.items))
        if report.created != spec.items:
            raise BenchFailure(f"{spec.name}: started {report.created} of {spec.items} items")

    try:
        timing = await timed(start, runner.run)
    finally:
        await store.close()
    counts = verify_statewise(spec)
    if ledger.executions != counts["command_executions"]:
        raise BenchFailure(
            f"{spec.name}: {ledger.executions} commands ran but history records "
            f"{counts['command_executions']}"
        )
    return timing, {**counts, "command_latency_seconds": ledger.slept}


def verify_statewise(spec: Spec) -> dict[str, JSON]:
    """Check every item reached the final state by the expected path; count what was written."""
    with sqlite3.connect(spec.db_path) as db:
        where = dict(db.execute("SELECT state || '/' || status, COUNT(*) FROM items GROUP BY 1"))
        revised = {
            key
            for (key,) in db.execute(
                "SELECT key FROM items WHERE json_extract(visits, '$.enrich') = 2"
            )
        }
        (transitions,) = db.execute("SELECT COUNT(*) FROM history").fetchone()
        (executions,) = db.execute(
            "SELECT COUNT(*) FROM history WHERE json_extract(detail, '$.command') IS NOT NULL"
        ).fetchone()
        (leftover,) = db.execute(
            "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM timers)"
        ).fetchone()
    db.close()
    expected_revised = {item_key(i) for i in range(spec.items) if needs_revision(item_key(i))}
    problems = []
    if where != {f"{FINAL_STATE}/done": spec.items}:
        problems.append(f"items by state/status are {where}, expected all {spec.items} in publish")
    if revised != expected_revised:
        problems.append(f"{len(revised)} items revised, expected {len(expected_revised)}")
    if leftover:
        problems.append(f"{leftover} outbox/timer rows left behind")
    if problems:
        raise BenchFailure(f"{spec.name}: " + "; ".join(problems))
    return {
        "items_final": spec.items,
        "items_revised": len(revised),
        "transitions": int(transitions),
        "command_executions": int(executions),
    }


# --- baseline ----------------------------------------------------------------------------------

_BASELINE_SCHEMA = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, state TEXT NOT NULL,
    seq INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE history (
    item_id INTEGER NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, from_state TEXT,
    to_state TEXT NOT NULL, event TEXT NOT NULL, PRIMARY KEY (item_id, seq)) WITHOUT ROWID;
"""
_BASELINE_STATES = ("intake", "validate", "enrich", "review", "translate", "quality", "publish")


def open_baseline(path: str) -> sqlite3.Connection:
    """A connection with the store's journal settings, and the two-table schema."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_BASELINE_SCHEMA)
    return db


def transitions_per_item(total: int, items: int) -> list[int]:
    """Split ``total`` transitions over ``items`` as evenly as whole numbers allow."""
    share, extra = divmod(total, items)
    return [share + (1 if index < extra else 0) for index in range(items)]


async def baseline_item(db: sqlite3.Connection, item_id: int, transitions: int) -> None:
    """Move one item through ``transitions`` states, committing each move on its own."""
    state = _BASELINE_STATES[0]
    for seq in range(1, transitions + 1):
        await asyncio.sleep(0)  # the command "returns at once": yield to the loop like a task
        target = _BASELINE_STATES[seq % len(_BASELINE_STATES)]
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


async def baseline_workers(db: sqlite3.Connection, plan: list[int], concurrency: int) -> None:
    """``concurrency`` tasks take items from a queue, as a hand-written worker pool would."""
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for item_id, transitions in enumerate(plan, start=1):
        queue.put_nowait((item_id, transitions))

    async def worker() -> None:
        while not queue.empty():
            item_id, transitions = queue.get_nowait()
            await baseline_item(db, item_id, transitions)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def drive_baseline(spec: Spec) -> tuple[Timing, Counts]:
    """Create the item rows, then drive ``spec.transitions`` transitions across them."""
    db = open_baseline(spec.db_path)
    plan = transitions_per_item(spec.transitions, spec.items)

    async def start() -> None:
        now = time.time()
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO items (id, key, state, seq, updated_at) VALUES (?, ?, ?, 0, ?)",
            [(i, item_key(i - 1), _BASELINE_STATES[0], now) for i in range(1, spec.items + 1)],
        )
        db.execute("COMMIT")

    async def run() -> None:
        await baseline_workers(db, plan, spec.concurrency)

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


DRIVERS: dict[Engine, Driver] = {
    "statewise": drive_statewise,
    "baseline": drive_baseline,
}


def main(spec_file: str, result_file: str) -> None:
    """Run the scenario in ``spec_file`` and write its figures to ``result_file``."""
    spec = Spec(**json.loads(Path(spec_file).read_text()))
    result = measure(spec, DRIVERS[spec.engine])
    Path(result_file).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:3])
