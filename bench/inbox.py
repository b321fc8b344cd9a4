"""The inbox at volume: ``python bench/inbox.py [--tasks N] [--postgres URL]``.

A reviewer's task list with 10,000 open tasks, on SQLite and on PostgreSQL (target: under
100 ms a page). Timed: the store reads one inbox page makes (the first page in due order, a
filtered page, a page deep in, the per-queue counts), and the whole page over HTTP through the
real app (``httpx`` over ASGI, signed in, HTML rendered), first, filtered and deep.

The fill bypasses the engine and writes rows straight into the store's own tables after its
migrations made them, as ``bench/overview.py`` does: only reading is measured. Tasks spread
over 3 workflows and 5 queues, due from 2 hours ago to 2 days ahead (one in ten with no due
time), a fifth of them claimed. Figures go to ``bench/results-inbox.json``; each is the median
of ``--runs`` timings after one warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from measure import machine_info, median_ms
from rich.console import Console
from rich.table import Table
from run import git_revision

from statewise.contract import CommandRegistry
from statewise.definition import loads
from statewise.definition.model import Role
from statewise.service import ServiceContext, create_app
from statewise.service.auth import hash_secret, new_secret
from statewise.store import open_store
from statewise.store.base import Store, TaskOrder, TaskQuery
from statewise.worker.catalog import Catalog

WORKFLOWS = ("orders", "support", "content")
QUEUES = ("fraud", "support", "specialists", "editorial", "escalations")
TARGET_MS = 100.0
PAGE = 50
DEFAULT_PG = "postgresql://127.0.0.1:5432/test"
HERE = Path(__file__).parent

WORKFLOW_YAML = """
workflow: {name}
states:
  waiting_room:
    kind: initial
    transitions:
      - to: review
  review:
    kind: human
    task:
      queue: support
      title: Review the item
      show: [subject, message]
      form:
        type: object
        properties:
          reply: {{type: string}}
    transitions:
      - on: approve
        to: done
      - on: reject
        to: done
  done: {{kind: final}}
"""


def _items(count: int, now: float) -> Iterator[tuple[Any, ...]]:
    """Item rows waiting in ``review``: (id, workflow, version, key, state, status, ...)."""
    for n in range(1, count + 1):
        yield (n, WORKFLOWS[n % 3], 1, f"item-{n}", "review", "waiting", now - 3600, now - 3600,
               now - 3600, 2, 1, False, json.dumps({"review": 1}), None)  # fmt: skip


def _tasks(count: int, now: float) -> Iterator[tuple[Any, ...]]:
    """Open task rows: (id, item_id, state, visit, queue, role, status, created_at, due_at,
    claimed_by, claim_until)."""
    rng = random.Random(16)
    for n in range(1, count + 1):
        created = now - rng.uniform(0, 86400)
        due = None if n % 10 == 0 else now + rng.uniform(-7200, 172800)
        claimed = f"token:reviewer-{n % 7}" if n % 5 == 0 else None
        yield (n, n, "review", 1, QUEUES[n % len(QUEUES)], "reviewer", "open", created, due,
               claimed, now + 1800 if claimed else None)  # fmt: skip


_ITEM_COLUMNS = (
    "id, workflow, version, key, state, status, entered_at, created_at, updated_at, seq, "
    "attempt, retrying, visits, branches"
)
_TASK_COLUMNS = (
    "id, item_id, state, visit, queue, role, status, created_at, due_at, claimed_by, claim_until"
)
_CONTEXT = {"subject": "Charged twice", "message": "Hi, my statement shows two charges of 64.90."}


def _context(count: int) -> Iterator[tuple[int, str, str]]:
    """Each item's context rows: one per top-level key, its value as JSON."""
    for n in range(1, count + 1):
        for path, value in _CONTEXT.items():
            yield n, path, json.dumps(value)


def _marks(columns: str) -> str:
    return ", ".join("?" for _ in columns.split(","))


def fill_sqlite(path: Path, count: int, now: float) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.executemany(
            f"INSERT INTO items ({_ITEM_COLUMNS}) VALUES ({_marks(_ITEM_COLUMNS)})",
            _items(count, now),
        )
        db.executemany(
            f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES ({_marks(_TASK_COLUMNS)})",
            _tasks(count, now),
        )
        db.executemany(
            "INSERT INTO context (item_id, path, value) VALUES (?, ?, ?)", _context(count)
        )
        db.execute("ANALYZE")


def fill_postgres(dsn: str, schema: str, count: int, now: float) -> None:
    import psycopg

    with psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
        with conn.cursor() as cursor:
            for table, columns, rows in (("items", _ITEM_COLUMNS, _items(count, now)),
                                         ("tasks", _TASK_COLUMNS, _tasks(count, now))):  # fmt: skip
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            with cursor.copy("COPY context (item_id, path, value) FROM STDIN") as copy:
                for row in _context(count):
                    copy.write_row(row)
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('tasks', 'id'), (SELECT MAX(id) FROM tasks))"
            )
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('items', 'id'), (SELECT MAX(id) FROM items))"
            )
        conn.commit()
        for table in ("items", "tasks", "context"):
            conn.execute(f"ANALYZE {table}")
        conn.commit()


