"""The embedded store: one SQLite file in WAL mode.

SQLite has a single writer, so one runner process executes a file's work at a time: it takes
an exclusive lock file, which also proves that leases left behind by a killed runner are
orphans and can be released at once. Other processes (``statewise send``, ``status``) may
read and commit steps alongside it; the ``seq`` fence keeps their steps consistent.

Calls run synchronously inside the async methods: they are local, sub-millisecond, and a thread
hop per call would cost more than it saves.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from statewise.definition.model import Definition
from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.engine.result import Outcome
from statewise.errors import NotFoundError, StoreError
from statewise.store import codec
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
)
from statewise.store.batch import WritePlan, plan_writes

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE workflows (
        name TEXT NOT NULL, version INTEGER NOT NULL, source TEXT NOT NULL, file TEXT NOT NULL,
        commands TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (name, version));
    CREATE TABLE items (
        id INTEGER PRIMARY KEY, workflow TEXT NOT NULL, version INTEGER NOT NULL,
        key TEXT NOT NULL, state TEXT NOT NULL, status TEXT NOT NULL, entered_at REAL NOT NULL,
        created_at REAL NOT NULL, updated_at REAL NOT NULL, seq INTEGER NOT NULL,
        attempt INTEGER NOT NULL, retrying INTEGER NOT NULL, visits TEXT NOT NULL, branches TEXT,
        UNIQUE (workflow, key));
    CREATE INDEX items_by_state ON items (workflow, state, entered_at);
    CREATE INDEX items_by_status ON items (status, entered_at);
    CREATE INDEX items_by_key ON items (key);
    CREATE TABLE context (
        item_id INTEGER NOT NULL, path TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (item_id, path)) WITHOUT ROWID;
    CREATE TABLE history (
        item_id INTEGER NOT NULL, seq INTEGER NOT NULL, at REAL NOT NULL, from_state TEXT,
        to_state TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL,
        PRIMARY KEY (item_id, seq)) WITHOUT ROWID;
    CREATE TABLE timers (
        id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, due_at REAL NOT NULL,
        event TEXT NOT NULL, lease_owner TEXT, lease_until REAL);
    CREATE INDEX timers_by_due ON timers (due_at);
    CREATE INDEX timers_by_item ON timers (item_id);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, effect TEXT NOT NULL,
        available_at REAL NOT NULL, lease_owner TEXT, lease_until REAL);
    CREATE INDEX outbox_by_item ON outbox (item_id);
    """,
    """
    CREATE TABLE conversations (
        item_id INTEGER NOT NULL, agent TEXT NOT NULL, messages TEXT NOT NULL,
        updated_at REAL NOT NULL, PRIMARY KEY (item_id, agent)) WITHOUT ROWID;
    CREATE TABLE response_cache (
        cache_key TEXT PRIMARY KEY, response TEXT NOT NULL, created_at REAL NOT NULL)
        WITHOUT ROWID;
    """,
)

_ITEM_COLUMNS = (
    "id, workflow, version, key, state, status, entered_at, created_at, updated_at, seq, "
    "attempt, retrying, visits, branches"
)


