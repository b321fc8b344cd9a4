"""Fixtures for the store tests: real SQLite files in a temporary folder, always closed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from statewise.store.sqlite import SQLiteStore

OpenStore = Callable[[], SQLiteStore]


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[OpenStore]:
    """Open another store object on the test's one database file; all are closed afterwards."""
    opened: list[SQLiteStore] = []

    def open_one() -> SQLiteStore:
        opened.append(SQLiteStore(tmp_path / "store.sqlite"))
        return opened[-1]

    yield open_one
    for each in opened:
        asyncio.run(each.close())


@pytest.fixture
def store(open_store: OpenStore) -> SQLiteStore:
    """The first store on the test's database file."""
    return open_store()
