"""The embedded store: one SQLite file in WAL mode.

SQLite has a single writer, so one runner process executes a file's work at a time: it takes
an exclusive lock file, which also proves that leases left behind by a killed runner are
orphans and can be released at once. Other processes (``statewise send``, ``status``) may
read and commit steps alongside it; every write transaction begins with ``BEGIN IMMEDIATE``,
so the ``seq`` fence reads under the write lock and keeps their steps consistent.

Calls run synchronously inside the async methods: they are local, sub-millisecond, and a thread
hop per call would cost more than it saves.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Concatenate

from statewise.errors import RunnerLockError, StoreError
from statewise.store.connection import Connection, Ref, Row
from statewise.store.schema import SQLITE_MIGRATIONS, migrate_txn
from statewise.store.sql import P, SQLStore, T, Versions, not_utf8

_WAKE_POLL = 0.02

_RUNNABLE = "{t}.lease_owner IS NULL OR {t}.lease_until < ?"
# A correlated lookup of the row's item, so a claim scans work rows, never the items table.
_ON_HELD = (
    "EXISTS (SELECT 1 FROM items i JOIN held h ON h.workflow = i.workflow "
    "AND h.version = i.version WHERE i.id = {t}.item_id)"
)


class _SQLiteConnection:
    """sqlite3 behind the shared ``Connection`` protocol."""

    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._db.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._db.executemany(sql, rows)


class SQLiteStore(SQLStore):
    """The embedded default store; see the module docstring for its concurrency model."""

    lock_rows = ""
    json_usage = "json_extract(h.detail, '$.usage')"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from None
        self._connection = _SQLiteConnection(self._db)
        with _translated(self.path):
            self._db.execute("PRAGMA busy_timeout=10000")  # first: openers may race
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()

    def _user_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        """Bring the file to the latest schema; BEGIN IMMEDIATE makes one opener do it."""
        if self._user_version() == len(SQLITE_MIGRATIONS):
            return
        with self._transaction() as db:
            reached = migrate_txn(db, SQLITE_MIGRATIONS, self._user_version())
            self._db.execute(f"PRAGMA user_version = {reached:d}")

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with _translated(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    async def _write(
        self, txn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        with self._transaction() as db:
            return txn(db, *args, **kwargs)

    async def _read(
        self, query: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        with _translated(self.path):
            return query(self._connection, *args, **kwargs)

    def select_items_txn(
        self, db: Connection, columns: str, refs: Sequence[Ref], *, lock: bool = False
    ) -> list[Row]:
        """One index lookup per ref; the write transaction's lock is the lock.

        The refs drive a CROSS JOIN: a row-value ``IN (VALUES ...)`` made SQLite scan the whole
        (workflow, key) index.
        """
        return db.execute(
            "WITH refs (ref_workflow, ref_key) AS "
            f"(VALUES {', '.join('(?, ?)' for _ in refs)}) "
            f"SELECT {columns} FROM refs CROSS JOIN items "
            "ON workflow = ref_workflow AND key = ref_key",
            [part for ref in refs for part in ref],
        )

    def reserve_outbox_ids_txn(self, db: Connection, count: int) -> Sequence[int]:
        """Ids after the largest, handed out under the write lock."""
        ((last,),) = db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox")
        return range(last + 1, last + 1 + count)

    def notify_txn(self, db: Connection) -> None:
        """Nothing to send: waiters see the file's ``data_version`` change."""

    def any_of(self, column: str, values: Collection[Any]) -> tuple[str, list[Any]]:
        """``column IN (?, ...)``."""
        return f"{column} IN ({', '.join('?' * len(values))})", list(values)

    def contains(self, column: str) -> str:
        """``instr``: exact characters, where LIKE would ignore ASCII case."""
        return f"instr({column}, ?) > 0"

    def json_text(self, expression: str, name: str) -> str:
        """``json_extract``, which returns SQL values of the JSON's own type."""
        return f"json_extract({expression}, '$.{name}')"

    json_number = json_text

    def _claim_commands_txn(
        self, db: Connection, owner: str, limit: int, now: float, until: float, held: Versions
    ) -> list[Row]:
        """Oldest ready commands of held versions whose item no other owner is working on.

        Ids grow with time, so the oldest come first in rowid order: the scan stops once it has
        ``limit`` rows, with no sort of the whole backlog.
        """
        return db.execute(
            f"WITH {_held(held)} UPDATE outbox SET lease_owner = ?, lease_until = ? "
            f"WHERE id IN (SELECT o.id FROM outbox o WHERE o.available_at <= ? "
            f"AND ({_RUNNABLE.format(t='o')}) AND {_ON_HELD.format(t='o')} AND NOT EXISTS "
            "(SELECT 1 FROM outbox b WHERE b.item_id = o.item_id AND b.lease_owner <> ? "
            "AND b.lease_until >= ?) ORDER BY o.id LIMIT ?) "
            "RETURNING id, (SELECT workflow FROM items WHERE items.id = item_id), "
            "(SELECT key FROM items WHERE items.id = item_id), effect",
            (*_flat(held), owner, until, now, now, owner, now, limit),
        )

    def _claim_timers_txn(
        self, db: Connection, owner: str, limit: int, now: float, until: float, held: Versions
    ) -> list[Row]:
        """Earliest due timers of held versions."""
        return db.execute(
            f"WITH {_held(held)} UPDATE timers SET lease_owner = ?, lease_until = ? "
            "WHERE id IN (SELECT t.id FROM timers t "
            f"WHERE t.due_at <= ? AND ({_RUNNABLE.format(t='t')}) AND {_ON_HELD.format(t='t')} "
            "ORDER BY t.due_at, t.id LIMIT ?) "
            "RETURNING id, (SELECT workflow FROM items WHERE items.id = item_id), "
            "(SELECT key FROM items WHERE items.id = item_id), event",
            (*_flat(held), owner, until, now, now, limit),
        )

    @asynccontextmanager
    async def running(self, owner: str) -> AsyncIterator[None]:
        """Hold the file's single-runner lock; free the leases a dead runner left."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = lock_path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunnerLockError(
                f"{self.path} is already being run by {holder}; wait for it to finish, "
                f"or send events with `statewise send`, which works alongside it",
                holder,
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({owner})")
        handle.flush()
        try:
            with self._transaction() as db:
                db.execute("UPDATE outbox SET lease_owner = NULL, lease_until = NULL")
                db.execute("UPDATE timers SET lease_owner = NULL, lease_until = NULL")
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    async def wait_for_work(self, timeout: float) -> None:
        """Poll the file's ``data_version``, which changes when another connection commits."""
        deadline = time.monotonic() + timeout
        with _translated(self.path):
            seen = self._db.execute("PRAGMA data_version").fetchone()[0]
            while (left := deadline - time.monotonic()) > 0:
                await asyncio.sleep(min(_WAKE_POLL, left))
                if self._db.execute("PRAGMA data_version").fetchone()[0] != seen:
                    return

    async def schema_version(self) -> int:
        """``PRAGMA user_version``."""
        with _translated(self.path):
            return self._user_version()

    async def close(self) -> None:
        """Close the connection."""
        self._db.close()


def _held(versions: Versions) -> str:
    return f"held (workflow, version) AS (VALUES {', '.join('(?, ?)' for _ in versions)})"


def _flat(versions: Versions) -> list[Any]:
    return [part for version in versions for part in version]


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """The one place sqlite3's exceptions become StoreError; text it cannot encode is refused."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite error on {path}: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise not_utf8(exc) from None
