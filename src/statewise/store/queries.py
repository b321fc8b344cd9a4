"""Reading items, their context, audit trail, costs and conversations, for every dialect."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from statewise.engine.builder import RESULT_IGNORED
from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.errors import NotFoundError
from statewise.store import codec
from statewise.store.base import (
    CostRow,
    ItemFilter,
    OverdueWork,
    PendingCommand,
    PendingTimer,
    PendingWork,
    StuckItem,
)
from statewise.store.connection import Connection, Dialect, Ref, Row

_LIVE = (ItemStatus.ACTIVE.value, ItemStatus.WAITING.value)


def get_item_txn(db: Connection, dialect: Dialect, workflow: str | None, key: str) -> Item:
    """One item with its context; ambiguous keys across workflows need ``workflow``."""
    rows = db.execute(
        f"SELECT {codec.ITEM_COLUMNS} FROM items WHERE key = ?"
        + (" AND workflow = ?" if workflow else ""),
        (key, workflow) if workflow else (key,),
    )
    if not rows:
        where = f" in workflow {workflow!r}" if workflow else ""
        raise NotFoundError(f"no item with key {key!r}{where}")
    if len(rows) > 1:
        names = ", ".join(sorted(r[1] for r in rows))
        raise NotFoundError(f"key {key!r} exists in several workflows ({names}); name one")
    return with_context_txn(db, dialect, rows)[0]


def get_items_txn(db: Connection, dialect: Dialect, refs: Sequence[Ref]) -> dict[Ref, Item]:
    """Items by (workflow, key), with context, in two queries."""
    refs = list(dict.fromkeys(refs))
    if not refs:
        return {}
    rows = dialect.select_items_txn(db, codec.ITEM_COLUMNS, refs)
    return {(i.workflow, i.key): i for i in with_context_txn(db, dialect, rows)}


def with_context_txn(db: Connection, dialect: Dialect, rows: list[Row]) -> list[Item]:
    """Decode item rows, loading the context of all of them in one query."""
    if not rows:
        return []
    by_item: dict[int, list[tuple[str, str]]] = {row[0]: [] for row in rows}
    condition, params = dialect.any_of("item_id", list(by_item))
    for item_id, path, value in db.execute(
        f"SELECT item_id, path, value FROM context WHERE {condition}", params
    ):
        by_item[item_id].append((path, value))
    return [codec.decode_item(row, codec.decode_context(by_item[row[0]])) for row in rows]


def list_items_txn(
    db: Connection,
    workflow: str | None,
    state: str | None,
    status: ItemStatus | None,
    limit: int,
    offset: int,
) -> list[Item]:
    """Filtered items without their context, longest in their state first."""
    filters = {"workflow": workflow, "state": state, "status": status}
    used = {k: v for k, v in filters.items() if v is not None}
    where = " AND ".join(f"{k} = ?" for k in used) or "1 = 1"
    rows = db.execute(
        f"SELECT {codec.ITEM_COLUMNS} FROM items WHERE {where} "
        "ORDER BY entered_at, id LIMIT ? OFFSET ?",
        (*used.values(), limit, offset),
    )
    return [codec.decode_item(row, {}) for row in rows]


def history_txn(
    db: Connection, dialect: Dialect, workflow: str | None, key: str
) -> list[HistoryRecord]:
    """The audit rows of one item, by seq, each with its output, inline or from ``payloads``."""
    item = get_item_txn(db, dialect, workflow, key)
    rows = db.execute(
        "SELECT h.seq, h.at, h.from_state, h.to_state, h.event, h.detail, "
        "COALESCE(h.output, p.body) FROM history h "
        "LEFT JOIN payloads p ON p.item_id = h.item_id AND p.hash = h.output_hash "
        "WHERE h.item_id = (SELECT id FROM items WHERE workflow = ? AND key = ?) ORDER BY h.seq",
        (item.workflow, item.key),
    )
    return [codec.decode_history(*row) for row in rows]


def failures_txn(
    db: Connection, dialect: Dialect, refs: Sequence[Ref]
) -> dict[Ref, dict[str, str]]:
    """Why each of these items failed: the ``error`` of its last row, late results aside.

    A failed item takes no step after the one that failed it but late results it ignores
    (rows ``result_ignored``), so its last other row is its failure (a defect, a quarantine).
    Items whose last row has no error are left out.
    """
    refs = list(dict.fromkeys(refs))
    if not refs:
        return {}
    found = {
        row[0]: (row[1], row[2]) for row in dialect.select_items_txn(db, "id, workflow, key", refs)
    }
    if not found:
        return {}
    condition, params = dialect.any_of("h.item_id", list(found))
    rows = db.execute(
        f"SELECT h.item_id, h.detail FROM history h WHERE {condition} AND h.seq = "
        "(SELECT MAX(l.seq) FROM history l WHERE l.item_id = h.item_id AND l.event <> ?)",
        [*params, RESULT_IGNORED],
    )
    errors = {item_id: json.loads(detail).get("error") for item_id, detail in rows}
    return {found[item_id]: error for item_id, error in errors.items() if error}


def costs_txn(db: Connection, dialect: Dialect, workflow: str | None) -> list[CostRow]:
    """Usage from the audit rows; a cost sums only priced calls and is None if none was."""
    text, number = dialect.json_text, dialect.json_number
    rows = db.execute(
        f"SELECT workflow, from_state, {text('u', 'agent')}, {text('u', 'model')}, COUNT(*), "
        f"COALESCE(SUM({number('u', 'input_tokens')}), 0), "
        f"COALESCE(SUM({number('u', 'output_tokens')}), 0), SUM({number('u', 'cost')}), "
        f"SUM(CASE WHEN {text('u', 'cost')} IS NULL THEN 1 ELSE 0 END), "
        f"COALESCE(SUM({number('u', 'latency')}), 0), "
        f"COALESCE(SUM({number('u', 'requests')}), 0) "
        f"FROM (SELECT i.workflow, h.from_state, {dialect.json_usage} AS u "
        "FROM history h JOIN items i ON i.id = h.item_id"
        + (" WHERE i.workflow = ?" if workflow else "")
        + ") usage_rows WHERE u IS NOT NULL GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        (workflow,) if workflow else (),
    )
    return [
        CostRow(w, s or "", a or "", m or "", n, int(i), int(o), c, int(u), float(t), int(r))
        for w, s, a, m, n, i, o, c, u, t, r in rows
    ]


def spending_items_txn(
    db: Connection, workflow: str | None, limit: int, after: int
) -> list[tuple[int, Item]]:
    """Items whose ``spent`` is set (with their row ids), a keyset page by id."""
    rows = db.execute(
        f"SELECT {codec.ITEM_COLUMNS} FROM items WHERE spent IS NOT NULL AND id > ?"
        + (" AND workflow = ?" if workflow else "")
        + " ORDER BY id LIMIT ?",
        (after, workflow, limit) if workflow else (after, limit),
    )
    return [(row[0], codec.decode_item(row, {})) for row in rows]


def conversations_txn(db: Connection, workflow: str, key: str) -> dict[str, str]:
    """Every agent's stored conversation with one item."""
    rows = db.execute(
        "SELECT agent, messages FROM conversations WHERE item_id = "
        "(SELECT id FROM items WHERE workflow = ? AND key = ?)",
        (workflow, key),
    )
    return {agent: messages for agent, messages in rows}


