"""Where the time goes: ``python bench/hotspots.py [--items N] [--latency S] [--top K]``.

Runs one statewise scenario in this process under cProfile, counts every SQL statement the
store executes (by its first words), and prints both per transition. Not part of the timed
benchmark: profiling slows the run several times over.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import re
import tempfile
from collections import Counter
from pathlib import Path

from scenarios import drive_statewise
from workload import Spec

from statewise.store import SQLiteStore

_WORDS = re.compile(r"\s+")
_TABLE = re.compile(r"\b(?:FROM|JOIN)\s+(\w+)", re.IGNORECASE)


def statement_kind(sql: str) -> str:
    """A statement's verb and tables, e.g. ``INSERT INTO history`` or ``SELECT FROM items``."""
    words = _WORDS.split(sql.strip())
    verb = words[0].upper()
    if verb in ("SELECT", "WITH"):
        tables = dict.fromkeys(_TABLE.findall(sql))
        return f"SELECT FROM {', '.join(tables)}"
    if verb in ("INSERT", "DELETE") and len(words) > 2:
        return " ".join(words[:3])
    return " ".join(words[:2])


def tracer(counts: Counter[str]) -> object:
    """A trace callback counting statements by kind."""

    def trace(sql: str) -> None:
        counts[statement_kind(sql)] += 1

    return trace


def count_statements(spec: Spec) -> None:
    """Run ``spec`` with a SQL trace and print statements per transition by kind."""
    counts: Counter[str] = Counter()

    def attach(store: SQLiteStore) -> None:
        store._db.set_trace_callback(tracer(counts))  # type: ignore[arg-type]

    _, figures = asyncio.run(drive_statewise(spec, on_store=attach))
    transitions = int(figures["transitions"])
    print(f"{transitions:,} transitions, {figures['command_executions']:,} command executions")
    print(f"\nSQL statements per transition (total {sum(counts.values()) / transitions:.2f}):")
    for kind, count in counts.most_common():
        print(f"  {count / transitions:7.3f}  {kind}")


def profile(spec: Spec, top: int) -> None:
    """Run ``spec`` under cProfile (without the SQL trace) and print the hottest functions."""
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(drive_statewise(spec))
    profiler.disable()
    stats = pstats.Stats(profiler).strip_dirs()
    for order in ("tottime", "cumulative"):
        print(f"\ntop {top} by {order}:")
        stats.sort_stats(order).print_stats(top)


def main() -> None:
    """Parse arguments; trace one run's SQL and profile another, on temporary databases."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statewise-profile-") as workdir:

        def spec(name: str) -> Spec:
            db_path = str(Path(workdir) / f"{name}.sqlite")
            return Spec(name, "statewise", args.items, db_path, latency=args.latency)

        count_statements(spec("trace"))
        profile(spec("profile"), args.top)


if __name__ == "__main__":
    main()
