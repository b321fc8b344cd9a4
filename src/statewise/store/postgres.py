"""The production store: PostgreSQL through psycopg 3 and a connection pool.

Any number of worker processes on any number of hosts share one database; nothing is
exclusive. What keeps them apart:

- Commits lock the rows of the items they touch (``SELECT ... ORDER BY id FOR UPDATE``, the
  same order everywhere, so two commits cannot deadlock on items) and fence each step on the
  ``seq`` read under that lock. New items are inserted with ``ON CONFLICT DO NOTHING``, so
  two writers starting one key get one COMMITTED and one DUPLICATE.
- Claims take runnable outbox and timer rows with ``FOR UPDATE SKIP LOCKED`` through partial
  indexes of runnable rows (unleased, or leased past their time), the way Procrastinate
  fetches jobs: concurrent claimers never get the same row and never wait for one another.
  A claim also locks the rows' items, so two claimers never split one item's commands.
- A worker that dies simply stops renewing its leases; when they expire the rows become
  runnable again. ``running`` therefore takes no lock.
- Commits that queue work another worker could take ``NOTIFY`` the schema's channel;
  ``wait_for_work`` listens on a dedicated connection, with its timeout as the slow poll.

Errors are classified in ``_translated``, as DBOS classifies them. Serialization failures
and deadlocks are retried at once with jittered exponential backoff. Transient failures (a
SQLSTATE of class 08 connection exception, 53 insufficient resources or 57 operator
intervention, such as a backend terminated by an administrator, and an ``OperationalError``
without a SQLSTATE, which psycopg raises for a connection that closed) are retried with a
longer, capped backoff, on a fresh pooled connection, and become ``TransientStoreError`` if
they last. Retrying a write is safe: a transaction cut off before its commit changed nothing,
and one that did commit is fenced by its items' ``seq`` and the work rows it consumed. Every
other psycopg error becomes a StoreError. psycopg calls block, so each one runs in a worker
thread (``asyncio.to_thread``) over a pooled connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Concatenate
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors, sql
from psycopg_pool import ConnectionPool

from statewise.errors import InvalidInputError, StoreError, TransientStoreError
from statewise.store.connection import Connection, Ref, Row
from statewise.store.schema import POSTGRES_MIGRATIONS, migrate_txn
from statewise.store.sql import P, SQLStore, T, Versions, not_utf8
from statewise.store.tally import SHARDS

DEFAULT_SCHEMA = "statewise"
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")
_RETRIES = 8
_BACKOFF = 0.005
_OUTAGE_RETRIES = 6
_OUTAGE_BACKOFF = 0.05
_OUTAGE_BACKOFF_CAP = 2.0
_TRANSIENT_CLASSES = ("08", "53", "57")
_HELD = "held (workflow, version) AS (SELECT * FROM unnest(?::text[], ?::bigint[]))"


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """Where the store lives: a libpq URL, the schema holding its tables, the pool's size."""

    conninfo: str
    schema: str = DEFAULT_SCHEMA
    pool_min: int = 1
    pool_max: int = 10

    @classmethod
    def from_url(cls, url: str) -> PostgresSettings:
        """Read ``schema``, ``pool_min`` and ``pool_max`` from the query; pass the rest on."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        schema = query.pop("schema", DEFAULT_SCHEMA)
        sizes = {name: query.pop(name, None) for name in ("pool_min", "pool_max")}
        conninfo = urlunsplit(parts._replace(query=urlencode(query)))
        try:
            numbers = {name: int(value) for name, value in sizes.items() if value is not None}
        except ValueError:
            raise StoreError(
                f"pool_min and pool_max must be whole numbers in {redacted(url)!r}"
            ) from None
        return cls(conninfo, schema, **numbers).checked()

    def checked(self) -> PostgresSettings:
        """Refuse a schema name that would need quoting, or a pool that cannot open."""
        if not _SCHEMA_NAME.fullmatch(self.schema):
            raise StoreError(
                f"schema {self.schema!r} must be lower-case letters, digits and underscores"
            )
        if not 0 <= self.pool_min <= self.pool_max or self.pool_max < 1:
            raise StoreError(
                f"need 0 <= pool_min <= pool_max and pool_max >= 1, got "
                f"pool_min={self.pool_min}, pool_max={self.pool_max}"
            )
        return self

    @property
    def where(self) -> str:
        """host:port/database, for messages (never the password)."""
        parts = urlsplit(self.conninfo)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def redacted(url: str) -> str:
    """``url`` with its passwords replaced by ``***``: safe for a message or a log.

    libpq reads one before the ``@`` and one as a ``password`` query parameter.
    """
    parts = urlsplit(url)
    if parts.password is not None:
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in query):
        hidden = [(name, "***" if name == "password" else value) for name, value in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts)


class _PostgresConnection:
    """psycopg behind the shared ``Connection`` protocol (``?`` placeholders become ``%s``)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with _nul_refused([params]):
            cursor = self._conn.execute(_placeholders(sql), params)
        return cursor.fetchall() if cursor.description is not None else []

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._conn.cursor() as cursor, _nul_refused(rows):
                cursor.executemany(_placeholders(sql), rows)


