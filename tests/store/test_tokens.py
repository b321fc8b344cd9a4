"""A token's name is an identity: unique among active tokens, on every dialect and writer."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from statewise.definition.model import Role
from statewise.errors import ConflictError
from statewise.store import open_store
from statewise.store.schema import (
    POSTGRES_MIGRATIONS,
    SQLITE_MIGRATIONS,
    Migration,
    migrate_txn,
)
from statewise.store.sql import SQLStore
from statewise.store.tokens import unique_active_names_txn

from .conftest import OpenStore, Query
from .helpers import T0, run

NAMES = ["rev_ed", "rév%2Fed/?x", "ed\u00e9"]


def _create(store: SQLStore, name: str, secret: str) -> int:
    return run(store.create_token(name, Role.REVIEWER, secret, T0, ["legal"])).id


@pytest.mark.parametrize("name", NAMES)
def test_a_second_active_token_of_a_name_is_refused_and_nothing_changes(
    store: SQLStore, name: str
) -> None:
    first = _create(store, name, "hash-1")

    with pytest.raises(ConflictError, match=re.escape(f"already named {name!r}")):
        _create(store, name, "hash-2")

    assert [(t.id, t.name) for t in run(store.list_tokens())] == [(first, name)]
    assert run(store.find_token("hash-2", T0)) is None


def test_names_differing_in_case_or_one_character_are_other_identities(store: SQLStore) -> None:
    ids = [
        _create(store, name, f"hash-{n}") for n, name in enumerate(["rev_ed", "Rev_ed", "rev_ed2"])
    ]

    assert len(set(ids)) == 3


def test_a_revoked_name_may_be_given_to_a_new_token_to_rotate_a_secret(store: SQLStore) -> None:
    old = _create(store, "rev_ed", "hash-old")
    run(store.revoke_token(old, T0 + 1))

    new = _create(store, "rev_ed", "hash-new")

    found = run(store.find_token("hash-new", T0 + 2))
    assert found is not None and (found.id, found.name) == (new, "rev_ed")
    assert run(store.find_token("hash-old", T0 + 2)) is None
    with pytest.raises(ConflictError):
        _create(store, "rev_ed", "hash-third")


def test_two_writers_creating_one_name_at_once_let_exactly_one_win(
    open_store: OpenStore,
) -> None:
    stores = [open_store(), open_store()]
    for round_ in range(5):
        name = f"rev_ed_{round_}"
        barrier = threading.Barrier(2)

        def create(index: int, name: str = name, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            try:
                _create(stores[index], name, f"{name}-hash-{index}")
            except ConflictError:
                return "refused"
            return "created"

        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(create, range(2)))

        assert outcomes == ["created", "refused"]
        holders = [t for t in run(stores[0].list_tokens()) if t.name == name]
        assert len(holders) == 1 and holders[0].revoked_at is None


def test_an_old_database_with_duplicate_names_is_migrated_with_each_rename_reported(
    store_url: str,
    dialect: str,
    query: Query,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    schema = request.getfixturevalue("postgres_schema") if dialect == "postgres" else None
    migrations = _old_database(query, schema)
    rows = [
        ("rev_ed", "h1", None),
        ("rev_ed", "h2", None),
        ("rev_ed", "h3", None),
        ("rev_ed#2", "h4", None),  # already holds the name the second rev_ed would get
        ("ann", "h5", 5.0),
        ("ann", "h6", None),
    ]
    for name, secret, revoked in rows:
        query(
            "INSERT INTO tokens (name, role, secret_hash, queues, created_at, revoked_at) "
            "VALUES (?, 'reviewer', ?, '[]', 0, ?)",
            name,
            secret,
            revoked,
        )

    with caplog.at_level(logging.WARNING, logger="statewise.store"):
        store = open_store(store_url)
    try:
        names = [(t.id, t.name, t.revoked_at is None) for t in run(store.list_tokens())]
        with pytest.raises(ConflictError):
            _create(store, "rev_ed", "h7")
        assert run(store.schema_version()) == len(migrations)
    finally:
        run(store.close())

    assert names == [
        (1, "rev_ed", True),
        (2, "rev_ed#2-2", True),
        (3, "rev_ed#3", True),
        (4, "rev_ed#2", True),
        (5, "ann", False),
        (6, "ann", True),
    ]
    reports = [r.getMessage() for r in caplog.records if r.name == "statewise.store"]
    assert len(reports) == 2
    assert "token 3 renamed from 'rev_ed' to 'rev_ed#3'" in reports[1]
    assert "token 1 keeps 'rev_ed'" in reports[1]


def _old_database(query: Query, schema: str | None) -> tuple[Migration, ...]:
    """The test's database as written before token names had to be unique; every migration."""
    migrations = SQLITE_MIGRATIONS if schema is None else POSTGRES_MIGRATIONS
    before = migrations.index(unique_active_names_txn)
    if schema is not None:
        query(f'CREATE SCHEMA "{schema}"')
    migrate_txn(_Through(query), migrations[:before], 0)
    if schema is None:
        query(f"PRAGMA user_version = {before}")
    else:
        query("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at FLOAT)")
        for version in range(1, before + 1):
            query("INSERT INTO schema_migrations VALUES (?, 0)", version)
    return migrations


class _Through:
    """The ``query`` fixture behind the store's Connection protocol, to build old databases."""

    def __init__(self, query: Query) -> None:
        self.query = query

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.query(sql, *params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            self.query(sql, *row)
