"""statewise on PostgreSQL with 1, 2 and 4 worker processes: ``python bench/workers.py``.

Two workloads run the four-stage workflow of ``pgcommands/pipeline.yaml``: every command awaits
20 ms (I/O-bound: what scales with processes is the number of commands in flight), or returns
at once (CPU- and commit-bound). For each number of workers, statewise (real ``statewise
worker`` processes) and the raw psycopg baseline (``rawpg.py``: the same rows per transition,
written by hand from the same number of processes) run on fresh schemas, one after the other,
so both see the same machine. Wall time runs from the start of the items (started by this
process, the workers already waiting) to the last commit. Figures go to
``bench/results-postgres.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from measure import machine_info
from pgcommands.stages import STAGES, start_data
from pgprocs import (
    BENCH,
    CpuMeter,
    Database,
    Fleet,
    analyze,
    raw_command,
    statewise_command,
    verify,
    wait_all_done,
    worker_env,
)
from rawpg import seed
from report import Target, targets_table
from rich.console import Console
from rich.table import Table
from run import git_revision

from statewise.definition import Definition, load
from statewise.store import open_store
from statewise.worker import ItemWriter

JSON = Any
DSN = "postgresql://postgres@127.0.0.1:5432/test"
ENGINES = ("statewise", "raw")
SCALING_TARGET = 3.0
RAW_TARGET = 0.5
RUN_DEADLINE = 120.0


@dataclass(frozen=True, slots=True)
class Workload:
    """Items through the workflow, each command awaiting ``latency`` seconds."""

    name: str
    latency: float
    items: int
    concurrency: int

    def ideal_items_per_second(self, workers: int) -> float | None:
        """What the in-flight window allows: workers x concurrency / (latency x stages)."""
        if self.latency <= 0:
            return None
        return workers * self.concurrency / (self.latency * len(STAGES))


@dataclass(frozen=True, slots=True)
class Plan:
    """What one benchmark run measures."""

    workloads: tuple[Workload, ...]
    workers: tuple[int, ...]
    repeat: int
    dsn: str
    output: Path
    cold: bool = False


def _definition() -> Definition:
    return load(BENCH / "pgcommands" / "pipeline.yaml", commands=set(STAGES))


def _start_statewise(db: Database, items: int) -> None:
    """Start the items through ``ItemWriter``, as ``statewise start`` does."""
    definition = _definition()
    store = open_store(db.store_url)
    try:
        data = [(f"item-{n}", start_data(n)) for n in range(items)]
        asyncio.run(ItemWriter(store, [definition]).start(definition, data))
    finally:
        asyncio.run(store.close())


def _save_workflow(db: Database) -> None:
    """The schema and its tables, and the stored version the statewise workers will hold."""
    store = open_store(db.store_url)
    try:
        asyncio.run(store.save_workflow(_definition(), "pipeline.yaml", ["pgcommands.commands"]))
    finally:
        asyncio.run(store.close())


def _start_raw(db: Database, items: int) -> None:
    """Start the items with the raw baseline's bulk statement."""
    with db.connect(tagged=True) as conn:
        seed(conn, items)


def run_once(
    engine: str, workload: Workload, workers: int, db: Database, logs: Path, *, cold: bool
) -> dict[str, JSON]:
    """One measured run on a fresh schema.

    The workers come up and wait, and are paused (SIGSTOP) so that none has a head start; the
    items are started and (unless ``cold``) analyzed; the clock runs from resuming every
    worker at once to the last commit.
    """
    _save_workflow(db)
    fleet = Fleet(logs, f"{db.schema}-{engine}")
    if engine == "statewise":
        env = worker_env({"STATEWISE_BENCH_LATENCY": str(workload.latency)})
        command, marker = statewise_command(db, workload.concurrency), " holds "
    else:
        env = worker_env({})
        command, marker = raw_command(db, workload.concurrency, workload.latency), "ready"
    try:
        for _ in range(workers):
            fleet.spawn(command, env)
        fleet.wait_ready(marker)
        fleet.pause()
        started = time.monotonic()
        (_start_statewise if engine == "statewise" else _start_raw)(db, workload.items)
        start_seconds = time.monotonic() - started
        if not cold:
            analyze(db)
        meter = CpuMeter(db, fleet.pids)
        load_before = os.getloadavg()[0]
        meter.start()
        began = time.time()
        fleet.resume()
        first, last = wait_all_done(
            db, workload.items, time.monotonic() + RUN_DEADLINE, fleet.check_alive
        )
        cpu = meter.stop()
        exits = fleet.stop()
    finally:
        fleet.kill()
    if any(exits):
        raise RuntimeError(f"{engine} workers exited with {exits}:\n{fleet.tail()}")
    counts = verify(db, workload.items)
    wall = last - began
    transitions = counts["history"] - workload.items  # the start rows are written before
    return {
        "workload": workload.name,
        "engine": engine,
        "workers": workers,
        "concurrency": workload.concurrency,
        "latency": workload.latency,
        "items": workload.items,
        "analyzed": not cold,
        "transitions": transitions,
        "wall_seconds": wall,
        "start_seconds": start_seconds,
        "first_commit_seconds": first - began,
        "items_per_second": workload.items / wall,
        "transitions_per_second": transitions / wall,
        "load_average_before": load_before,
        **cpu,
    }


