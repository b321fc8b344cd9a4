"""The raw psycopg baseline: the rows a statewise step writes, written by hand, as fast as it can.

Per transition it writes what ``src/statewise/store/commit.py`` writes for a command stage of
the benchmark workflow, into the very tables statewise created (same columns, same indexes):

- the item row's step columns (state, status, times, seq, attempt, visits), fenced on the
  ``seq`` it had (``WHERE seq = previous``);
- the stage's result as one context row (upsert on (item, path));
- one history row with a detail JSON of the same shape;
- the consumed outbox row deleted, and the next stage's outbox row inserted, leased to itself
  (so, like a statewise worker, it never claims its own follow-up work).

What it leaves out is the engine: no step function, no read of the item (the stage and seq come
from the outbox payload), no fence beyond the ``seq`` and lease conditions in the writes, no
``NOTIFY``. Like a statewise worker it keeps ``concurrency`` commands in flight, claims with
``FOR UPDATE SKIP LOCKED`` and commits every finished result in one transaction, one
transaction at a time; each transaction is one array statement per table in pipeline mode.

Run as a process: ``python bench/rawpg.py DSN SCHEMA CONCURRENCY LATENCY APPLICATION_NAME``;
it prints ``ready`` and works until SIGTERM. ``seed`` starts items the way
``ItemWriter.start`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from pgcommands.stages import FINAL, STAGES, VERSION, WORKFLOW, result, start_data

START_BATCH = 256
_IDLE_POLL = 0.01
_LEASE = 30.0
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode
_STAGE_OF = {stage: index for index, stage in enumerate(STAGES)}

_SEED = (
    "WITH new AS (INSERT INTO items (workflow, version, key, state, status, entered_at, "
    "created_at, updated_at, seq, attempt, retrying, visits, branches) "
    "SELECT %s, %s, k, %s, 'active', %s, %s, %s, 1, 0, false, %s, NULL "
    "FROM unnest(%s::text[]) AS k RETURNING id, key), "
    "data AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS d (key, title)), "
    "context_rows AS (INSERT INTO context (item_id, path, value) "
    "SELECT new.id, 'title', data.title FROM new JOIN data USING (key)), "
    "history_rows AS (INSERT INTO history (item_id, seq, at, from_state, to_state, event, detail) "
    "SELECT id, 1, %s, NULL, %s, 'start', %s FROM new) "
    "INSERT INTO outbox (item_id, effect, available_at) SELECT id, %s, %s FROM new"
)
_CLAIM = (
    "UPDATE outbox o SET lease_owner = %s, lease_until = %s FROM (SELECT id FROM outbox "
    "WHERE lease_owner IS NULL AND available_at <= %s ORDER BY available_at, id LIMIT %s "
    "FOR UPDATE SKIP LOCKED) AS picked, items i WHERE o.id = picked.id AND i.id = o.item_id "
    "RETURNING o.id, o.item_id, i.key, o.effect"
)
_UPDATE_ITEMS = (
    "UPDATE items i SET state = u.state, status = u.status, entered_at = u.at, "
    "updated_at = u.at, seq = u.seq, attempt = 0, retrying = false, visits = u.visits, "
    "branches = NULL FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], "
    "%s::text[], %s::float8[], %s::text[]) AS u (id, old_seq, seq, state, status, at, visits) "
    "WHERE i.id = u.id AND i.seq = u.old_seq"
)
_UPSERT_CONTEXT = (
    "INSERT INTO context (item_id, path, value) "
    "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[]) "
    "ON CONFLICT (item_id, path) DO UPDATE SET value = excluded.value"
)
_INSERT_HISTORY = (
    "INSERT INTO history (item_id, seq, at, from_state, to_state, event, detail) "
    "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::float8[], %s::text[], %s::text[], "
    "%s::text[], %s::text[])"
)
_DELETE_CONSUMED = "DELETE FROM outbox WHERE id = ANY(%s) AND lease_owner = %s"
_QUEUE_NEXT = (
    "INSERT INTO outbox (item_id, effect, available_at, lease_owner, lease_until) "
    "SELECT i, e, %s, %s, %s FROM unnest(%s::bigint[], %s::text[]) AS n (i, e) "
    "RETURNING id, item_id, effect"
)


def effect_payload(stage: str) -> str:
    """The outbox payload of a stage's first attempt, shaped like statewise's RunCommand."""
    return _DUMPS(
        {
            "command": stage,
            "state": stage,
            "visit": 1,
            "attempt": 1,
            "timeout": None,
            "branch": None,
            "input": None,
            "kind": "run_command",
        }
    )


_PAYLOADS = {stage: effect_payload(stage) for stage in STAGES}
_VISITS = [_DUMPS({s: 1 for s in (*STAGES, FINAL)[: n + 1]}) for n in range(len(STAGES) + 1)]


def seed(conn: psycopg.Connection[Any], count: int) -> None:
    """Start items ``item-0`` .. ``item-{count-1}``: item, context, history and outbox rows.

    One transaction per ``START_BATCH`` items, like ``ItemWriter.start``; each is one statement.
    """
    first = STAGES[0]
    for low in range(0, count, START_BATCH):
        numbers = range(low, min(low + START_BATCH, count))
        keys = [f"item-{n}" for n in numbers]
        titles = [_DUMPS(start_data(n)["title"]) for n in numbers]
        now = time.time()
        with conn.transaction():
            conn.execute(
                _SEED,
                (
                    *(WORKFLOW, VERSION, first, now, now, now, _VISITS[0], keys),
                    *(keys, titles),
                    *(now, first, '{"event_kind":"start"}'),
                    *(_PAYLOADS[first], now),
                ),
            )


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row this process holds: which item (id and key), which stage."""

    outbox_id: int
    item_id: int
    key: str
    stage: int


