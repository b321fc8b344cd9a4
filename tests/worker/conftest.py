"""Fixtures for the worker tests: a real SQLite store in a temporary folder."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from statewise.store.sqlite import SQLiteStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the test's store lives."""
    return tmp_path / "run.sqlite"


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteStore]:
    """An open store on ``db_path``, closed after the test."""
    opened = SQLiteStore(db_path)
    yield opened
    asyncio.run(opened.close())