def _queries(count: int) -> dict[str, TaskQuery]:
    now = time.time()
    deep = (count // PAGE * 3 // 4) * PAGE
    return {
        "first page (due order)": TaskQuery(now, limit=PAGE),
        "filtered page (queue, unclaimed, due today)": TaskQuery(
            now,
            queue="support",
            unclaimed=True,
            due_after=now,
            due_before=now + 86400,
            limit=PAGE,
        ),
        f"page {deep // PAGE + 1} (offset {deep:,})": TaskQuery(
            now, order=TaskOrder.DUE_DESC, limit=PAGE, offset=deep
        ),
    }


async def measure_store(store: Store, count: int, runs: int) -> dict[str, float]:
    """Median ms of each store read an inbox page makes (a page with its total; the counts)."""
    figures = {
        f"store: {name}": await median_ms(lambda q=query: store.task_page(q), runs)
        for name, query in _queries(count).items()
    }
    figures["store: counts per queue"] = await median_ms(
        lambda: store.queue_counts(None, time.time()), runs
    )
    return figures


async def measure_http(store: Store, count: int, runs: int) -> dict[str, float]:
    """Median ms of the whole inbox page through the app: session, both reads, HTML."""
    registry = CommandRegistry()
    definitions = [loads(WORKFLOW_YAML.format(name=name)) for name in WORKFLOWS]
    ctx = ServiceContext(store, Catalog(definitions, registry), workers=False)
    secret = new_secret()
    await store.create_token("bench", Role.REVIEWER, hash_secret(secret), time.time())
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        login = await client.get("/dashboard/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert csrf, "no CSRF value on the sign-in page"
        await client.post("/dashboard/login", data={"token": secret, "csrf": csrf[1]})
        deep = count // PAGE * 3 // 4 + 1
        pages = {  # each page, and what proves it rendered what it should
            "page: first (due order)": ("/dashboard/inbox", "data-task"),
            "page: filtered (queue, unclaimed, due today)": (
                "/dashboard/inbox?queue=support&due=today&unclaimed=1", "data-task"),
            f"page: {deep} of {-(-count // PAGE)}": (
                f"/dashboard/inbox?sort=-due&page={deep}", "data-task"),
            "page: one task": ("/dashboard/tasks/1", "task-form"),
        }  # fmt: skip
        figures = {}
        for name, (url, marker) in pages.items():
            answer = await client.get(url)
            assert answer.status_code == 200 and marker in answer.text, (url, answer.status_code)
            figures[name] = await median_ms(lambda u=url: client.get(u), runs)
    return figures


async def measure(store: Store, count: int, runs: int) -> dict[str, float]:
    return {**await measure_store(store, count, runs), **await measure_http(store, count, runs)}


async def run_sqlite(count: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "inbox.sqlite"
        store = open_store(str(path))
        await store.schema_version()
        await store.close()
        fill_sqlite(path, count, time.time())
        store = open_store(str(path))
        try:
            return await measure(store, count, runs)
        finally:
            await store.close()


async def run_postgres(dsn: str, count: int, runs: int) -> dict[str, float]:
    import psycopg

    schema = f"bench_inbox_{uuid.uuid4().hex[:8]}"
    url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    store = open_store(url)
    try:
        await store.schema_version()
        fill_postgres(dsn, schema, count, time.time())
        return await measure(store, count, runs)
    finally:
        await store.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--postgres", default=DEFAULT_PG, help="'' to skip PostgreSQL")
    parser.add_argument("--output", type=Path, default=HERE / "results-inbox.json")
    args = parser.parse_args()
    console = Console()
    results: dict[str, dict[str, float]] = {}
    console.print(f"SQLite, {args.tasks:,} open tasks ...")
    results["sqlite"] = asyncio.run(run_sqlite(args.tasks, args.runs))
    if args.postgres:
        console.print(f"PostgreSQL, {args.tasks:,} open tasks ...")
        results["postgres"] = asyncio.run(run_postgres(args.postgres, args.tasks, args.runs))
    table = Table("read", *results, title=f"{args.tasks:,} open tasks: median ms (target < 100)")
    for name in results["sqlite"]:
        cells = []
        for store in results:
            value = results[store][name]
            cells.append(f"{value:.1f}" + ("" if value < TARGET_MS else " MISSED"))
        table.add_row(name, *cells)
    console.print(table)
    report = {"tasks": args.tasks, "runs": args.runs, "results_ms": results,
              "machine": machine_info(), "revision": git_revision()}  # fmt: skip
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