class SQLiteStore(Store):
    """The embedded default store; see the module docstring for its concurrency model."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from None
        with _translated(self.path):
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._migrate()

    def _migrate(self) -> None:
        (current,) = self._db.execute("PRAGMA user_version").fetchone()
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            self._db.executescript(
                f"BEGIN IMMEDIATE; {script}; PRAGMA user_version={number}; COMMIT;"
            )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with _translated(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

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
            raise StoreError(
                f"{self.path} is already being run by {holder}; wait for it to finish, "
                f"or send events with `statewise send`, which works alongside it"
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

    async def save_workflow(
        self, definition: Definition, file: str, commands: Sequence[str]
    ) -> None:
        """Remember a definition; re-saving the same version keeps the first source."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO workflows (name, version, source, file, commands, created_at) "
                "VALUES (?, ?, ?, ?, ?, strftime('%s','now')) "
                "ON CONFLICT (name, version) DO UPDATE SET commands = excluded.commands",
                (
                    definition.name,
                    definition.version,
                    definition.source,
                    file,
                    codec.dumps(list(commands)),
                ),
            )

    async def workflows(self) -> list[StoredWorkflow]:
        """Every registered definition, oldest version first."""
        with _translated(self.path):
            rows = self._db.execute(
                "SELECT name, version, source, file, commands FROM workflows ORDER BY name, version"
            ).fetchall()
        return [StoredWorkflow(n, v, s, f, tuple(json.loads(c))) for n, v, s, f, c in rows]

    async def commit(
        self, commits: Sequence[StepCommit], lease: Lease | None = None
    ) -> list[CommitOutcome]:
        """All steps in one transaction, fenced by ``seq`` and written table by table."""
        with self._transaction() as db:
            known = self._fences(db, [(c.result.item.workflow, c.result.item.key) for c in commits])
            statuses: list[CommitStatus] = []
            accepted: list[tuple[int, int, StepCommit]] = []
            ignored = WritePlan()
            for position, entry in enumerate(commits):
                status, item_id = self._fence(db, entry, known)
                statuses.append(status)
                if status is not CommitStatus.COMMITTED:
                    continue
                if item_id is None:
                    ignored.consume(entry)
                else:
                    accepted.append((position, item_id, entry))
            plan = plan_writes(accepted)
            self._consume(db, ignored, lease)
            queued = self._write(db, plan, lease)
        return [
            CommitOutcome(status, tuple(queued.get(position, ())))
            for position, status in enumerate(statuses)
        ]

    @staticmethod
    def _fences(
        db: sqlite3.Connection, refs: list[tuple[str, str]]
    ) -> dict[tuple[str, str], list[int]]:
        """Current (id, seq) of every item the batch touches, read under the write lock."""
        refs = list(dict.fromkeys(refs))
        if not refs:
            return {}
        rows = _select_by_refs(db, "workflow, key, id, seq", refs)
        return {(w, k): [i, s] for w, k, i, s in rows}

    def _fence(
        self, db: sqlite3.Connection, entry: StepCommit, known: dict[tuple[str, str], list[int]]
    ) -> tuple[CommitStatus, int | None]:
        """Accept a step only if it was computed from the item as it stands in this batch."""
        item = entry.result.item
        if entry.result.outcome is Outcome.IGNORED:
            return CommitStatus.COMMITTED, None
        ref = (item.workflow, item.key)
        current = known.get(ref)
        if entry.expected_seq is None:
            if current is not None:
                return CommitStatus.DUPLICATE, None
            item_id = self._insert_item(db, item)
            known[ref] = [item_id, item.seq]
            return CommitStatus.COMMITTED, item_id
        if current is None or current[1] != entry.expected_seq:
            return CommitStatus.STALE, None
        current[1] = item.seq
        return CommitStatus.COMMITTED, current[0]

    @staticmethod
    def _insert_item(db: sqlite3.Connection, item: Item) -> int:
        row = db.execute(
            "INSERT INTO items (state, status, entered_at, updated_at, seq, attempt, retrying, "
            "visits, branches, workflow, version, key, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (*_item_values(item), item.workflow, item.version, item.key, item.created_at),
        ).fetchone()
        return int(row[0])

    def _write(
        self, db: sqlite3.Connection, plan: WritePlan, lease: Lease | None
    ) -> dict[int, list[ClaimedCommand]]:
        """Run the plan's statements; return the queued commands leased to ``lease``."""
        db.executemany(
            "UPDATE items SET state = ?, status = ?, entered_at = ?, updated_at = ?, seq = ?, "
            "attempt = ?, retrying = ?, visits = ?, branches = ? WHERE id = ?",
            [(*_item_values(item), item_id) for item_id, item in plan.items.items()],
        )
        db.executemany(
            "DELETE FROM context WHERE item_id = ? AND path > ? AND path < ?",
            [(i, p + codec.PATH_SEPARATOR, p + chr(0x20)) for i, p in plan.context_clears],
        )
        db.executemany(
            "INSERT INTO context (item_id, path, value) VALUES (?, ?, ?) "
            "ON CONFLICT (item_id, path) DO UPDATE SET value = excluded.value",
            plan.context_rows(),
        )
        db.executemany(
            "INSERT INTO history (item_id, seq, at, from_state, to_state, event, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            plan.history,
        )
        db.executemany("DELETE FROM timers WHERE item_id = ?", [(i,) for i in plan.timer_clears])
        db.executemany(
            "INSERT INTO timers (item_id, due_at, event) VALUES (?, ?, ?)", plan.timer_rows()
        )
        self._consume(db, plan, lease)
        return self._queue_commands(db, plan, lease)

    @staticmethod
    def _consume(db: sqlite3.Connection, plan: WritePlan, lease: Lease | None) -> None:
        owner_check = " AND lease_owner = ?" if lease else ""
        extra = (lease.owner,) if lease else ()
        db.executemany(
            f"DELETE FROM outbox WHERE id = ?{owner_check}",
            [(i, *extra) for i in plan.consumed_outbox],
        )
        db.executemany(
            f"DELETE FROM timers WHERE id = ?{owner_check}",
            [(i, *extra) for i in plan.consumed_timers],
        )

    @staticmethod
    def _queue_commands(
        db: sqlite3.Connection, plan: WritePlan, lease: Lease | None
    ) -> dict[int, list[ClaimedCommand]]:
        """Insert the outbox rows; leased ones come back keyed by their step's identity."""
        owner, until = (lease.owner, lease.until) if lease else (None, None)
        # Ids are handed out here, under the write lock, so one executemany needs no RETURNING.
        (last,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()
        ids = range(last + 1, last + 1 + len(plan.commands))
        db.executemany(
            "INSERT INTO outbox (id, item_id, effect, available_at, lease_owner, lease_until) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (outbox_id, item_id, codec.encode_effect(effect), item.updated_at, owner, until)
                for outbox_id, (item_id, item, effect, _) in zip(ids, plan.commands, strict=True)
            ],
        )
        queued: dict[int, list[ClaimedCommand]] = {}
        if lease is not None:
            for outbox_id, (_, item, effect, position) in zip(ids, plan.commands, strict=True):
                claimed = ClaimedCommand(outbox_id, item.workflow, item.key, effect)
                queued.setdefault(position, []).append(claimed)
        return queued

    async def get_item(self, workflow: str | None, key: str) -> Item:
        """One item with its context; ambiguous keys across workflows need ``workflow``."""
        with _translated(self.path):
            rows = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE key = ?"
                + (" AND workflow = ?" if workflow else ""),
                (key, workflow) if workflow else (key,),
            ).fetchall()
        if not rows:
            where = f" in workflow {workflow!r}" if workflow else ""
            raise NotFoundError(f"no item with key {key!r}{where}")
        if len(rows) > 1:
            names = ", ".join(sorted(r[1] for r in rows))
            raise NotFoundError(f"key {key!r} exists in several workflows ({names}); name one")
        return self._with_context(rows)[0]

    async def get_items(self, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        """Items by (workflow, key), with context, in one query."""
        refs = list(dict.fromkeys(refs))
        if not refs:
            return {}
        with _translated(self.path):
            rows = _select_by_refs(self._db, _ITEM_COLUMNS, refs)
        return {(i.workflow, i.key): i for i in self._with_context(rows)}

    def _with_context(self, rows: list[tuple[Any, ...]]) -> list[Item]:
        ids = [row[0] for row in rows]
        by_item: dict[int, list[tuple[str, str]]] = {i: [] for i in ids}
        for item_id, path, value in self._db.execute(
            "SELECT item_id, path, value FROM context "
            f"WHERE item_id IN ({', '.join('?' * len(ids))})",
            ids,
        ):
            by_item[item_id].append((path, value))
        return [_item(row, codec.decode_context(by_item[row[0]])) for row in rows]

    async def claim_commands(
        self, owner: str, limit: int, now: float, lease_seconds: float
    ) -> list[ClaimedCommand]:
        """Lease the oldest ready commands."""
        rows = self._claim("outbox", "available_at", "effect", owner, limit, now, lease_seconds)
        return [ClaimedCommand(i, w, k, codec.decode_command(e)) for i, w, k, e in rows]

    async def claim_timers(
        self, owner: str, limit: int, now: float, lease_seconds: float
    ) -> list[DueTimer]:
        """Lease timers that are due."""
        rows = self._claim("timers", "due_at", "event", owner, limit, now, lease_seconds)
        return [DueTimer(i, w, k, codec.decode_timer(e)) for i, w, k, e in rows]

    def _claim(
        self,
        table: str,
        due: str,
        payload: str,
        owner: str,
        limit: int,
        now: float,
        lease_seconds: float,
    ) -> list[tuple[int, str, str, str]]:
        """Lease due, unleased rows of the outbox or the timers, earliest first."""
        with self._transaction() as db:
            rows = db.execute(
                f"UPDATE {table} SET lease_owner = ?, lease_until = ? WHERE id IN ("
                f" SELECT id FROM {table} WHERE {due} <= ?"
                f" AND (lease_until IS NULL OR lease_until < ?) ORDER BY {due}, id LIMIT ?) "
                "RETURNING id, (SELECT workflow FROM items WHERE items.id = item_id), "
                f"(SELECT key FROM items WHERE items.id = item_id), {payload}",
                (owner, now + lease_seconds, now, now, limit),
            ).fetchall()
        return sorted(rows)

    async def extend_leases(self, owner: str, outbox_ids: Sequence[int], until: float) -> None:
        """Heartbeat for running commands."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE outbox SET lease_until = ? WHERE id = ? AND lease_owner = ?",
                [(until, i, owner) for i in outbox_ids],
            )

    async def release(self, outbox_ids: Sequence[int], timer_ids: Sequence[int]) -> None:
        """Hand leased work back."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE id = ?",
                [(i,) for i in outbox_ids],
            )
            db.executemany(
                "UPDATE timers SET lease_owner = NULL, lease_until = NULL WHERE id = ?",
                [(i,) for i in timer_ids],
            )

    async def next_timer_due(self) -> float | None:
        """Earliest pending timer."""
        with _translated(self.path):
            (due,) = self._db.execute("SELECT MIN(due_at) FROM timers").fetchone()
        return None if due is None else float(due)

    async def pending_commands(self) -> int:
        """Commands in the outbox, leased or not."""
        with _translated(self.path):
            (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)

    async def state_counts(self, workflow: str | None = None) -> list[StateCount]:
        """Grouped from the items_by_state index."""
        with _translated(self.path):
            rows = self._db.execute(
                "SELECT workflow, version, state, status, COUNT(*), MIN(entered_at) FROM items "
                + ("WHERE workflow = ? " if workflow else "")
                + "GROUP BY workflow, version, state, status ORDER BY workflow, version, state",
                (workflow,) if workflow else (),
            ).fetchall()
        return [StateCount(w, v, s, ItemStatus(st), c, e) for w, v, s, st, c, e in rows]

    async def list_items(
        self,
        *,
        workflow: str | None = None,
        state: str | None = None,
        status: ItemStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Item]:
        """Filtered items, longest in their state first."""
        filters = {"workflow": workflow, "state": state, "status": status}
        used = {k: v for k, v in filters.items() if v is not None}
        where = " AND ".join(f"{k} = ?" for k in used) or "1"
        with _translated(self.path):
            rows = self._db.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE {where} "
                "ORDER BY entered_at, id LIMIT ? OFFSET ?",
                (*used.values(), limit, offset),
            ).fetchall()
        return [_item(row, {}) for row in rows]

    async def history(self, workflow: str | None, key: str) -> list[HistoryRecord]:
        """Audit rows of one item, by seq."""
        item = await self.get_item(workflow, key)
        with _translated(self.path):
            rows = self._db.execute(
                "SELECT seq, at, from_state, to_state, event, detail FROM history "
                "WHERE item_id = (SELECT id FROM items WHERE workflow = ? AND key = ?) "
                "ORDER BY seq",
                (item.workflow, item.key),
            ).fetchall()
        return [codec.decode_history(*row) for row in rows]

    async def costs(self, workflow: str | None = None) -> list[CostRow]:
        """Sum the usage recorded in audit rows; a cost stays None when no row had a price."""
        with _translated(self.path):
            rows = self._db.execute(
                "SELECT i.workflow, h.from_state, json_extract(h.detail, '$.usage.agent'), "
                "json_extract(h.detail, '$.usage.model'), COUNT(*), "
                "TOTAL(json_extract(h.detail, '$.usage.input_tokens')), "
                "TOTAL(json_extract(h.detail, '$.usage.output_tokens')), "
                "SUM(json_extract(h.detail, '$.usage.cost')) "
                "FROM history h JOIN items i ON i.id = h.item_id "
                "WHERE json_extract(h.detail, '$.usage') IS NOT NULL"
                + (" AND i.workflow = ?" if workflow else "")
                + " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
                (workflow,) if workflow else (),
            ).fetchall()
        return [
            CostRow(w, s or "", a or "", m or "", n, int(i), int(o), c)
            for w, s, a, m, n, i, o, c in rows
        ]

    async def conversations(self, workflow: str, key: str) -> dict[str, str]:
        """Conversations of one item by agent."""
        with _translated(self.path):
            rows = self._db.execute(
                "SELECT agent, messages FROM conversations WHERE item_id = "
                "(SELECT id FROM items WHERE workflow = ? AND key = ?)",
                (workflow, key),
            ).fetchall()
        return dict(rows)

    async def save_conversation(self, workflow: str, key: str, agent: str, messages: str) -> None:
        """Upsert one agent's conversation with one item."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO conversations (item_id, agent, messages, updated_at) "
                "SELECT id, ?, ?, strftime('%s','now') FROM items WHERE workflow = ? AND key = ? "
                "ON CONFLICT (item_id, agent) DO UPDATE SET messages = excluded.messages, "
                "updated_at = excluded.updated_at",
                (agent, messages, workflow, key),
            )

    async def cached_response(self, cache_key: str) -> str | None:
        """A cached model response."""
        with _translated(self.path):
            row = self._db.execute(
                "SELECT response FROM response_cache WHERE cache_key = ?", (cache_key,)
            ).fetchone()
        return None if row is None else str(row[0])

    async def cache_response(self, cache_key: str, response: str) -> None:
        """Store a model response for re-runs."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO response_cache (cache_key, response, created_at) "
                "VALUES (?, ?, strftime('%s','now')) ON CONFLICT (cache_key) DO NOTHING",
                (cache_key, response),
            )

    async def close(self) -> None:
        """Close the connection."""
        self._db.close()


