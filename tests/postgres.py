"""The PostgreSQL the tests run against: the server on this machine, one fresh schema a test.

The server's URL comes from ``STATEWISE_TEST_POSTGRES`` (default: the machine's own server,
trust auth, database ``test``). Without a reachable server the PostgreSQL tests are skipped
with a hint on how to start one, except under CI (``CI=true``) or with
``STATEWISE_REQUIRE_POSTGRES=1``, where an unreachable server fails them instead.
"""

from __future__ import annotations

import os
import uuid
from contextlib import closing
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

URL_VARIABLE = "STATEWISE_TEST_POSTGRES"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
HINT = (
    "start one with `pg_ctlcluster 15 main start` (Debian: `apt-get install postgresql`), or "
    "`docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=test "
    f"postgres:15`, or point {URL_VARIABLE} at a server"
)


def server_url() -> str:
    """The server the PostgreSQL tests use."""
    return os.environ.get(URL_VARIABLE, DEFAULT_URL)


def required() -> bool:
    """Whether an unreachable server is a failure (CI) rather than a skip."""
    return (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("STATEWISE_REQUIRE_POSTGRES") == "1"
    )


def unreachable(url: str) -> str | None:
    """Why the server cannot be used, or None when it answers."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc}); pip install 'statewise[postgres]'"
    try:
        with closing(psycopg.connect(url, connect_timeout=3)) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {url} is not reachable: {str(exc).strip()}"
    return None


def fresh_schema() -> str:
    """A schema name no other test, run or process uses."""
    return f"test_{os.getpid()}_{uuid.uuid4().hex[:10]}"


def with_schema(url: str, schema: str) -> str:
    """The store URL of ``schema`` on the server ``url``."""
    parts = urlsplit(url)
    query = urlencode({"schema": schema})
    return urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))


def connect(url: str, schema: str) -> Any:
    """A separate autocommit connection whose search path is ``schema``."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f'SET search_path TO "{schema}"')
    return conn


def drop_schema(url: str, schema: str) -> None:
    """Remove everything a test created."""
    import psycopg

    with closing(psycopg.connect(url, autocommit=True)) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def terminate(server: str, application: str) -> int:
    """End every backend named ``application``, and only those; how many there were.

    Other sessions share the server (other tests, other projects), so a test never ends
    backends it did not open: it names its own with ``application_name``.
    """
    with closing(connect(server, "public")) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application,),
        ).fetchall()
    return len(rows)
