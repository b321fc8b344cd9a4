"""A runner outlives store outages: it pauses, logs and goes on, and loses nothing.

The outage is real: another connection holds the SQLite file's write lock for a second while
the runner works, past the store's (shortened) busy timeout and its own retry.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from statewise.engine import ItemStatus
from statewise.errors import StoreError
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner

from .workflows import expected_path, registry, stages_flow, stages_items

ITEMS = 120


def test_the_runner_outlives_a_locked_store_and_loses_nothing(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(db_path, busy_timeout=0.05)
    definition = stages_flow()
    holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)

    async def outage() -> None:
        await asyncio.sleep(0.15)
        holder.execute("BEGIN IMMEDIATE")
        await asyncio.sleep(1.0)
        holder.execute("ROLLBACK")

    async def scenario() -> None:
        runner = Runner(store, [definition], registry, concurrency=16)
        await runner.start(definition, stages_items(ITEMS, pause=0.02))
        locking = asyncio.create_task(outage())
        await runner.run(max_wait=0)
        await locking

    try:
        with caplog.at_level(logging.WARNING, logger="statewise.worker"):
            asyncio.run(scenario())
        assert any("database is locked" in r.getMessage() for r in caplog.records)
        items = asyncio.run(store.list_items(limit=ITEMS))
        assert {(i.state, i.status) for i in items} == {("done", ItemStatus.DONE)}
        for item in items:
            rows = asyncio.run(store.history(item.workflow, item.key))
            assert [r.seq for r in rows] == list(range(1, item.seq + 1)), item.key
            entered = [r.to_state for r in rows if r.from_state != r.to_state]
            assert entered == expected_path(int(item.key.split("-")[1])), item.key
        assert asyncio.run(store.stuck_items()) == []
        assert asyncio.run(store.pending_commands()) == 0
    finally:
        holder.close()
        asyncio.run(store.close())


def test_a_store_error_that_is_no_outage_still_stops_the_runner(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    definition = stages_flow()

    async def scenario() -> None:
        runner = Runner(store, [definition], registry)
        await runner.start(definition, stages_items(2))
        store._db.execute("DROP TABLE timers")  # a broken schema is nothing to wait out
        await runner.run(max_wait=0)

    try:
        with pytest.raises(StoreError, match="no such table: timers"):
            asyncio.run(scenario())
    finally:
        asyncio.run(store.close())
