"""Pruning finished items' record by age, written once for every dialect.

What a prune drops, per item that finished (done or cancelled) before a moment:

- ``outputs``: each audit row's output (``history.output``/``output_hash`` set NULL), the
  item's large payloads and its agents' conversations. The audit rows stay.
- ``history``: all of the above and the audit rows themselves, replaced by one audit row that
  says so (see below), and the workflow's per-minute flow figures from before the moment
  (but never those of the last day).
  The item row stays, with its key, final state and context, so starting the same key again
  is still a no-op, and its tasks stay.

A failed item is never finished: it waits for an operator with its whole record.

How it stays safe beside workers, redrives and other prunes: candidates are listed by a plain
read (``prune_candidates_txn``), a page at a time, on the (status, entered_at) index. Each page
is then pruned in one transaction (``prune_txn``) that first locks the items' rows (PostgreSQL:
``FOR UPDATE`` in id order, as commits lock them; SQLite: the write lock) and checks again,
under that lock, that each is still finished before the moment and still has something to
drop. An item redriven or moved after it was listed is no longer finished (or moved too
recently) and is left alone; a step of any item waits for the lock or goes first. Two prunes
at once prune each item once: the second finds nothing left.

Why a final audit row and not a marker elsewhere: ``history`` (the command line, the API, the
dashboard's timeline) shows the item's audit rows, so the row that replaces them is what
every reader shows without a change, in order, saying when the history was pruned, how many
rows of which dates went and by which rule. It takes the ``seq`` of the item's last step, the
one the item row carries, so the numbering stays dense at the end and a later redrive of the
item writes ``seq + 1`` as usual. A separate marker table would be a second thing every reader
had to know about, and an item's history reading as empty would look like a bug.

Bytes are the stored size of the text dropped (UTF-8, summed in SQL: ``Dialect.octets``), the
same figure on both stores; row overhead and indexes are not in it, and the one audit row a
history prune writes per item (about 300 bytes) is not subtracted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from statewise.engine.item import HistoryRecord, ItemStatus
from statewise.store import codec
from statewise.store.connection import Connection, Dialect, Row

JSON = Any
HISTORY_PRUNED = "history_pruned"
FLOWS_KEPT = 86_400.0
"""Seconds of per-minute flow figures a history prune never drops (a day)."""
_FINISHED = (ItemStatus.DONE.value, ItemStatus.CANCELLED.value)
_ITEM = "id, workflow, version, key, state, status, seq, created_at, updated_at"
# How an archive record names the item's columns after its id (``updated_at`` is when it
# finished: a finished item does not move).
_RECORD_FIELDS = (
    "workflow", "version", "key", "state", "status", "seq", "created_at", "finished_at",
)  # fmt: skip
# Something of the item ``i`` is left to drop, per kind of prune.
_HAS_OUTPUTS = (
    "(EXISTS (SELECT 1 FROM payloads p WHERE p.item_id = i.id) "
    "OR EXISTS (SELECT 1 FROM conversations c WHERE c.item_id = i.id) "
    "OR EXISTS (SELECT 1 FROM history h WHERE h.item_id = i.id "
    "AND (h.output IS NOT NULL OR h.output_hash IS NOT NULL)))"
)
# Every item that was never pruned has its `start` row, so this finds exactly the items with
# audit rows other than a prune's own.
_HAS_HISTORY = (
    f"EXISTS (SELECT 1 FROM history h WHERE h.item_id = i.id AND h.event <> '{HISTORY_PRUNED}')"
)
_WITH_OUTPUT = "(output IS NOT NULL OR output_hash IS NOT NULL)"

Cursor = tuple[str, float, int]
"""Where a listing of candidates stopped: (status, entered_at, id) of the last one."""

ArchiveSink = Callable[[list[dict[str, JSON]]], None]
"""Takes the records of a page's items before they are dropped, in the same transaction.

