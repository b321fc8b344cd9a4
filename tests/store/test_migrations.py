"""Versioned schema migrations: applied once, on open, by one opener at a time."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from statewise.cli import app
from statewise.definition import fingerprint
from statewise.errors import StoreError
from statewise.store import open_store
from statewise.store.schema import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from statewise.store.sqlite import SQLiteStore

from .conftest import OpenStore, Query
from .helpers import commit, run, started

LATEST = {"sqlite": len(SQLITE_MIGRATIONS), "postgres": len(POSTGRES_MIGRATIONS)}
TABLES = {"workflows", "items", "context", "history", "timers", "outbox", "conversations"}


def test_a_new_database_gets_every_migration_and_reopening_keeps_the_data(
    open_store: OpenStore, dialect: str
) -> None:
    first = open_store()
    run(commit(first, started("k1", {"a": 1})))
    again = open_store()

    assert run(again.schema_version()) == run(first.schema_version()) == LATEST[dialect]
    assert run(again.get_item("orders", "k1")).context == {"a": 1}


def test_many_openers_at_once_migrate_a_fresh_database_exactly_once(
    store_url: str, dialect: str, query: Query
) -> None:
    def open_and_close(_: int) -> int:
        store = open_store(store_url)
        try:
            return run(store.schema_version())
        finally:
            run(store.close())

    with ThreadPoolExecutor(6) as pool:
        versions = list(pool.map(open_and_close, range(6)))

    assert versions == [LATEST[dialect]] * 6
    if dialect == "postgres":
        rows = query("SELECT version FROM schema_migrations ORDER BY version")
        assert rows == [(n,) for n in range(1, LATEST[dialect] + 1)]
        names = {
            n
            for (n,) in query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        }
    else:
        names = {n for (n,) in query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert names >= TABLES


def test_a_database_newer_than_this_statewise_is_refused(
    store_url: str, dialect: str, query: Query
) -> None:
    run(open_store(store_url).close())
    if dialect == "sqlite":
        query("PRAGMA user_version = 99")
    else:
        query("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)")

    with pytest.raises(StoreError, match="schema version 99, newer than this statewise knows"):
        open_store(store_url)


def test_an_old_sqlite_file_gets_content_hashes_computed_from_its_stored_sources(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    source = "name: orders\nversion: 1\n"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        for migration in SQLITE_MIGRATIONS[:2]:
            migration(_Raw(db))
        db.execute("PRAGMA user_version = 2")
        db.execute(
            "INSERT INTO workflows VALUES ('orders', 1, ?, 'orders.yaml', '[]', 0)", (source,)
        )

    store = SQLiteStore(path)
    try:
        (saved,) = run(store.workflows())
        assert run(store.schema_version()) == len(SQLITE_MIGRATIONS)
    finally:
        run(store.close())
    assert saved.content_hash == fingerprint.content_hash(source)


def test_sqlite_payloads_written_before_their_table_kept_rows_in_page_are_carried_over(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    body = '{"draft": "' + "ключ " * 400 + '"}'
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        version = 0  # up to the migration that created payloads, a WITHOUT ROWID table
        while not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'payloads'").fetchall():
            SQLITE_MIGRATIONS[version](_Raw(db))
            version += 1
        db.execute(f"PRAGMA user_version = {version}")
        db.execute("INSERT INTO payloads VALUES (7, 'abc', ?)", (body,))

    run(SQLiteStore(path).close())
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT item_id, hash, body FROM payloads").fetchall() == [
            (7, "abc", body)
        ]
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'payloads'").fetchone()
        assert "WITHOUT ROWID" not in sql


class _Raw:
    """A bare sqlite3 connection behind the store's Connection protocol, to build old files."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        return self.db.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        self.db.executemany(sql, rows)


def test_db_upgrade_applies_the_migrations_and_prints_the_schema_version(
    store_url: str, dialect: str
) -> None:
    for _ in range(2):  # a second upgrade finds nothing to do
        result = CliRunner().invoke(app, ["db", "upgrade", "--db", store_url])
        assert result.exit_code == 0, result.output
        assert result.output.strip() == f"schema version {LATEST[dialect]}"
    store = open_store(store_url)
    try:
        assert run(store.schema_version()) == LATEST[dialect]
    finally:
        run(store.close())
