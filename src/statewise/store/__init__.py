"""Durable stores: one contract, thin dialects chosen by URL."""

from __future__ import annotations

from pathlib import Path

from statewise.errors import StoreError
from statewise.store.base import (
    ClaimedCommand,
    CommitStatus,
    CostRow,
    DueTimer,
    StateCount,
    StepCommit,
    Store,
    StoredWorkflow,
)
from statewise.store.sqlite import SQLiteStore

__all__ = [
    "ClaimedCommand",
    "CommitStatus",
    "CostRow",
    "DueTimer",
    "SQLiteStore",
    "StateCount",
    "StepCommit",
    "Store",
    "StoredWorkflow",
    "open_store",
]


def open_store(url: str | Path) -> Store:
    """Open the store a URL names: ``sqlite:///path/run.sqlite`` or a plain file path."""
    text = str(url)
    if text.startswith("sqlite:///"):
        return SQLiteStore(text.removeprefix("sqlite:///"))
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise StoreError(
            f"unsupported store URL scheme {scheme!r}; use a SQLite file path or sqlite:///path"
        )
    return SQLiteStore(text)
