"""Durable stores: one contract, thin dialects chosen by URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from statewise.errors import StoreError
from statewise.store.base import (
    ClaimedCommand,
    CommitOutcome,
    CommitStatus,
    CostRow,
    DueTimer,
    Lease,
    StateCount,
    StepCommit,
    Store,
    StoredWorkflow,
    StuckItem,
)
from statewise.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from statewise.store.postgres import PostgresStore

__all__ = [
    "ClaimedCommand",
    "CommitOutcome",
    "CommitStatus",
    "CostRow",
    "DueTimer",
    "Lease",
    "PostgresStore",
    "SQLiteStore",
    "StateCount",
    "StepCommit",
    "Store",
    "StoredWorkflow",
    "StuckItem",
    "open_store",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(url: str | Path) -> Store:
    """Open the store a URL names, applying any schema migrations it lacks.

    - ``sqlite:///path/run.sqlite`` or a plain file path: the embedded SQLite store.
    - ``postgresql://user@host:port/database`` (or ``postgres://``): PostgreSQL, with these
      query parameters read by statewise and the rest passed on to libpq (``sslmode``, ...):
      ``schema`` (default ``statewise``; created if missing), ``pool_min`` (default 1) and
      ``pool_max`` (default 10) connections. PostgreSQL needs the ``postgres`` extra
      (``pip install 'statewise[postgres]'``).

    Example: ``postgresql://app@db.internal/prod?schema=orders&pool_max=20``.
    """
    text = str(url)
    if text.startswith(_POSTGRES_SCHEMES):
        return _postgres_store_class()(text)
    if text.startswith("sqlite:///"):
        return SQLiteStore(text.removeprefix("sqlite:///"))
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise StoreError(
            f"unsupported store URL scheme {scheme!r}; use a SQLite file path, "
            "sqlite:///PATH or postgresql://..."
        )
    return SQLiteStore(text)


def _postgres_store_class() -> type[PostgresStore]:
    """Import the PostgreSQL dialect only when asked for, so psycopg stays optional."""
    try:
        from statewise.store.postgres import PostgresStore
    except ImportError as exc:
        raise StoreError(
            f"PostgreSQL stores need the postgres extra (pip install 'statewise[postgres]'): {exc}"
        ) from None
    return PostgresStore


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        return _postgres_store_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
