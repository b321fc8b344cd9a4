"""What only the PostgreSQL dialect does: URL settings, many runners, retried conflicts."""

from __future__ import annotations

import subprocess
import sys

import pytest

import postgres
from statewise.errors import StoreError
from statewise.store import open_store
from statewise.store.connection import Connection

from .helpers import T0, commit, run, started

errors = pytest.importorskip("psycopg.errors", reason="the postgres extra is not installed")
from statewise.store.postgres import PostgresSettings, PostgresStore  # noqa: E402

HELD = [("orders", 1)]


def test_store_settings_come_from_the_url_and_the_rest_goes_to_libpq() -> None:
    settings = PostgresSettings.from_url(
        "postgresql://app@db:5433/prod?schema=orders&pool_max=20&sslmode=disable&pool_min=2"
    )
    assert settings == PostgresSettings(
        "postgresql://app@db:5433/prod?sslmode=disable", "orders", 2, 20
    )
    assert settings.where == "db:5433/prod"
    assert PostgresSettings.from_url("postgres://h/db").schema == "statewise"
    for bad, message in (
        ("postgresql://h/db?schema=Bad-Name", "lower-case letters"),
        ("postgresql://h/db?pool_max=many", "whole numbers"),
        ("postgresql://h/db?pool_max=2&pool_min=3", "pool_min <= pool_max"),
    ):
        with pytest.raises(StoreError, match=message):
            PostgresSettings.from_url(bad)


def test_an_unreachable_server_is_a_store_error_naming_it() -> None:
    with pytest.raises(StoreError, match=r"cannot connect to PostgreSQL at 127\.0\.0\.1:1/test"):
        open_store("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")


def test_open_store_takes_both_url_schemes_and_keeps_schemas_apart(
    postgres_server: str, postgres_url: str
) -> None:
    mine = open_store(postgres_url.replace("postgresql://", "postgres://", 1))
    assert isinstance(mine, PostgresStore)
    elsewhere = PostgresStore(postgres_url, schema=f"{mine.settings.schema}_b")
    try:
        run(commit(mine, started("a")))
        assert [i.key for i in run(mine.list_items())] == ["a"]
        assert run(elsewhere.list_items()) == []
    finally:
        run(mine.close())
        run(elsewhere.close())
        postgres.drop_schema(postgres_server, elsewhere.settings.schema)


def test_any_number_of_workers_run_at_once_each_on_its_own_items(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url, pool_max=2) for _ in range(3)]
    run(commit(stores[0], *(started(f"k{n}") for n in range(6))))

    async def scenario() -> list[list[str]]:
        claimed = []
        async with stores[0].running("w0"), stores[1].running("w1"), stores[2].running("w2"):
            for n, store in enumerate(stores):
                got = await store.claim_commands(f"w{n}", 2, T0, 60.0, HELD)
                claimed.append([c.key for c in got])
        return claimed

    try:
        claimed = run(scenario())
    finally:
        for store in stores:
            run(store.close())
    assert sorted(key for keys in claimed for key in keys) == [f"k{n}" for n in range(6)]
    assert all(len(keys) == 2 for keys in claimed)


def test_a_serialization_failure_is_retried_and_other_errors_become_store_errors(
    postgres_url: str,
) -> None:
    store = PostgresStore(postgres_url)
    attempts: list[int] = []

    def flaky(db: Connection) -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise errors.SerializationFailure("could not serialize access")
        return len(db.execute("SELECT 1"))

    def broken(db: Connection) -> None:
        attempts.append(1)
        db.execute("SELECT * FROM no_such_table")

    try:
        assert run(store._write(flaky)) == 1
        assert len(attempts) == 3
        attempts.clear()
        with pytest.raises(StoreError):  # psycopg's wording of the failure is psycopg's
            run(store._write(broken))
        assert len(attempts) == 1  # not retried: only a serialization failure is
    finally:
        run(store.close())


def test_psycopg_is_imported_only_when_a_postgresql_store_is_asked_for() -> None:
    probe = (
        "import sys, statewise, statewise.store; "
        "print('psycopg' in sys.modules, 'statewise.store.postgres' in sys.modules)"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert found.split() == ["False", "False"]
