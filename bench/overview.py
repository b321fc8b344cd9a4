"""Reading a big store: ``python bench/overview.py [--items N] [--audit N] [--postgres URL]``.

The dashboard's hot reads, the board (``state_counts`` and the last hour's ``state_stats``,
which is what it reads per render) and the item list filtered by state (``find_items``, first
page and a page deep in via its cursor), are timed with 1,000,000 items and 1,000,000 audit
rows in the last hour, on SQLite and on PostgreSQL (target: under 200 ms each), with the
dry-run count of a bulk operation beside them.

The fill bypasses the engine and writes rows straight into the store's own tables (after the
store created them with its migrations): only reading is measured here, and starting a
million items through the engine would take most of the run. Items spread over 3 workflows of
10 states with realistic statuses and ages; the audit rows are departures spread over the
last hour. The counts and per-minute flows commits keep are then filled from those rows by
the very steps the migration that introduced them runs (``store.tally``), into one shard, as
a single writer leaves them; on PostgreSQL the board is timed again with every minute's rows
copied into all 16 shards, the most concurrent writers can leave.
Figures go to ``bench/results-overview.json``; a median of ``--runs`` timings after one
warm-up is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from measure import machine_info, median_ms
from rich.console import Console
from rich.table import Table
from run import git_revision

from statewise.store import open_store
from statewise.store.base import ItemFilter, Store
from statewise.store.connection import Connection
from statewise.store.tally import (
    FLOW_COLUMNS,
    SHARDS,
    backfill_counts_txn,
    backfill_flows_txn,
)

WORKFLOWS = ("orders", "support", "content")
STATES = [f"stage_{n}" for n in range(10)]
TARGET_MS = 200.0
DEFAULT_PG = "postgresql://127.0.0.1:5432/test"
HERE = Path(__file__).parent


def _rows(count: int, now: float) -> Iterator[tuple[Any, ...]]:
    """Item rows: (id, workflow, version, key, state, status, entered_at, created_at,
    updated_at, seq, attempt, retrying, visits, branches)."""
    rng = random.Random(7)
    for n in range(1, count + 1):
        state = rng.choice(STATES)
        status = "done" if state == "stage_9" else rng.choice(("active", "waiting", "active"))
        entered = now - rng.expovariate(1 / 3600)
        yield (n, rng.choice(WORKFLOWS), 1, f"item-{n}", state, status, entered, entered - 60,
               entered, 3, 1, False, json.dumps({state: 1}), None)  # fmt: skip


def _history(count: int, items: int, now: float) -> Iterator[tuple[Any, ...]]:
    """``count`` departure rows in the last hour, with their dwell times, over the items."""
    rng = random.Random(8)
    for n in range(count):
        origin, target = rng.sample(STATES, 2)
        detail = json.dumps({"event_kind": "command", "dwell": rng.expovariate(1 / 30)})
        yield (n % items + 1, n // items + 1, now - rng.random() * 3600, origin, target, "done",
               detail)  # fmt: skip


_ITEM_INSERT = (
    "INSERT INTO items (id, workflow, version, key, state, status, entered_at, created_at, "
    "updated_at, seq, attempt, retrying, visits, branches) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_HISTORY_INSERT = (
    "INSERT INTO history (item_id, seq, at, from_state, to_state, event, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _kept(db: Connection, since: float) -> None:
    """The counts and flows from the rows just written, as the migration fills them."""
    backfill_counts_txn(db)
    backfill_flows_txn(db, since)


def all_shards(db: Connection) -> None:
    """Copy every flow row into shards 1..15: the window as 16 busy writers would leave it."""
    columns = ", ".join(FLOW_COLUMNS)
    db.execute(
        f"INSERT INTO flows_by_minute (minute, workflow, state, shard, {columns}) "
        f"SELECT f.minute, f.workflow, f.state, s.shard, {columns} FROM flows_by_minute f "
        f"CROSS JOIN ({' UNION ALL '.join(f'SELECT {n} AS shard' for n in range(1, SHARDS))}) s "
        "WHERE f.shard = 0"
    )


def fill_sqlite(path: Path, count: int, audit: int, now: float) -> None:
    import sqlite3

    from statewise.store.sqlite import _SQLiteConnection

    with sqlite3.connect(path) as db:
        db.executemany(_ITEM_INSERT, _rows(count, now))
        db.executemany(_HISTORY_INSERT, _history(audit, count, now))
        _kept(_SQLiteConnection(db), now - 3600)
        db.execute("ANALYZE")


def fill_postgres(dsn: str, schema: str, count: int, audit: int, now: float) -> None:
    import psycopg

    from statewise.store.postgres import _PostgresConnection

    with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
        with conn.cursor() as cursor:
            columns = _ITEM_INSERT.split("(")[1].split(")")[0]
            with cursor.copy(f"COPY items ({columns}) FROM STDIN") as copy:
                for row in _rows(count, now):
                    copy.write_row(row)
            with cursor.copy(
                "COPY history (item_id, seq, at, from_state, to_state, event, detail) FROM STDIN"
            ) as copy:
                for row in _history(audit, count, now):
                    copy.write_row(row)
        _kept(_PostgresConnection(conn), now - 3600)
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()


async def measure(
    store: Store, runs: int, now: float, spread: Callable[[], None] | None = None
) -> dict[str, float]:
    """Median milliseconds of each read the dashboard and a bulk dry run make.

    ``spread`` copies the flow rows into every shard, for the last figure (PostgreSQL only:
    SQLite's single writer always writes shard 0).
    """
    in_state = ItemFilter(workflow="orders", state="stage_3")
    first = await store.find_items(in_state, limit=50)
    deep_cursor: tuple[float, int] | None = first[-1][1]
    for _ in range(200):  # up to 10,000 items in
        page = await store.find_items(in_state, limit=50, after=deep_cursor)
        if len(page) < 50:
            break
        deep_cursor = page[-1][1]

    async def board() -> None:
        await store.state_counts()
        await store.state_stats(now - 3600)

    figures = {
        "board (state_counts + state_stats, last hour)": await median_ms(board, runs),
        "overview (state_counts)": await median_ms(store.state_counts, runs),
        "flow figures, last hour (state_stats)": await median_ms(
            lambda: store.state_stats(now - 3600), runs
        ),
        "item list by state, first page": await median_ms(
            lambda: store.find_items(in_state, limit=50), runs
        ),
        "item list by state, page 201": await median_ms(
            lambda: store.find_items(in_state, limit=50, after=deep_cursor), runs
        ),
        "count in a state (bulk dry run)": await median_ms(
            lambda: store.count_items(in_state), runs
        ),
    }
    if spread is not None:
        spread()
        figures["board, flows in all 16 shards"] = await median_ms(board, runs)
    return figures


async def run_sqlite(count: int, audit: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "overview.sqlite"
        now = time.time()
        store = open_store(str(path))
        await store.close()
        fill_sqlite(path, count, audit, now)
        store = open_store(str(path))
        try:
            return await measure(store, runs, now)
        finally:
            await store.close()


async def run_postgres(dsn: str, count: int, audit: int, runs: int) -> dict[str, float]:
    import psycopg

    from statewise.store.postgres import _PostgresConnection

    schema = f"bench_overview_{uuid.uuid4().hex[:8]}"
    url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    now = time.time()
    store = open_store(url)

    def spread() -> None:
        with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
            all_shards(_PostgresConnection(conn))
            conn.commit()
            conn.execute("ANALYZE flows_by_minute")
            conn.commit()

    try:
        await store.schema_version()
        fill_postgres(dsn, schema, count, audit, now)
        return await measure(store, runs, now, spread)
    finally:
        await store.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--audit", type=int, default=1_000_000, help="audit rows, last hour")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--postgres", default=DEFAULT_PG, help="'' to skip PostgreSQL")
    parser.add_argument("--output", type=Path, default=HERE / "results-overview.json")
    args = parser.parse_args()
    console = Console()
    results: dict[str, dict[str, float]] = {}
    size = f"{args.items:,} items and {args.audit:,} audit rows"
    console.print(f"filling SQLite with {size} ...")
    results["sqlite"] = asyncio.run(run_sqlite(args.items, args.audit, args.runs))
    if args.postgres:
        console.print(f"filling PostgreSQL with {size} ...")
        results["postgres"] = asyncio.run(
            run_postgres(args.postgres, args.items, args.audit, args.runs)
        )
    table = Table("read", *results, title=f"{size}: median ms (target < 200)")
    for name in results[list(results)[-1]]:
        cells = []
        for store in results:
            value = results[store].get(name)
            if value is None:
                cells.append("-")
                continue
            cells.append(f"{value:.1f}" + ("" if value < TARGET_MS else " MISSED"))
        table.add_row(name, *cells)
    console.print(table)
    args.output.write_text(
        json.dumps(
            {
                "items": args.items,
                "audit_rows_last_hour": args.audit,
                "results_ms": results,
                "machine": machine_info(),
                "revision": git_revision(),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
