"""One benchmark scenario per process: ``python bench/scenarios.py SPEC.json RESULT.json``.

Each scenario runs in a fresh interpreter so that its peak RSS (``ru_maxrss``) is its own.
Three engines do the same work on the same items (``workload.py``):

* ``statewise``: the bench workflow through ``Runner`` on a ``SQLiteStore``, its items all
  started up front or, with ``Spec.window``, fed while the runner runs;
* ``baseline`` and ``durable``: the hand-written engines of ``baselines.py``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from baselines import drive_durable, drive_plain
from commands import Latency, Ledger, build_registry, needs_revision
from measure import db_footprint, peak_rss_bytes
from workload import (
    FINAL_STATE,
    BenchFailure,
    Counts,
    Driver,
    Engine,
    Spec,
    Timing,
    item_key,
    item_payloads,
    timed,
)

from statewise.contract import CommandRegistry
from statewise.definition import Definition, load
from statewise.engine import ItemStatus, StepResult
from statewise.store import SQLiteStore
from statewise.worker.runner import Runner

JSON = Any
WORKFLOW_FILE = Path(__file__).with_name("workflow.yaml")


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


def load_definition(registry: CommandRegistry) -> Definition:
    """The bench workflow from its YAML file, checked against the registered commands."""
    return load(WORKFLOW_FILE, commands=registry.names())


async def drive_statewise(
    spec: Spec, on_store: Callable[[SQLiteStore], None] | None = None
) -> tuple[Timing, Counts]:
    """Start ``spec.items`` items (or the first ``spec.window``) and run them to their end.

    ``on_store`` sees the store before the run (the profiler uses it to trace SQL).
    """
    ledger = Ledger()
    registry = build_registry(Latency(spec.latency, spec.jitter), ledger)
    definition = load_definition(registry)
    store = SQLiteStore(spec.db_path)
    if on_store is not None:
        on_store(store)
    finished: asyncio.Queue[str] = asyncio.Queue()
    runner = Runner(
        store,
        [definition],
        registry,
        concurrency=spec.concurrency,
        batch_size=spec.batch_size,
        on_commit=partial(_report_done, finished=finished) if spec.window else None,
    )
    payloads = item_payloads(spec.items)
    first = list(islice(payloads, spec.window or spec.items))

    async def start() -> None:
        report = await runner.start(definition, first)
        if report.created != len(first):
            raise BenchFailure(f"{spec.name}: started {report.created} of {len(first)} items")

    async def run() -> None:
        if spec.window:
            await feed(runner, definition, payloads, finished, len(first))
        else:
            await runner.run()

    try:
        timing = await timed(start, run)
    finally:
        await store.close()
    counts = verify_statewise(spec)
    if ledger.executions != counts["command_executions"]:
        raise BenchFailure(
            f"{spec.name}: {ledger.executions} commands ran but history records "
            f"{counts['command_executions']}"
        )
    return timing, {**counts, "command_latency_seconds": ledger.slept}


def _report_done(results: Sequence[StepResult], finished: asyncio.Queue[str]) -> None:
    """``on_commit``: queue the key of every item that reached its final state."""
    for result in results:
        if result.item.status is ItemStatus.DONE:
            finished.put_nowait(result.item.key)


async def feed(
    runner: Runner,
    definition: Definition,
    rest: Iterator[tuple[str, JSON]],
    finished: asyncio.Queue[str],
    admitted: int,
) -> None:
    """Run while admitting the ``rest``, the next one each time an admitted item finishes.

    Each admission is a task of its own, as each request to a service is: items finishing in
    the same commit are admitted together.
    """
    stop = asyncio.Event()
    worker = asyncio.create_task(runner.run(stop=stop))
    starts = []
    for key, payload in rest:
        await _next_finished(finished, worker)
        starts.append(asyncio.create_task(runner.start(definition, [(key, payload)])))
    for _ in range(admitted):
        await _next_finished(finished, worker)
    await asyncio.gather(*starts)
    stop.set()
    await worker


async def _next_finished(finished: asyncio.Queue[str], worker: asyncio.Task[None]) -> str:
    """The next finished item's key; the runner's own error if it stopped first."""
    waiter = asyncio.ensure_future(finished.get())
    await asyncio.wait((waiter, worker), return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        waiter.cancel()
        worker.result()  # raises what stopped the runner
        raise BenchFailure("the runner stopped while items were still running")
    return waiter.result()


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


DRIVERS: dict[Engine, Driver] = {
    "statewise": drive_statewise,
    "baseline": drive_plain,
    "durable": drive_durable,
}


def main(spec_file: str, result_file: str) -> None:
    """Run the scenario in ``spec_file`` and write its figures to ``result_file``."""
    spec = Spec(**json.loads(Path(spec_file).read_text()))
    result = measure(spec, DRIVERS[spec.engine])
    Path(result_file).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:3])