It must make them durable before it returns (write and fsync): if it raises, nothing of the
page is dropped. It may be called again for the same page when the store retries the
transaction, so an item may be archived twice, never not at all.
"""


class Prunable(StrEnum):
    """What a prune drops of a finished item (``history`` takes the outputs along)."""

    OUTPUTS = "outputs"
    HISTORY = "history"


@dataclass(frozen=True, slots=True)
class PruneRule:
    """Drop ``what`` of the items of ``workflow`` that finished before ``finished_before``.

    ``reason`` names the rule for the audit row a history prune leaves (``retention policy
    history: 365d``). ``finished_since`` leaves out the items that finished earlier: those a
    history rule of the same run covers, so a dry run does not count them twice.
    """

    workflow: str
    what: Prunable
    finished_before: float
    reason: str
    finished_since: float | None = None

    def window(self, column: str) -> tuple[str, list[float]]:
        """The SQL condition on ``column`` (a finish time) and its parameters."""
        if self.finished_since is None:
            return f"{column} < ?", [self.finished_before]
        return f"{column} < ? AND {column} >= ?", [self.finished_before, self.finished_since]


@dataclass(frozen=True, slots=True)
class PruneFigures:
    """What a prune dropped (or, dry, would drop): items, rows of each kind, and bytes."""

    items: int = 0
    history_rows: int = 0
    outputs: int = 0
    payloads: int = 0
    conversations: int = 0
    bytes: int = 0

    def __add__(self, other: PruneFigures) -> PruneFigures:
        return PruneFigures(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(PruneFigures))
        )


def prune_candidates_txn(
    db: Connection, rule: PruneRule, after: Cursor | None, limit: int
) -> tuple[list[int], Cursor | None]:
    """Up to ``limit`` ids of items ``rule`` has something to drop of, after ``after``.

    Keyset pages on the (status, entered_at) index: an item's ``entered_at`` is never later
    than its ``updated_at``, so it bounds the scan to the items that finished early enough.
    """
    found: list[int] = []
    cursor = after
    for status in _FINISHED[_FINISHED.index(after[0]) if after else 0 :]:
        keyset: list[Any] = []
        where = ""
        if cursor is not None and cursor[0] == status:
            where = " AND (i.entered_at > ? OR (i.entered_at = ? AND i.id > ?))"
            keyset = [cursor[1], cursor[1], cursor[2]]
        finished, bounds = rule.window("i.updated_at")
        rows = db.execute(
            "SELECT i.id, i.entered_at FROM items i WHERE i.status = ? AND i.entered_at < ? "
            f"AND {finished} AND i.workflow = ?{where} AND {_left(rule.what)} "
            "ORDER BY i.entered_at, i.id LIMIT ?",
            (status, rule.finished_before, *bounds, rule.workflow, *keyset, limit - len(found)),
        )
        found += [row[0] for row in rows]
        if rows:
            cursor = (status, float(rows[-1][1]), int(rows[-1][0]))
        if len(found) >= limit:
            break
    return found, cursor


def prune_txn(
    db: Connection,
    dialect: Dialect,
    rule: PruneRule,
    item_ids: Sequence[int],
    *,
    now: float,
    actor: str,
    apply: bool,
    archive: ArchiveSink | None = None,
) -> PruneFigures:
    """Measure, and with ``apply`` archive and drop, what ``rule`` prunes of these items.

    Only items that are, read here (under lock with ``apply``), still finished before the
    rule's moment and still hold something to drop are touched; see the module docstring.
    """
    if apply and rule.what is Prunable.HISTORY:
        _drop_old_flows_txn(db, rule, now)
    if not item_ids:
        return PruneFigures()
    items = _with_something_left_txn(
        db, dialect, rule.what, _finished_txn(db, dialect, rule, item_ids, lock=apply)
    )
    if not items:
        return PruneFigures()
    ids = [row[0] for row in items]
    figures, spans = _measure_txn(db, dialect, rule.what, ids)
    if apply:
        if archive is not None:
            archive(_records_txn(db, dialect, items, rule, now))
        _drop_txn(db, dialect, rule, items, spans, now, actor)
    return figures


def _drop_old_flows_txn(db: Connection, rule: PruneRule, now: float) -> None:
    """Drop the workflow's per-minute flow figures (``store.tally``) from before the moment.

    They describe steps whose audit rows a history rule drops, and nothing else ever removes
    them (one row per state, busy minute and writer's shard). The last ``FLOWS_KEPT`` seconds
    always stay, however short the rule: the board and the alert rules read the last hour.
    """
    before = min(rule.finished_before, now - FLOWS_KEPT)
    db.execute(
        "DELETE FROM flows_by_minute WHERE workflow = ? AND minute < ?",
        (rule.workflow, int(before // 60)),
    )


def _left(what: Prunable) -> str:
    return _HAS_HISTORY if what is Prunable.HISTORY else _HAS_OUTPUTS


def _finished_txn(
    db: Connection, dialect: Dialect, rule: PruneRule, item_ids: Sequence[int], *, lock: bool
) -> list[Row]:
    """The items still finished before the rule's moment, locked in id order if ``lock``."""
    condition, params = dialect.any_of("id", sorted(set(item_ids)))
    finished, bounds = rule.window("updated_at")
    return db.execute(
        f"SELECT {_ITEM} FROM items WHERE {condition} AND workflow = ? AND status IN (?, ?) "
        f"AND {finished} ORDER BY id{dialect.lock_rows if lock else ''}",
        [*params, rule.workflow, *_FINISHED, *bounds],
    )


def _with_something_left_txn(
    db: Connection, dialect: Dialect, what: Prunable, items: list[Row]
) -> list[Row]:
    """The items that still hold something to drop, read after their lock was taken.

    A statement of its own: on PostgreSQL it sees what a prune that held the lock before us
    committed, where the locking statement's own snapshot would not.
    """
    if not items:
        return []
    condition, params = dialect.any_of("i.id", [row[0] for row in items])
    rows = db.execute(f"SELECT i.id FROM items i WHERE {condition} AND {_left(what)}", params)
    left = {row[0] for row in rows}
    return [row for row in items if row[0] in left]


@dataclass(frozen=True, slots=True)
class _Span:
    """An item's audit rows about to be pruned: how many, and the first and last time."""

    rows: int
    first: float
    last: float


def _measure_txn(
    db: Connection, dialect: Dialect, what: Prunable, ids: list[int]
) -> tuple[PruneFigures, dict[int, _Span]]:
    """Rows and bytes the prune drops, and (for a history prune) each item's audit span."""
    size = dialect.octets
    condition, params = dialect.any_of("item_id", ids)

    def counted(table: str, measure: str, where: str = "") -> tuple[int, int]:
        ((count, total),) = db.execute(
            f"SELECT COUNT(*), SUM({measure}) FROM {table} WHERE {condition}{where}", params
        )
        return int(count), int(total or 0)

    payloads = counted("payloads", f"{size('hash')} + {size('body')}")
    talks = counted("conversations", f"{size('agent')} + {size('messages')}")
    output_bytes = f"COALESCE({size('output')}, 0) + COALESCE({size('output_hash')}, 0)"
    if what is Prunable.OUTPUTS:
        outputs, history_bytes = counted("history", output_bytes, f" AND {_WITH_OUTPUT}")
        spans: dict[int, _Span] = {}
        rows = 0
    else:
        row_bytes = (
            f"{size('event')} + {size('to_state')} + COALESCE({size('from_state')}, 0) "
            f"+ {size('detail')} + {output_bytes}"
        )
        found = db.execute(
            f"SELECT item_id, COUNT(*), MIN(at), MAX(at), "
            f"SUM(CASE WHEN {_WITH_OUTPUT} THEN 1 ELSE 0 END), SUM({row_bytes}) "
            f"FROM history WHERE {condition} GROUP BY item_id",
            params,
        )
        spans = {item: _Span(int(n), float(a), float(b)) for item, n, a, b, _, _ in found}
        rows = sum(span.rows for span in spans.values())
        outputs = sum(int(with_output) for *_, with_output, _ in found)
        history_bytes = sum(int(total or 0) for *_, total in found)
    figures = PruneFigures(
        items=len(ids),
        history_rows=rows,
        outputs=outputs,
        payloads=payloads[0],
        conversations=talks[0],
        bytes=history_bytes + payloads[1] + talks[1],
    )
    return figures, spans


def _records_txn(
    db: Connection, dialect: Dialect, items: list[Row], rule: PruneRule, now: float
) -> list[dict[str, JSON]]:
    """One archive record per item: what it is, and everything the prune is about to drop.

    Audit rows come with their outputs (a large one read from its payload) as stored, and
    conversations as stored; for an outputs prune the rows themselves stay in the store too.
    """
    ids = [row[0] for row in items]
    condition, params = dialect.any_of("item_id", ids)
    bodies = {
        (item, digest): body
        for item, digest, body in db.execute(
            f"SELECT item_id, hash, body FROM payloads WHERE {condition}", params
        )
    }
    history: dict[int, list[dict[str, JSON]]] = {item: [] for item in ids}
    for item, seq, at, origin, target, event, detail, output, digest in db.execute(
        "SELECT item_id, seq, at, from_state, to_state, event, detail, output, output_hash "
        f"FROM history WHERE {condition} ORDER BY item_id, seq",
        params,
    ):
        row: dict[str, JSON] = {
            "seq": seq, "at": at, "from_state": origin, "to_state": target, "event": event,
            "detail": json.loads(detail),
        }  # fmt: skip
        if output is not None:
            row["output"] = json.loads(output)
        if digest is not None:
            row["output_hash"] = digest
            body = bodies.get((item, digest))
            row["output"] = None if body is None else json.loads(body)
        history[item].append(row)
    talks: dict[int, dict[str, str]] = {item: {} for item in ids}
    for item, agent, messages in db.execute(
        f"SELECT item_id, agent, messages FROM conversations WHERE {condition}", params
    ):
        talks[item][agent] = messages
    return [
        {
            **dict(zip(_RECORD_FIELDS, fields, strict=True)),
            "pruned": rule.what.value,
            "pruned_at": now,
            "rule": rule.reason,
            "history": history[item],
            "conversations": talks[item],
        }
        for item, *fields in items
    ]


def _drop_txn(
    db: Connection,
    dialect: Dialect,
    rule: PruneRule,
    items: list[Row],
    spans: dict[int, _Span],
    now: float,
    actor: str,
) -> None:
    """Drop what the rule prunes of the (locked, re-checked) items."""
    condition, params = dialect.any_of("item_id", [row[0] for row in items])
    db.execute(f"DELETE FROM payloads WHERE {condition}", params)
    db.execute(f"DELETE FROM conversations WHERE {condition}", params)
    if rule.what is Prunable.OUTPUTS:
        db.execute(
            f"UPDATE history SET output = NULL, output_hash = NULL "
            f"WHERE {condition} AND {_WITH_OUTPUT}",
            params,
        )
        return
    db.execute(f"DELETE FROM history WHERE {condition}", params)
    db.executemany(
        "INSERT INTO history (item_id, seq, at, from_state, to_state, event, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            _pruned_row(item, seq, state, spans[item], rule, now, actor)
            for item, _, _, _, state, _, seq, _, _ in items
        ],
    )


def _pruned_row(
    item_id: int, seq: int, state: str, span: _Span, rule: PruneRule, now: float, actor: str
) -> tuple[Any, ...]:
    """The audit row that stands for an item's pruned history (see the module docstring)."""
    note = (
        f"history pruned {_day(now, '%Y-%m-%d %H:%M')} UTC by {rule.reason}: {span.rows} "
        f"audit row(s) of {_day(span.first)} to {_day(span.last)} removed with their outputs "
        "and conversations; the item keeps its key, final state and context"
    )
    record = HistoryRecord(
        seq, now, state, state, HISTORY_PRUNED, "retention", actor=actor, note=note
    )
    return (item_id, seq, now, state, state, HISTORY_PRUNED, codec.encode_detail(record))


def _day(at: float, pattern: str = "%Y-%m-%d") -> str:
    return time.strftime(pattern, time.gmtime(at))