def median(runs: list[dict[str, JSON]]) -> dict[str, JSON]:
    """The run with the median wall time, remembering every repeat's."""
    ordered = sorted(runs, key=lambda run: float(run["wall_seconds"]))
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["repeats_wall_seconds"] = [run["wall_seconds"] for run in runs]
    return chosen


def measure_all(plan: Plan, logs: Path, console: Console) -> list[dict[str, JSON]]:
    """Every workload x workers x engine; engines alternate so both see the same load."""
    rows = []
    serial = 0
    for workload in plan.workloads:
        for workers in plan.workers:
            runs: dict[str, list[dict[str, JSON]]] = {engine: [] for engine in ENGINES}
            for attempt in range(plan.repeat):
                order = ENGINES if attempt % 2 == 0 else ENGINES[::-1]
                for engine in order:
                    serial += 1
                    db = Database(plan.dsn, f"bench_{os.getpid()}_{serial}")
                    console.print(
                        f"[dim]{workload.name}: {engine}, {workers} worker(s), "
                        f"{workload.items:,} items...[/]"
                    )
                    try:
                        found = run_once(engine, workload, workers, db, logs, cold=plan.cold)
                        runs[engine].append(found)
                    finally:
                        db.drop()
            rows += [median(runs[engine]) for engine in ENGINES]
    return _with_ratios(rows, plan)


def _with_ratios(rows: list[dict[str, JSON]], plan: Plan) -> list[dict[str, JSON]]:
    """Add the ratio to one worker (same engine and workload) and statewise / raw."""
    by = {(r["workload"], r["engine"], r["workers"]): r for r in rows}
    workloads = {w.name: w for w in plan.workloads}
    for row in rows:
        one = by.get((row["workload"], row["engine"], 1))
        raw = by[(row["workload"], "raw", row["workers"])]
        base = one["items_per_second"] if one else None
        row["ratio_to_one_worker"] = row["items_per_second"] / base if base else None
        row["ratio_to_raw"] = row["items_per_second"] / raw["items_per_second"]
        row["ideal_items_per_second"] = workloads[row["workload"]].ideal_items_per_second(
            row["workers"]
        )
    return rows


def targets(rows: list[dict[str, JSON]], plan: Plan) -> list[Target]:
    """The issue's two targets: scaling on the 20 ms workload, statewise / raw on the instant."""
    found = []
    top = max(plan.workers)
    for row in rows:
        if row["engine"] != "statewise":
            continue
        if row["latency"] > 0 and row["workers"] == top and row["ratio_to_one_worker"]:
            name = f"{row['workload']}: statewise {top} workers / 1 worker items/s"
            found.append(Target(name, row["ratio_to_one_worker"], SCALING_TARGET, at_least=True))
        if row["latency"] <= 0:
            name = f"{row['workload']}: statewise / raw items/s, {row['workers']} worker(s)"
            found.append(Target(name, row["ratio_to_raw"], RAW_TARGET, at_least=True))
    return found