def _select_by_refs(
    db: sqlite3.Connection, columns: str, refs: Sequence[tuple[str, str]]
) -> list[tuple[Any, ...]]:
    """Item rows by (workflow, key), one index lookup per ref.

    The refs drive a CROSS JOIN; a row-value ``IN (VALUES ...)`` made SQLite scan the whole
    (workflow, key) index on every call.
    """
    return db.execute(
        "WITH refs (ref_workflow, ref_key) AS "
        f"(VALUES {', '.join('(?, ?)' for _ in refs)}) "
        f"SELECT {columns} FROM refs CROSS JOIN items "
        "ON workflow = ref_workflow AND key = ref_key",
        [part for ref in refs for part in ref],
    ).fetchall()


def _item_values(item: Item) -> tuple[Any, ...]:
    """The columns a step changes, in the order the INSERT and UPDATE statements name them."""
    return (
        item.state,
        item.status.value,
        item.entered_at,
        item.updated_at,
        item.seq,
        item.attempt,
        item.retrying,
        codec.dumps(item.visits),
        codec.encode_branches(item.branches),
    )


def _item(row: tuple[Any, ...], context: dict[str, Any]) -> Item:
    (
        _,
        workflow,
        version,
        key,
        state,
        status,
        entered,
        created,
        updated,
        seq,
        attempt,
        retrying,
        visits,
        branches,
    ) = row
    return Item(
        key=key,
        workflow=workflow,
        version=version,
        state=state,
        status=ItemStatus(status),
        entered_at=entered,
        created_at=created,
        updated_at=updated,
        seq=seq,
        attempt=attempt,
        retrying=bool(retrying),
        visits=json.loads(visits),
        branches=codec.decode_branches(branches),
        context=context,
    )


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """The one place sqlite3's exceptions become StoreError."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite error on {path}: {exc}") from exc
