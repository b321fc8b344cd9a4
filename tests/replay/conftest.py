"""Stores for the replay tests: one of each kind for a record, or two for a record and a rerun."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import postgres


@pytest.fixture(params=["sqlite", "postgres"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty stores of one kind: the record's, and one for a real run of a change."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'record.sqlite'}", f"sqlite:///{tmp_path / 'fresh.sqlite'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    schemas = (postgres.fresh_schema(), postgres.fresh_schema())
    try:
        yield postgres.with_schema(server, schemas[0]), postgres.with_schema(server, schemas[1])
    finally:
        for schema in schemas:
            postgres.drop_schema(server, schema)


@pytest.fixture
def url(db: str) -> str:
    """One empty store of each kind (tests/conftest.py's db), for the record."""
    return db
