"""Measurements shared by every scenario: memory, database footprint, machine facts, timings."""

from __future__ import annotations

import os
import platform
import resource
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (``ru_maxrss``; KiB on Linux, B on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def cpu_seconds() -> float:
    """User plus system CPU time this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True, slots=True)
class Footprint:
    """Bytes on disk after a full WAL checkpoint, and how they split across tables."""

    db_bytes: int
    wal_bytes: int
    freelist_bytes: int
    by_table: dict[str, int]

    @property
    def total_bytes(self) -> int:
        """Database file plus WAL file."""
        return self.db_bytes + self.wal_bytes

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the total spelled out."""
        return {**asdict(self), "total_bytes": self.total_bytes}


def db_footprint(path: Path) -> Footprint:
    """Checkpoint (TRUNCATE) the WAL into the database, then measure both files."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        (free_pages,) = db.execute("PRAGMA freelist_count").fetchone()
        by_table = _bytes_by_table(db)
    db.close()
    wal = path.with_name(path.name + "-wal")
    return Footprint(
        db_bytes=path.stat().st_size,
        wal_bytes=wal.stat().st_size if wal.exists() else 0,
        freelist_bytes=int(page_size) * int(free_pages),
        by_table=by_table,
    )


def _bytes_by_table(db: sqlite3.Connection) -> dict[str, int]:
    """Pages per table and index from ``dbstat``; empty when SQLite was built without it."""
    try:
        rows = db.execute(
            "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
    except sqlite3.Error:
        return {}
    return {str(name): int(size) for name, size in rows}


def machine_info() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
    }


async def median_ms(call: Callable[[], Awaitable[Any]], runs: int) -> float:
    """The median milliseconds of ``runs`` awaited calls, after one warm-up call."""
    await call()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)