def figures_table(rows: list[dict[str, JSON]]) -> Table:
    """One line per workload, engine and number of workers."""
    table = Table(title="statewise on PostgreSQL, worker processes", title_justify="left")
    for column in ("workload", "engine", "workers"):
        table.add_column(column, no_wrap=True)
    for column in (
        "items",
        "wall s",
        "items/s",
        "x 1 worker",
        "sw / raw",
        "ideal items/s",
        "worker CPU",
        "server CPU",
        "start s",
        "machine busy",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        wall = row["wall_seconds"]
        ideal = row["ideal_items_per_second"]
        table.add_row(
            row["workload"],
            row["engine"],
            str(row["workers"]),
            f"{row['items']:,}",
            f"{wall:.2f}",
            f"{row['items_per_second']:,.0f}",
            f"{row['ratio_to_one_worker']:.2f}" if row["ratio_to_one_worker"] else "-",
            f"{row['ratio_to_raw']:.2f}" if row["engine"] == "statewise" else "-",
            f"{ideal:,.0f}" if ideal else "-",
            f"{row['worker_cpu_seconds'] / wall:.2f}",
            f"{row['backend_cpu_seconds'] / wall:.2f}",
            f"{row['start_seconds']:.2f}",
            f"{row['machine_busy']:.0%}",
        )
    return table


NOTES = (
    "wall = from resuming the paused, waiting workers (the items already started) to the last "
    "commit; items/s = items / wall; each item runs {stages} command transitions.",
    "start s = starting the items before the clock (statewise: ItemWriter.start; raw: one bulk "
    "statement per 256 items); {analyzed}.",
    "x 1 worker = items/s over the same engine's 1-worker run; sw / raw = statewise items/s "
    "over the raw psycopg baseline's, same workload and number of processes.",
    "ideal items/s = workers x concurrency / (latency x {stages} stages): the in-flight window.",
    "worker / server CPU in cores (CPU seconds / wall) of the worker processes and of their "
    "PostgreSQL backends; machine busy = all {cores} CPUs, anything else running included.",
)


def parse_args(argv: list[str]) -> Plan:
    """The plan: sizes, concurrency per worker, workers, repeats."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--latency-items", type=int, default=1_000)
    parser.add_argument("--latency-concurrency", type=int, default=16)
    parser.add_argument("--instant-items", type=int, default=2_000)
    parser.add_argument("--instant-concurrency", type=int, default=64)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated process counts")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; median kept")
    parser.add_argument("--dsn", default=os.environ.get("STATEWISE_BENCH_DSN", DSN))
    parser.add_argument("--output", type=Path, default=BENCH / "results-postgres.json")
    parser.add_argument(
        "--cold", action="store_true", help="skip ANALYZE after the start (planner statistics)"
    )
    args = parser.parse_args(argv)
    workloads = (
        Workload("20 ms", 0.020, args.latency_items, args.latency_concurrency),
        Workload("instant", 0.0, args.instant_items, args.instant_concurrency),
    )
    workers = tuple(int(n) for n in args.workers.split(","))
    return Plan(workloads, workers, args.repeat, args.dsn, args.output, args.cold)


def main(argv: list[str]) -> int:
    """Run the benchmark and print it; 1 when a run failed (no figures written)."""
    plan = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    began = time.time()
    with tempfile.TemporaryDirectory(prefix="statewise-pgbench-") as logs:
        try:
            rows = measure_all(plan, Path(logs), console)
        except RuntimeError as exc:
            console.print(f"[red]benchmark failed[/]: {exc}", highlight=False)
            return 1
    found = targets(rows, plan)
    console.print(figures_table(rows))
    console.print(targets_table(found))
    for note in NOTES:
        analyzed = (
            "tables not analyzed (--cold)"
            if plan.cold
            else "then ANALYZE, as a database in service has statistics"
        )
        line = note.format(stages=len(STAGES), cores=os.cpu_count(), analyzed=analyzed)
        console.print(f"  {line}", highlight=False)
    document = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(began)),
        "duration_seconds": time.time() - began,
        "revision": git_revision(),
        "machine": machine_info(),
        "plan": {
            "workloads": [asdict(w) for w in plan.workloads],
            "workers": plan.workers,
            "repeat": plan.repeat,
            "analyzed": not plan.cold,
        },
        "runs": rows,
        "targets": [t.as_dict() for t in found],
    }
    plan.output.write_text(json.dumps(document, indent=2, default=str) + "\n")
    console.print(f"results written to {plan.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
