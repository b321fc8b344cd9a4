"""Outages are told apart from mistakes: a dropped connection or a busy file is retried.

The classification follows DBOS's: SQLSTATE classes 08 (connection), 53 (resources) and 57
(operator intervention), a client-side ``OperationalError`` (a closed connection) and SQLite's
busy or locked file are transient; anything else is the caller's mistake and fails at once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest

import postgres
from statewise.errors import StoreError, TransientStoreError
from statewise.store.sqlite import SQLiteStore
from statewise.store.sqlite import is_transient as sqlite_transient

from .helpers import commit, run, started

TRANSIENT = ["08000", "08001", "08003", "08006", "53000", "53100", "53200", "53300"]
TRANSIENT += ["57000", "57014", "57P01", "57P02", "57P03"]
MISTAKES = ["23505", "23503", "42P01", "42601", "22P02", "40001", "40P01", "XX000", "P0001"]


def test_sqlstates_of_outages_are_transient_and_of_mistakes_are_not() -> None:
    pytest.importorskip("psycopg")
    from statewise.store.postgres import transient_sqlstate

    assert [code for code in TRANSIENT if not transient_sqlstate(code)] == []
    assert [code for code in MISTAKES if transient_sqlstate(code)] == []


def test_a_closed_connection_is_transient_and_a_bad_query_is_not(postgres_server: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    from statewise.store.postgres import is_transient

    conn = psycopg.connect(postgres_server, autocommit=True)
    with pytest.raises(psycopg.ProgrammingError) as mistake:
        conn.execute("SELECT * FROM no_such_table_anywhere")
    conn.close()
    with pytest.raises(psycopg.OperationalError) as closed:
        conn.execute("SELECT 1")
    assert is_transient(closed.value) and not is_transient(mistake.value)


def test_a_store_whose_connections_were_terminated_goes_on(
    postgres_server: str, postgres_url: str
) -> None:
    pytest.importorskip("psycopg")
    from statewise.store.postgres import PostgresStore

    application = f"sw_outage_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(f"{postgres_url}&application_name={application}", pool_min=2)
    try:
        run(commit(store, started("a")))
        assert postgres.terminate(postgres_server, application) >= 1
        run(commit(store, started("b")))  # a write on a pooled connection that was cut
        assert postgres.terminate(postgres_server, application) >= 1
        assert sorted(i.key for i in run(store.list_items())) == ["a", "b"]
        assert run(store.stuck_items()) == []
    finally:
        run(store.close())


def test_sqlite_busy_or_locked_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite"
    with closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN IMMEDIATE")
        with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as other:
            with pytest.raises(sqlite3.OperationalError) as busy:
                other.execute("BEGIN IMMEDIATE")
            with pytest.raises(sqlite3.OperationalError) as mistake:
                other.execute("SELECT * FROM no_such_table")
    assert sqlite_transient(busy.value) and not sqlite_transient(mistake.value)


def test_a_sqlite_write_waits_out_a_lock_and_refuses_clearly_if_it_lasts(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = SQLiteStore(path, busy_timeout=0.05)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(TransientStoreError, match="database is locked"):
            run(commit(store, started("a")))
        release = threading.Timer(0.1, lambda: holder.execute("ROLLBACK"))
        release.start()
        time.sleep(0.05)
        run(commit(store, started("a")))  # the retry after the backoff gets the lock
        release.join()
        assert [i.key for i in run(store.list_items())] == ["a"]
        with pytest.raises(StoreError) as mistake:
            run(store._read(lambda db: db.execute("SELECT * FROM no_such_table")))
        assert not isinstance(mistake.value, TransientStoreError)
    finally:
        holder.close()
        run(store.close())
