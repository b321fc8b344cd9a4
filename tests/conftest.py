"""Fixtures every test folder may use: the machine's PostgreSQL, one fresh schema a test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import postgres


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The server's URL; skips (fails under CI) when it cannot be reached."""
    url = postgres.server_url()
    reason = postgres.unreachable(url)
    if reason is not None:
        message = f"{reason}; {postgres.HINT}"
        if postgres.required():
            pytest.fail(f"PostgreSQL is required (CI or STATEWISE_REQUIRE_POSTGRES=1): {message}")
        pytest.skip(message)
    return url


@pytest.fixture
def postgres_schema(postgres_server: str) -> Iterator[str]:
    """A schema of the test's own, dropped afterwards (the store creates it on open)."""
    schema = postgres.fresh_schema()
    yield schema
    postgres.drop_schema(postgres_server, schema)


@pytest.fixture
def postgres_url(postgres_server: str, postgres_schema: str) -> str:
    """A store URL on the test's own schema."""
    return postgres.with_schema(postgres_server, postgres_schema)
