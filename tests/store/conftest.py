"""Fixtures for the store suite: every test runs on SQLite and on PostgreSQL.

``open_store`` opens another store object on the test's one database (a second writer);
``query`` reads or changes that database directly through a connection of its own, with
``?`` placeholders on both dialects.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import postgres
from statewise.store import open_store as open_url
from statewise.store.sql import SQLStore

OpenStore = Callable[[], SQLStore]
Query = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's database, once per dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def dialect(store_url: str) -> str:
    return "sqlite" if store_url.startswith("sqlite") else "postgres"


@pytest.fixture
def open_store(store_url: str) -> Iterator[OpenStore]:
    """Open another store object on the test's database; all are closed afterwards."""
    opened: list[SQLStore] = []

    def open_one() -> SQLStore:
        store = open_url(store_url)
        assert isinstance(store, SQLStore)
        opened.append(store)
        return store

    yield open_one
    for each in opened:
        asyncio.run(each.close())


@pytest.fixture
def store(open_store: OpenStore) -> SQLStore:
    """The first store on the test's database."""
    return open_store()


@pytest.fixture
def query(store_url: str, request: pytest.FixtureRequest) -> Query:
    """Run SQL on the test's database through a separate connection, committed at once."""
    if store_url.startswith("sqlite:///"):
        path = store_url.removeprefix("sqlite:///")

        def on_sqlite(sql: str, *args: Any) -> list[tuple[Any, ...]]:
            with closing(sqlite3.connect(path, isolation_level=None)) as db:
                return db.execute(sql, args).fetchall()

        return on_sqlite
    server: str = request.getfixturevalue("postgres_server")
    schema: str = request.getfixturevalue("postgres_schema")

    def on_postgres(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with closing(postgres.connect(server, schema)) as conn:
            cursor = conn.execute(sql.replace("%", "%%").replace("?", "%s"), args)
            return cursor.fetchall() if cursor.description else []

    return on_postgres