@dataclass(frozen=True, slots=True)
class Finished:
    """A command that ran: its outbox row, its result and how long it took."""

    claimed: Claimed
    value: str
    duration: float


def _claimed(rows: list[tuple[int, int, str, str]]) -> list[Claimed]:
    """Outbox rows with their items' keys; the stage is read from the payload."""
    return [
        Claimed(row_id, item_id, key, _STAGE_OF[json.loads(effect)["command"]])
        for row_id, item_id, key, effect in rows
    ]


class RawWorker:
    """One process's loop: claim, run the commands, commit what finished, repeat."""

    def __init__(
        self, conn: psycopg.AsyncConnection[Any], concurrency: int, latency: float
    ) -> None:
        self.conn = conn
        self.concurrency = concurrency
        self.latency = latency
        self.owner = f"raw:{os.getpid()}"
        self.finished: list[Finished] = []
        self.in_flight = 0
        self.wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set."""
        ready: list[Claimed] = []
        while not stop.is_set():
            room = self.concurrency - self.in_flight - len(ready)
            if room > 0:
                ready += await self._claim(room)
            for claimed in ready:
                self._perform(claimed)
            ready = []
            if self.finished:
                batch, self.finished = self.finished, []
                ready = await self._commit(batch)
                continue
            self.wake.clear()
            timeout = None if self.in_flight else _IDLE_POLL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)

    def _perform(self, claimed: Claimed) -> None:
        """Run a command: inline when instant, else as a task sleeping the latency."""
        if self.latency <= 0:
            self.finished.append(self._result(claimed, time.perf_counter()))
            return
        self.in_flight += 1
        asyncio.get_running_loop().create_task(self._sleep_then_finish(claimed))

    async def _sleep_then_finish(self, claimed: Claimed) -> None:
        began = time.perf_counter()
        await asyncio.sleep(self.latency)
        self.in_flight -= 1
        self.finished.append(self._result(claimed, began))
        self.wake.set()

    def _result(self, claimed: Claimed, began: float) -> Finished:
        value = _DUMPS(result(STAGES[claimed.stage], claimed.key))
        return Finished(claimed, value, time.perf_counter() - began)

    async def _claim(self, room: int) -> list[Claimed]:
        now = time.time()
        cursor = await self.conn.execute(_CLAIM, (self.owner, now + _LEASE, now, room))
        return _claimed(await cursor.fetchall())

    async def _commit(self, batch: list[Finished]) -> list[Claimed]:
        """Write every finished transition in one transaction; the next commands come back."""
        now = time.time()
        rows = _Rows(batch, now)
        async with self.conn.transaction():
            async with self.conn.pipeline():
                updated = await self.conn.execute(_UPDATE_ITEMS, rows.items)
                await self.conn.execute(_UPSERT_CONTEXT, rows.context)
                await self.conn.execute(_INSERT_HISTORY, rows.history)
                deleted = await self.conn.execute(_DELETE_CONSUMED, (rows.consumed, self.owner))
                queued = await self.conn.execute(
                    _QUEUE_NEXT, (now, self.owner, now + _LEASE, *rows.queued)
                )
            if updated.rowcount != len(batch) or deleted.rowcount != len(batch):
                raise RuntimeError(  # rolls the transaction back: the baseline is broken
                    f"fence failed: {updated.rowcount} items and {deleted.rowcount} outbox rows "
                    f"for {len(batch)} transitions"
                )
            keys = {f.claimed.item_id: f.claimed.key for f in batch}
            queued_rows = await queued.fetchall()
        next_commands = _claimed([(i, item, keys[item], e) for i, item, e in queued_rows])
        return next_commands


class _Rows:
    """One commit's parameters: a column array per field, per statement."""

    def __init__(self, batch: list[Finished], now: float) -> None:
        ids = [f.claimed.item_id for f in batch]
        stages = [f.claimed.stage for f in batch]
        to_states = [(*STAGES, FINAL)[s + 1] for s in stages]
        self.items = (
            ids,
            [s + 1 for s in stages],
            [s + 2 for s in stages],
            to_states,
            ["active" if s + 1 < len(STAGES) else "done" for s in stages],
            [now] * len(batch),
            [_VISITS[s + 1] for s in stages],
        )
        self.context = (ids, [STAGES[s] for s in stages], [f.value for f in batch])
        self.history = (
            ids,
            [s + 2 for s in stages],
            [now] * len(batch),
            [STAGES[s] for s in stages],
            to_states,
            ["done"] * len(batch),
            [_detail(STAGES[f.claimed.stage], f.duration) for f in batch],
        )
        self.consumed = [f.claimed.outbox_id for f in batch]
        follow = [(i, s + 1) for i, s in zip(ids, stages, strict=True) if s + 1 < len(STAGES)]
        self.queued = ([i for i, _ in follow], [_PAYLOADS[STAGES[s]] for _, s in follow])


def _detail(stage: str, duration: float) -> str:
    """The history detail statewise writes for a command's result."""
    return _DUMPS(
        {
            "event_kind": "command",
            "transition": 0,
            "command": stage,
            "attempt": 1,
            "duration": duration,
        }
    )


async def serve(dsn: str, schema: str, concurrency: int, latency: float, tag: str) -> None:
    """Connect (as ``application_name`` ``tag``), say ``ready``, work until SIGTERM."""
    conn = await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, options=f"-c search_path={schema}", application_name=tag
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    try:
        await RawWorker(conn, concurrency, latency).run(stop)
    finally:
        await conn.close()


if __name__ == "__main__":
    dsn, schema, concurrency, latency, tag = sys.argv[1:]
    asyncio.run(serve(dsn, schema, int(concurrency), float(latency), tag))
