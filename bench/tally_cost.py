"""What keeping the board's counts costs each commit: ``python bench/tally_cost.py``.

Issue 16 keeps per-state counts and per-minute flow figures in the same transaction as every
step (``statewise.store.tally``). This measures what that adds, before and after, in one run,
the way ``record_size.py`` does: **before** is the code of commit ``BEFORE`` unpacked by
``git archive``, **after** the ``src`` of this checkout, each in fresh interpreters with
``PYTHONPATH`` on its own ``src`` (the schema is checked, so a run cannot measure the other's
code by mistake). Runs alternate before/after ``--repeat`` times; medians are reported.

* SQLite, scenario A: the bench workflow (``scenarios.py``, instant commands) for ``--items``
  items through ``Runner``: durable transitions/s.
* PostgreSQL, a commit loop: ``--pg-items`` items of a chain of waiting states, started and
  then moved one external event at a time, each step its own ``commit`` (the worst case for
  per-commit overhead: one transaction per transition), by 1 writer and by 2 writer
  processes at once on different items: steps/s summed over the writers.

Beside each rate, the CPU the measured process spent (scenario A's process; the PostgreSQL
writers, not the server) per transition: on a machine shared with other work the rates swing
with the load, the CPU per transition much less.

Figures go to ``bench/results-tally.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from record_size import BENCH, bench_workload, unpack_before

BEFORE = "95d6bc6"
OUTPUT = BENCH / "results-tally.json"
DEFAULT_PG = "postgresql://127.0.0.1:5432/test"
CHAIN = 6  # waiting states an item is moved through, one step per commit


def chain_definition() -> Any:
    """s0 -> s1 -> ... -> done, each hop an external ``next`` event: a step is a transition."""
    from statewise.definition.model import Definition, State, StateKind, Transition

    names = [f"s{n}" for n in range(CHAIN)]
    states = [
        State(name, kind=StateKind.WAITING, transitions=(Transition(target, on="next"),))
        for name, target in zip(names, [*names[1:], "done"], strict=True)
    ]
    states.append(State("done", kind=StateKind.FINAL))
    return Definition(name="chain", version=1, states={s.name: s for s in states}, initial=names[0])


async def commit_loop(url: str, prefix: str, items: int) -> dict[str, float]:
    """Start ``items`` items (50 a commit), then step each to the end, one step per commit."""
    from statewise.engine import start, step
    from statewise.engine.events import External
    from statewise.store import StepCommit, open_store

    definition = chain_definition()
    store = open_store(url)
    await store.save_workflow(definition, "chain.yaml", [])
    now = time.time()
    results = [start(definition, f"{prefix}-{n}", {}, now) for n in range(items)]
    for first in range(0, items, 50):
        await store.commit([StepCommit(r, None) for r in results[first : first + 50]])
    current = [r.item for r in results]
    began, cpu = time.perf_counter(), time.process_time()
    steps = 0
    for _ in range(CHAIN):
        for index, item in enumerate(current):
            result = step(definition, item, External("next"), time.time())
            await store.commit([StepCommit(result, item.seq)])
            current[index] = result.item
            steps += 1
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    await store.close()
    return {"steps": steps, "seconds": seconds, "cpu_seconds": cpu}


def pg_run(src: Path, url: str, writers: int, items: int) -> tuple[float, float]:
    """Steps/s of ``writers`` processes committing their own items at once, and the
    writers' own CPU (not the server's) in microseconds per step."""
    command = [sys.executable, __file__, "child", url]
    procs = [
        subprocess.Popen(
            [*command, f"w{n}", str(items)],
            env={"PYTHONPATH": f"{src}:{BENCH}", "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(writers)
    ]
    figures = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"a PG writer on {src} failed:\n{err[-3000:]}")
        figures.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(f["seconds"] for f in figures)
    steps = sum(f["steps"] for f in figures)
    return steps / wall, sum(f["cpu_seconds"] for f in figures) / steps * 1e6


def _pg_schema_url(dsn: str) -> tuple[str, str]:
    schema = f"bench_tally_{uuid.uuid4().hex[:8]}"
    return schema, f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"


def _drop(dsn: str, schema: str, expect_tally: bool) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name = 'counts_by_state'",
            (schema,),
        ).fetchone()
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    if (found is not None) != expect_tally:
        raise SystemExit(f"{schema}: the run did not use the code it was meant to measure")


def _sqlite_run(src: Path, work: Path, items: int, side: str, n: int) -> tuple[float, float]:
    """Scenario A's transitions/s and its process's CPU microseconds per transition."""
    import sqlite3

    db = work / f"a-{side}-{n}.sqlite"
    bench_workload(src, db, items)
    result = json.loads(db.with_suffix(".result.json").read_text())
    with sqlite3.connect(db) as conn:
        kept = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'counts_by_state'").fetchone()
    if (kept is not None) != (side == "after"):
        raise SystemExit(f"{db}: the run did not use the code it was meant to measure")
    cpu = float(result["cpu_seconds"]) / int(result["transitions"]) * 1e6
    return float(result["transitions_per_second"]), cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000, help="scenario A items (SQLite)")
    parser.add_argument("--pg-items", type=int, default=300, help="items per PG writer")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=DEFAULT_PG, help="'' to skip PostgreSQL")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    measured: dict[str, dict[str, list[float]]] = {}

    def add(name: str, side: str, figure: float) -> None:
        measured.setdefault(name, {}).setdefault(side, []).append(figure)

    with tempfile.TemporaryDirectory(prefix="tally-cost-") as tmp:
        work = Path(tmp)
        sources = {"before": unpack_before_at(work), "after": BENCH.parent / "src"}
        for n in range(args.repeat):
            for side, src in sources.items():
                print(f"round {n + 1}: scenario A on the code {side} ...", flush=True)
                rate, cpu = _sqlite_run(src, work, args.items, side, n)
                add("sqlite scenario A transitions/s", side, rate)
                add("sqlite scenario A CPU us/transition", side, cpu)
                if not args.postgres:
                    continue
                for writers in (1, 2):
                    print(f"round {n + 1}: PG commit loop, {writers} writer(s), {side}", flush=True)
                    schema, url = _pg_schema_url(args.postgres)
                    try:
                        rate, cpu = pg_run(src, url, writers, args.pg_items)
                    finally:
                        _drop(args.postgres, schema, side == "after")
                    add(f"postgres commit loop steps/s, {writers} writer(s)", side, rate)
                    add(f"postgres commit loop writer CPU us/step, {writers} writer(s)", side, cpu)
    results: dict[str, Any] = {
        "before": BEFORE,
        "items": args.items,
        "pg_items_per_writer": args.pg_items,
        "repeat": args.repeat,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "figures": {},
    }
    for name, sides in measured.items():
        before, after = (statistics.median(sides[s]) for s in ("before", "after"))
        results["figures"][name] = {
            "before": round(before, 1),
            "after": round(after, 1),
            "change": f"{(after / before - 1) * 100:+.1f}%",
            "runs": sides,
        }
        print(f"{name}: before {before:.0f}, after {after:.0f} ({(after / before - 1):+.1%})")
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def unpack_before_at(work: Path) -> Path:
    """``src`` at ``BEFORE`` (record_size unpacks its own commit; this one is another)."""
    import record_size

    record_size.BEFORE = BEFORE
    return unpack_before(work)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        _, _, url, prefix, count = sys.argv
        print(json.dumps(asyncio.run(commit_loop(url, prefix, int(count)))))
        sys.exit(0)
    sys.exit(main())