def unknown_version_items_txn(db: Connection, dialect: Dialect, limit: int) -> list[Item]:
    """Live items whose (workflow, version) has no stored definition."""
    rows = db.execute(
        f"SELECT {codec.ITEM_COLUMNS} FROM items i WHERE status IN (?, ?) AND NOT EXISTS "
        "(SELECT 1 FROM workflows w WHERE w.name = i.workflow AND w.version = i.version) "
        "ORDER BY id LIMIT ?",
        (*_LIVE, limit),
    )
    return with_context_txn(db, dialect, rows)


def stuck_items_txn(db: Connection) -> list[StuckItem]:
    """Active items with neither a queued command nor a timer."""
    rows = db.execute(
        "SELECT workflow, key, state, seq FROM items i WHERE status = ? "
        "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.item_id = i.id) "
        "AND NOT EXISTS (SELECT 1 FROM timers t WHERE t.item_id = i.id) ORDER BY workflow, key",
        (ItemStatus.ACTIVE.value,),
    )
    return [StuckItem(w, k, s, q) for w, k, s, q in rows]


def overdue_work_txn(db: Connection, due_before: float) -> OverdueWork:
    """Commands and timers due before ``due_before`` and not held by a live lease since."""
    found = [
        db.execute(
            f"SELECT COUNT(*), MIN({due}) FROM {table} WHERE {due} < ? "
            "AND (lease_owner IS NULL OR lease_until < ?)",
            (due_before, due_before),
        )[0]
        for table, due in (("outbox", "available_at"), ("timers", "due_at"))
    ]
    (commands, oldest_command), (timers, oldest_timer) = found
    oldest = [float(at) for at in (oldest_command, oldest_timer) if at is not None]
    return OverdueWork(int(commands), int(timers), min(oldest, default=None))


def failed_since_txn(db: Connection, since: float) -> int:
    """Items failed by a change at or after ``since`` (through the status index)."""
    ((count,),) = db.execute(
        "SELECT COUNT(*) FROM items WHERE status = ? AND updated_at >= ?",
        (ItemStatus.FAILED.value, since),
    )
    return int(count)


