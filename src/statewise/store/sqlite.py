"""The embedded store: one SQLite file in WAL mode.

SQLite has a single writer, so one runner process executes a file's work at a time: it takes
an exclusive lock file, which also proves that leases left behind by a killed runner are
orphans and can be released at once. Other processes (``statewise send``, ``status``) may
read and commit steps alongside it; every write transaction begins with ``BEGIN IMMEDIATE``,
so the ``seq`` fence reads under the write lock and keeps their steps consistent.

Calls run synchronously inside the async methods: they are local, sub-millisecond, and a thread
hop per call would cost more than it saves. A file busy or locked past ``busy_timeout`` (another
process holding the write lock) is transient: the call is retried after a capped backoff that
yields the event loop, and becomes ``TransientStoreError`` if the lock is still held.
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

from statewise.errors import RunnerLockError, StoreError, TransientStoreError
from statewise.store.connection import Connection, Ref, Row
from statewise.store.schema import SQLITE_MIGRATIONS, migrate_txn
from statewise.store.sql import P, SQLStore, T, Versions, not_utf8

_WAKE_POLL = 0.02
_BUSY_TIMEOUT = 10.0
_BUSY_ATTEMPTS = 2
_BUSY_BACKOFF = 0.1
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_FULL_VACUUM, _INCREMENTAL_VACUUM = 1, 2  # PRAGMA auto_vacuum

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
    lock_counts = ""
    json_usage = "json_extract(h.detail, '$.usage')"
    json_review = "json_extract(h.detail, '$.decision.review')"

    def __init__(self, path: str | Path, *, busy_timeout: float = _BUSY_TIMEOUT) -> None:
        """Open (and migrate) the file; a write waits ``busy_timeout`` seconds for its lock."""
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from None
        self._connection = _SQLiteConnection(self._db)
        try:
            with _translated(self.path):
                self._db.execute(
                    f"PRAGMA busy_timeout={round(busy_timeout * 1000):d}"
                )  # openers race
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
        except BaseException:
            self._db.close()  # an opener that lost the migration race leaves no handle behind
            raise

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
        """One write transaction; a failed COMMIT (a busy file) rolls back, so none stays open."""
        with _translated(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    async def _write(
        self, txn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await _retried(lambda: self._in_transaction(lambda db: txn(db, *args, **kwargs)))

    def _in_transaction(self, call: Callable[[Connection], T]) -> T:
        with self._transaction() as db:
            return call(db)

    async def _read(
        self, query: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await _retried(lambda: self._query(lambda db: query(db, *args, **kwargs)))

    def _query(self, call: Callable[[Connection], T]) -> T:
        with _translated(self.path):
            return call(self._connection)

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
        """Ids from the ``outbox_ids`` counter, under the write lock: never one handed out before.

        A runner keys the commands it runs by their row's id, and a deleted row's command may
        still be winding down, so an id must not come back (as the largest id + 1 would).
        """
        ((last,),) = db.execute("UPDATE outbox_ids SET last = last + ? RETURNING last", (count,))
        return range(last - count + 1, last + 1)

    def tally_shard_txn(self, db: Connection) -> int:
        """Always 0: the file has one writer at a time, so no commit ever waits on a shard."""
        return 0

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

    def floor(self, expression: str) -> str:
        """CAST truncates towards zero, so a negative non-integer steps one down.

        SQLite's own ``floor`` exists only where it was built with its math functions.
        """
        whole = f"CAST(({expression}) AS INTEGER)"
        return f"({whole} - (({expression}) < {whole}))"

    def octets(self, expression: str) -> str:
        """The UTF-8 bytes of the text (``LENGTH`` of text counts characters)."""
        return f"LENGTH(CAST({expression} AS BLOB))"

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

    async def reclaim_space(self) -> str:
        """Run ``PRAGMA incremental_vacuum`` when the file has incremental auto_vacuum."""
        with _translated(self.path):
            mode = int(self._db.execute("PRAGMA auto_vacuum").fetchone()[0])
        if mode == _INCREMENTAL_VACUUM:
            await _retried(self._incremental_vacuum)
            return "SQLite (auto_vacuum=incremental): the freed pages went back to the file system"
        if mode == _FULL_VACUUM:
            return "SQLite (auto_vacuum=full): the file shrank as the rows went"
        return (
            "SQLite keeps freed pages for reuse: the file itself shrinks only after VACUUM "
            "(or with auto_vacuum)"
        )

    def _incremental_vacuum(self) -> None:
        """Free every page: the pragma frees one per step, and ``executescript`` steps it out."""
        with _translated(self.path):
            self._db.executescript("PRAGMA incremental_vacuum;")

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


async def _retried(call: Callable[[], T]) -> T:
    """``call``, again after a pause that yields the event loop while the file stays busy.

    Each attempt already waited ``busy_timeout`` inside SQLite, so one retry is enough.
    """
    attempt = 1
    while True:
        try:
            return call()
        except TransientStoreError:
            if attempt == _BUSY_ATTEMPTS:
                raise
            await asyncio.sleep(_BUSY_BACKOFF * 2**attempt)
            attempt += 1


def is_transient(error: sqlite3.Error) -> bool:
    """Whether ``error`` says the file is busy or locked by another connection, which passes."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _BUSY_CODES


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """The one place sqlite3's exceptions become StoreError (see ``is_transient``).

    Text sqlite3 cannot encode is the caller's input, refused as such.
    """
    try:
        yield
    except sqlite3.Error as exc:
        kind = TransientStoreError if is_transient(exc) else StoreError
        raise kind(f"SQLite error on {path}: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise not_utf8(exc) from None
