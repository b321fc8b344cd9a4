"""Work row ids: a runner keys the commands it is running by them, so none is handed out twice."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from statewise.store import CommitStatus, StepCommit
from statewise.store.schema import SQLITE_MIGRATIONS
from statewise.store.sql import SQLStore
from statewise.store.sqlite import SQLiteStore

from .conftest import OpenStore
from .helpers import T0, commit, fetched, invariant_holds, run, started
from .test_migrations import _Raw

HELD = [("orders", 1)]


def test_the_id_of_a_consumed_work_row_is_never_handed_out_again(
    store: SQLStore, open_store: OpenStore
) -> None:
    """The newest row consumed, the next one queued still gets a fresh id, on any connection.

    SQLite used to hand out the largest id + 1, so the id of a just-deleted newest row came
    back while the runner still had its command in flight under that id.
    """
    seen: set[int] = set()
    for n, writer in enumerate((store, store, open_store(), store)):
        first = started(f"item-{n}")
        run(commit(writer, first))
        (claimed,) = run(writer.claim_commands("w", 10, T0, 60.0, HELD))
        assert claimed.outbox_id not in seen
        seen.add(claimed.outbox_id)
        step = StepCommit(fetched(first.item), first.item.seq, claimed.outbox_id)
        (outcome,) = run(writer.commit([step]))
        assert outcome.status is CommitStatus.COMMITTED
        assert run(writer.pending_commands()) == 0
    invariant_holds(store)


def test_a_file_from_before_the_counter_counts_on_from_its_largest_queued_id(
    tmp_path: Path,
) -> None:
    """The migration starts the counter at the largest id queued, so no queued id repeats."""
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        for migration in SQLITE_MIGRATIONS[:3]:
            migration(_Raw(db))
        db.execute("PRAGMA user_version = 3")
        db.execute("INSERT INTO outbox (id, item_id, effect, available_at) VALUES (41, 1, '', 0)")

    store = SQLiteStore(path)
    try:
        run(commit(store, started("next")))
    finally:
        run(store.close())
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT id FROM outbox ORDER BY id").fetchall() == [(41,), (42,)]