def next_timer_due_txn(db: Connection) -> float | None:
    """When the earliest timer comes due."""
    ((due,),) = db.execute("SELECT MIN(due_at) FROM timers")
    return None if due is None else float(due)


def pending_commands_txn(db: Connection, versions: Sequence[tuple[str, int]] | None) -> int:
    """Commands queued or running, of items on ``versions`` when given."""
    if versions is None:
        ((count,),) = db.execute("SELECT COUNT(*) FROM outbox")
        return int(count)
    if not versions:
        return 0
    held = " OR ".join("(i.workflow = ? AND i.version = ?)" for _ in versions)
    ((count,),) = db.execute(
        f"SELECT COUNT(*) FROM outbox o JOIN items i ON i.id = o.item_id WHERE {held}",
        [part for version in versions for part in version],
    )
    return int(count)


def cached_response_txn(db: Connection, cache_key: str) -> str | None:
    """A cached model response."""
    rows = db.execute("SELECT response FROM response_cache WHERE cache_key = ?", (cache_key,))
    return str(rows[0][0]) if rows else None


def cache_response_txn(db: Connection, cache_key: str, response: str, now: float) -> None:
    """Keep the first response stored under a key."""
    db.execute(
        "INSERT INTO response_cache (cache_key, response, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT (cache_key) DO NOTHING",
        (cache_key, response, now),
    )


def extend_leases_txn(db: Connection, owner: str, outbox_ids: Sequence[int], until: float) -> None:
    """Heartbeat: push the lease of running commands still held by ``owner``."""
    db.executemany(
        "UPDATE outbox SET lease_until = ? WHERE id = ? AND lease_owner = ?",
        [(until, i, owner) for i in sorted(outbox_ids)],
    )


def release_txn(db: Connection, outbox_ids: Sequence[int], timer_ids: Sequence[int]) -> None:
    """Hand leased work back at once."""
    for table, ids in (("outbox", outbox_ids), ("timers", timer_ids)):
        db.executemany(
            f"UPDATE {table} SET lease_owner = NULL, lease_until = NULL WHERE id = ?",
            [(i,) for i in sorted(ids)],
        )


def _item_filter(dialect: Dialect, where: ItemFilter) -> tuple[str, list[Any]]:
    """The SQL condition and parameters of an item filter (keys searched as ``contains``)."""
    parts: list[str] = []
    params: list[Any] = []
    columns = (("workflow", where.workflow), ("version", where.version), ("state", where.state))
    for column, value in columns:
        if value is not None:
            parts.append(f"{column} = ?")
            params.append(value)
    if where.status is not None:
        parts.append("status = ?")
        params.append(where.status.value)
    if where.entered_before is not None:
        parts.append("entered_at < ?")
        params.append(where.entered_before)
    if where.key_contains:
        parts.append(dialect.contains("key"))
        params.append(where.key_contains)
    return " AND ".join(parts) or "1 = 1", params


def count_items_txn(db: Connection, dialect: Dialect, where: ItemFilter) -> int:
    """How many items match."""
    condition, params = _item_filter(dialect, where)
    return int(db.execute(f"SELECT COUNT(*) FROM items WHERE {condition}", params)[0][0])


def find_items_txn(
    db: Connection,
    dialect: Dialect,
    where: ItemFilter,
    limit: int,
    after: tuple[float, int] | None,
) -> list[tuple[Item, tuple[float, int]]]:
    """A keyset page of matching items, longest in their state first."""
    condition, params = _item_filter(dialect, where)
    if after is not None:
        condition += " AND (entered_at > ? OR (entered_at = ? AND id > ?))"
        params += [after[0], after[0], after[1]]
    rows = db.execute(
        f"SELECT {codec.ITEM_COLUMNS} FROM items WHERE {condition} ORDER BY entered_at, id LIMIT ?",
        [*params, limit],
    )
    return [(codec.decode_item(row, {}), (row[6], row[0])) for row in rows]


def pending_work_txn(db: Connection, dialect: Dialect, workflow: str, key: str) -> PendingWork:
    """The commands and timers one item has queued."""
    item = get_item_txn(db, dialect, workflow, key)
    item_id = "(SELECT id FROM items WHERE workflow = ? AND key = ?)"
    commands = db.execute(
        "SELECT id, effect, available_at, lease_owner, lease_until FROM outbox "
        f"WHERE item_id = {item_id} ORDER BY id",
        (item.workflow, item.key),
    )
    timers = db.execute(
        f"SELECT id, event, due_at FROM timers WHERE item_id = {item_id} ORDER BY due_at, id",
        (item.workflow, item.key),
    )
    return PendingWork(
        tuple(
            PendingCommand(row_id, codec.decode_command(effect), available, owner, until)
            for row_id, effect, available, owner, until in commands
        ),
        tuple(
            PendingTimer(row_id, codec.decode_timer(event), due) for row_id, event, due in timers
        ),
    )