@contextmanager
def _nul_refused(rows: Sequence[Sequence[Any]]) -> Iterator[None]:
    """Text holding NUL, which PostgreSQL cannot store, refused as the caller's input.

    psycopg refuses it before sending anything (a DataError with no SQLSTATE), so nothing
    changed; SQLite stores it, so without this a key or reason with NUL was a store failure
    on one dialect and an ordinary answer on the other.
    """
    try:
        yield
    except psycopg.DataError as exc:
        if exc.sqlstate is None and any(
            isinstance(value, str) and "\x00" in value for row in rows for value in row
        ):
            raise InvalidInputError(
                "text holding a NUL character (U+0000) cannot be stored in or looked up from "
                "PostgreSQL; nothing changed"
            ) from None
        raise


@lru_cache(maxsize=512)
def _placeholders(text: str) -> Any:
    return text.replace("%", "%%").replace("?", "%s")


class _Conflict(StoreError):
    """A serialization failure or deadlock: the transaction is retried from the start."""


class PostgresStore(SQLStore):
    """PostgreSQL store; see the module docstring for how many writers stay correct.

    ``url`` is a libpq URL with optional ``schema``, ``pool_min`` and ``pool_max`` query
    parameters; the keyword arguments override them. The schema is created and migrated on
    open, under an advisory lock, so workers starting together are safe.
    """

    lock_rows = " FOR UPDATE"
    lock_counts = "LOCK TABLE counts_by_state IN EXCLUSIVE MODE"
    json_usage = "(h.detail::jsonb -> 'usage')"
    json_review = "(h.detail::jsonb -> 'decision' -> 'review')"

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_min: int | None = None,
        pool_max: int | None = None,
    ) -> None:
        base = PostgresSettings.from_url(url)
        self.settings = PostgresSettings(
            base.conninfo,
            schema or base.schema,
            base.pool_min if pool_min is None else pool_min,
            base.pool_max if pool_max is None else pool_max,
        ).checked()
        self.channel = f"statewise_{self.settings.schema}"
        self._tally_lock = _lock_key(self.settings.schema) >> 32  # one 32-bit key per schema
        self._listener: psycopg.Connection[Any] | None = None
        self._listening = threading.Lock()
        # Waits block for up to their timeout even once the caller stopped waiting; on a
        # thread of their own they can never hold up the store calls in asyncio's pool.
        self._waits = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statewise-listen")
        self._migrate()
        self._pool = ConnectionPool(
            self.settings.conninfo,
            min_size=self.settings.pool_min,
            max_size=self.settings.pool_max,
            kwargs={"autocommit": True},
            configure=self._configure,
            name=f"statewise-{self.settings.schema}",
            open=True,
        )

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.settings.conninfo, autocommit=True)
        except psycopg.Error as exc:
            kind = TransientStoreError if is_transient(exc) else StoreError
            raise kind(
                f"cannot connect to PostgreSQL at {self.settings.where}: {exc}".strip()
            ) from None

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Every pooled connection works in the store's schema."""
        statement = sql.SQL("SET search_path TO {}").format(sql.Identifier(self.settings.schema))
        conn.execute(statement)

    def _migrate(self) -> None:
        """Create the schema and apply missing migrations, one opener at a time."""
        schema = sql.Identifier(self.settings.schema)
        with self._connect() as conn, _translated(), conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(self.settings.schema),))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "applied_at DOUBLE PRECISION NOT NULL)"
            )
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            (current,) = row.fetchone() or (0,)
            reached = migrate_txn(_PostgresConnection(conn), POSTGRES_MIGRATIONS, current)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    [(number, time.time()) for number in range(current + 1, reached + 1)],
                )

    async def _write(
        self, txn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await asyncio.to_thread(self._pooled, True, lambda db: txn(db, *args, **kwargs))

    async def _read(
        self, query: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await asyncio.to_thread(self._pooled, False, lambda db: query(db, *args, **kwargs))

    def _pooled(self, write: bool, call: Callable[[Connection], T]) -> T:
        """Run ``call`` on a pooled connection, in one transaction if ``write``.

        Serialization failures and deadlocks are retried with jittered exponential backoff,
        transient failures with a longer capped one; the pool drops a broken connection when
        it comes back, so each retry starts on a working one.
        """
        conflicts = outages = 1
        while True:
            try:
                with _translated(), self._pool.connection() as conn:
                    if not write:
                        return call(_PostgresConnection(conn))
                    with conn.transaction():
                        return call(_PostgresConnection(conn))
            except _Conflict:
                if conflicts == _RETRIES:
                    raise
                time.sleep(random.uniform(0, _BACKOFF * 2**conflicts))
                conflicts += 1
            except TransientStoreError:
                if outages == _OUTAGE_RETRIES:
                    raise
                pause = min(_OUTAGE_BACKOFF * 2**outages, _OUTAGE_BACKOFF_CAP)
                time.sleep(random.uniform(pause / 2, pause))
                outages += 1

    def select_items_txn(
        self, db: Connection, columns: str, refs: Sequence[Ref], *, lock: bool = False
    ) -> list[Row]:
        """The refs as two arrays (one statement shape for any count); locked in id order."""
        return db.execute(
            f"SELECT {columns} FROM items JOIN unnest(?::text[], ?::text[]) "
            "AS refs (ref_workflow, ref_key) ON workflow = ref_workflow AND key = ref_key"
            + (" ORDER BY id FOR UPDATE OF items" if lock else ""),
            ([w for w, _ in refs], [k for _, k in refs]),
        )

    def reserve_outbox_ids_txn(self, db: Connection, count: int) -> Sequence[int]:
        """Ids from the outbox sequence."""
        rows = db.execute("SELECT nextval('outbox_ids') FROM generate_series(1, ?::int)", (count,))
        return [row[0] for row in rows]

    def tally_shard_txn(self, db: Connection) -> int:
        """The lowest shard no other open transaction holds, taken until this one ends.

        A transaction-scoped advisory lock per shard: the series is read in order and the
        LIMIT stops at the first lock taken, so the busier the store, the more shards are in
        use, and a quiet one writes shard 0. With every shard held (more than ``SHARDS``
        transactions writing at once) one is picked at random and the upsert waits its turn.
        """
        rows = db.execute(
            "SELECT shard FROM generate_series(0, ?::int) AS shard "
            "WHERE pg_try_advisory_xact_lock(?::int, shard) LIMIT 1",
            (SHARDS - 1, self._tally_lock),
        )
        return int(rows[0][0]) if rows else random.randrange(SHARDS)

    def notify_txn(self, db: Connection) -> None:
        """NOTIFY the schema's channel; delivered when the transaction commits."""
        db.execute("SELECT pg_notify(?, '')", (self.channel,))

    def any_of(self, column: str, values: Collection[Any]) -> tuple[str, list[Any]]:
        """``column = ANY(?)`` with one array parameter."""
        return f"{column} = ANY(?)", [list(values)]

    def contains(self, column: str) -> str:
        """``strpos``: exact characters, no LIKE wildcards to escape."""
        return f"strpos({column}, ?) > 0"

    def json_text(self, expression: str, name: str) -> str:
        """``->>`` on jsonb."""
        return f"({expression} ->> '{name}')"

    def json_number(self, expression: str, name: str) -> str:
        """``->>`` cast to double precision."""
        return f"({expression} ->> '{name}')::float8"

    def floor(self, expression: str) -> str:
        """``floor`` itself."""
        return f"floor({expression})"

    def octets(self, expression: str) -> str:
        """``octet_length`` of the text as UTF-8, whatever the database's encoding."""
        return f"octet_length(convert_to({expression}, 'UTF8'))"

    def _claim_commands_txn(
        self, db: Connection, owner: str, limit: int, now: float, until: float, held: Versions
    ) -> list[Row]:
        """Unleased and expired commands, locked with their items, SKIP LOCKED."""
        pick = (
            "SELECT o.id FROM outbox o JOIN items i ON i.id = o.item_id "
            "JOIN held h ON h.workflow = i.workflow AND h.version = i.version "
            "WHERE o.available_at <= ? AND {runnable} AND NOT EXISTS (SELECT 1 FROM outbox b "
            "WHERE b.item_id = o.item_id AND b.lease_owner <> ? AND b.lease_until >= ?) "
            "ORDER BY {order} LIMIT ? FOR UPDATE OF o, i SKIP LOCKED"
        )
        fresh = pick.format(runnable="o.lease_owner IS NULL", order="o.available_at, o.id")
        expired = pick.format(
            runnable="o.lease_owner IS NOT NULL AND o.lease_until < ?", order="o.lease_until, o.id"
        )
        return db.execute(
            f"WITH {_HELD}, fresh AS ({fresh}), expired AS ({expired}), "
            "picked AS (SELECT id FROM fresh UNION SELECT id FROM expired ORDER BY id LIMIT ?) "
            "UPDATE outbox o SET lease_owner = ?, lease_until = ? FROM picked, items i "
            "WHERE o.id = picked.id AND i.id = o.item_id "
            "RETURNING o.id, i.workflow, i.key, o.effect",
            (
                *_arrays(held),
                *(now, owner, now, limit),
                *(now, now, owner, now, limit),
                *(limit, owner, until),
            ),
        )

    def _claim_timers_txn(
        self, db: Connection, owner: str, limit: int, now: float, until: float, held: Versions
    ) -> list[Row]:
        """Due timers, unleased or expired, SKIP LOCKED."""
        pick = (
            "SELECT t.id FROM timers t JOIN items i ON i.id = t.item_id "
            "JOIN held h ON h.workflow = i.workflow AND h.version = i.version "
            "WHERE t.due_at <= ? AND {runnable} ORDER BY {order} LIMIT ? "
            "FOR UPDATE OF t SKIP LOCKED"
        )
        due = pick.format(runnable="t.lease_owner IS NULL", order="t.due_at, t.id")
        expired = pick.format(
            runnable="t.lease_owner IS NOT NULL AND t.lease_until < ?", order="t.lease_until, t.id"
        )
        return db.execute(
            f"WITH {_HELD}, due AS ({due}), expired AS ({expired}), "
            "picked AS (SELECT id FROM due UNION SELECT id FROM expired ORDER BY id LIMIT ?) "
            "UPDATE timers t SET lease_owner = ?, lease_until = ? FROM picked, items i "
            "WHERE t.id = picked.id AND i.id = t.item_id "
            "RETURNING t.id, i.workflow, i.key, t.event",
            (*_arrays(held), now, limit, now, now, limit, limit, owner, until),
        )

    @asynccontextmanager
    async def running(self, owner: str) -> AsyncIterator[None]:
        """Nothing exclusive: any number of workers run at once; dead ones' leases expire."""
        yield

    async def wait_for_work(self, timeout: float) -> None:
        """Until a NOTIFY on the schema's channel arrives, or ``timeout`` passes."""
        await asyncio.get_running_loop().run_in_executor(self._waits, self._wait, timeout)

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if not self._listening.acquire(timeout=max(timeout, 0.0)):
            return
        try:
            listener = self._listener or self._listen()
            for _ in listener.notifies(timeout=max(deadline - time.monotonic(), 0.0), stop_after=1):
                break
        except (psycopg.Error, StoreError):
            # No listener: fall back to the poll the caller does after the timeout.
            self._drop_listener()
            time.sleep(max(deadline - time.monotonic(), 0.0))
        finally:
            self._listening.release()

    def _listen(self) -> psycopg.Connection[Any]:
        listener = self._connect()
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
        self._listener = listener
        return listener

    def _drop_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    async def reclaim_space(self) -> str:
        """Nothing to run: (auto)vacuum makes the space reusable."""
        return (
            "PostgreSQL reuses the freed space once (auto)vacuum has run; VACUUM FULL gives it "
            "back to the operating system"
        )

    async def schema_version(self) -> int:
        """The last row of ``schema_migrations``."""
        return int(await self._read(_schema_version_txn))

    async def close(self) -> None:
        """Close the pool and the listening connection."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._waits.shutdown(wait=True, cancel_futures=True)
        self._pool.close()
        with self._listening:
            self._drop_listener()


def _schema_version_txn(db: Connection) -> int:
    ((version,),) = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    return int(version)


def _arrays(versions: Versions) -> tuple[list[str], list[int]]:
    return [name for name, _ in versions], [number for _, number in versions]


def _lock_key(schema: str) -> int:
    """The advisory lock of one schema's migrations, as a signed 64-bit key."""
    digest = hashlib.sha256(f"statewise:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def is_transient(error: psycopg.Error) -> bool:
    """Whether ``error`` is an outage that may pass, so that retrying the work is right.

    By SQLSTATE class when the server sent one (08, 53, 57); without one, an
    ``OperationalError`` is the client's own report of a connection that failed or closed
    (``PoolTimeout``, a pool that found no working connection, is one too).
    """
    if error.sqlstate is not None:
        return transient_sqlstate(error.sqlstate)
    return isinstance(error, psycopg.OperationalError)


def transient_sqlstate(sqlstate: str) -> bool:
    """Whether a SQLSTATE is of a class that reports an outage rather than a mistake."""
    return sqlstate[:2] in _TRANSIENT_CLASSES


@contextmanager
def _translated() -> Iterator[None]:
    """The one place psycopg's exceptions become StoreError (see ``is_transient``).

    Messages never name the host or database: answers and logs may carry them further. Text
    psycopg cannot encode is the caller's input, refused as such.
    """
    try:
        yield
    except (errors.SerializationFailure, errors.DeadlockDetected) as exc:
        raise _Conflict(f"PostgreSQL conflict: {exc}") from exc
    except psycopg.Error as exc:
        if is_transient(exc):
            raise TransientStoreError(f"PostgreSQL is unavailable: {str(exc).strip()}") from exc
        raise StoreError(f"PostgreSQL error: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise not_utf8(exc) from None
