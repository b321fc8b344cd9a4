"""Fixtures every test folder may use: the machine's PostgreSQL, one fresh schema a test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import postgres

# The fixtures of statewise.testing (`workflow_test`), enabled as a workflow author enables them.
pytest_plugins = ["statewise.testing"]

# The command line's Rich consoles are made when statewise.cli is imported and keep the
# COLUMNS they saw then, while the tests give each CLI call its own width (CliRunner's env).
# A width inherited from whoever started pytest would win over those: pytest-xdist's workers
# start with COLUMNS=80, which cut the tables the tests read.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


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


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's store as ``--db`` takes it: a SQLite file, then the test's own PostgreSQL schema.

    A test that asks for it runs once on each store.
    """
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    url: str = request.getfixturevalue("postgres_url")
    return url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the stress loops come first, in their usual order.

    scripts/test.sh runs ``-n auto --dist worksteal``: each worker starts with an equal share of
    the list, the first worker the front of it, and a worker that runs dry takes over half of
    another's remaining tests. So the stress loops (process kills, chaos; each loads the whole
    machine by itself) run one after another on the first worker while the others take the
    rest, and they do not end up as one long test left at the end; a module's tests stay on one
    worker, so its module-scoped fixtures (a loaded model, a processed sample set) are mostly
    built once. Run without xdist, nothing is reordered.
    """
    if "PYTEST_XDIST_WORKER" in os.environ:  # under -n only xdist's workers collect
        items.sort(key=lambda item: item.get_closest_marker("stress") is None)  # stable
