"""Committing steps, written once for every dialect: the fence, then the writes.

Each step of a batch passes the fence on its own (the rules are in ``store.base``):

1. LOST: committed with a lease, it consumes a work row that no longer exists or is leased to
   someone else.
2. DUPLICATE: a new item whose (workflow, key) exists; STALE: a step computed from an item
   whose ``seq`` is not the one read (under lock) in this transaction. IGNORED steps are fenced
   too: a stale copy's judgement never deletes a work row.
3. REJECTED: a step whose rows cannot be encoded; it alone is refused.

The steps that pass are folded into one ``WritePlan`` and written with one statement per table;
the plan's ``Tally`` (the counts and flow figures the steps change, ``store.tally``) is written
last, in the same transaction, from where each item stood when the fence read it under lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from statewise.engine.item import Item
from statewise.engine.result import Outcome
from statewise.store import codec
from statewise.store.base import (
    ClaimedCommand,
    CommitOutcome,
    CommitStatus,
    Lease,
    StepCommit,
    TaskGuard,
)
from statewise.store.batch import EncodedStep, WritePlan, encode_step
from statewise.store.connection import Connection, Dialect, Ref
from statewise.store.tally import write_tally_txn

_UNENCODABLE = (TypeError, ValueError, RecursionError)
_INSERT_ITEM = (
    f"INSERT INTO items ({', '.join(codec.STEP_COLUMNS)}, workflow, key, created_at) "
    f"VALUES ({', '.join('?' * (len(codec.STEP_COLUMNS) + 3))}) "
    "ON CONFLICT (workflow, key) DO NOTHING RETURNING id"
)
_UPDATE_ITEM = f"UPDATE items SET {', '.join(f'{c} = ?' for c in codec.STEP_COLUMNS)} WHERE id = ?"


@dataclass
class _Fence:
    """What the transaction read: each item's [id, seq] and the work rows the committer holds.

    ``held`` is None without a lease (no lease to check); otherwise it maps each consumed row
    still leased to the committer, as ("outbox", id) or ("timer", id), to its item's id.
    """

    known: dict[Ref, list[int]]
    held: dict[tuple[str, int], int] | None
    dialect: Dialect
    refused: set[Ref] = field(default_factory=set)

    def check(self, entry: StepCommit) -> tuple[CommitStatus, list[int] | None]:
        """A step's status and its item's [id, seq] (None: no such item).

        The status is judged on what this transaction read and accepted so far.
        """
        item = entry.result.item
        current = self.known.get((item.workflow, item.key))
        consumes = entry.outbox_id is not None or entry.timer_id is not None
        if self.held is not None and consumes and not self._holds(entry, current):
            return CommitStatus.LOST, current
        if entry.expected_seq is None:
            status = CommitStatus.COMMITTED if current is None else CommitStatus.DUPLICATE
        elif current is None or current[1] != entry.expected_seq:
            status = CommitStatus.STALE
        else:
            status = CommitStatus.COMMITTED
        return status, current

    def _holds(self, entry: StepCommit, current: list[int] | None) -> bool:
        """Every row the step consumes is still leased to the committer, for this item."""
        if self.held is None or current is None:
            return False
        owner = current[0]
        return (
            entry.outbox_id is None or self.held.get(("outbox", entry.outbox_id)) == owner
        ) and (entry.timer_id is None or self.held.get(("timer", entry.timer_id)) == owner)

    def accept(self, entry: StepCommit, current: list[int]) -> None:
        """Later steps of the item in this batch are fenced on this step's ``seq``."""
        current[1] = entry.result.item.seq
        if self.held is not None and entry.outbox_id is not None:
            self.held.pop(("outbox", entry.outbox_id), None)
        if self.held is not None and entry.timer_id is not None:
            self.held.pop(("timer", entry.timer_id), None)

    def add(self, item: Item, item_id: int) -> list[int]:
        """A new item, inserted by this transaction."""
        current = self.known[(item.workflow, item.key)] = [item_id, item.seq]
        return current


def commit_txn(
    db: Connection, dialect: Dialect, commits: Sequence[StepCommit], lease: Lease | None
) -> list[CommitOutcome]:
    """Fence every step, write the accepted ones; one outcome per step, in order."""
    refs = list(dict.fromkeys((c.result.item.workflow, c.result.item.key) for c in commits))
    columns = "workflow, key, id, seq, version, state, status"
    rows = dialect.select_items_txn(db, columns, refs, lock=True) if refs else []
    fence = _Fence(
        {(w, k): [i, s] for w, k, i, s, *_ in rows}, _held_txn(db, dialect, commits, lease), dialect
    )
    plan = WritePlan()
    for workflow, _, item_id, _, version, state, status in rows:
        plan.tally.known(item_id, workflow, (int(version), state, status))
    errors: dict[int, str] = {}
    statuses = [
        _admit_txn(db, fence, plan, entry, position, errors)
        for position, entry in enumerate(commits)
    ]
    queued = _write_txn(db, plan, dialect, lease)
    write_tally_txn(db, dialect, plan.tally)
    if plan.wakes_others(lease is not None):
        dialect.notify_txn(db)
    return [
        CommitOutcome(status, tuple(queued.get(position, ())), errors.get(position))
        for position, status in enumerate(statuses)
    ]


def _admit_txn(
    db: Connection,
    fence: _Fence,
    plan: WritePlan,
    entry: StepCommit,
    position: int,
    errors: dict[int, str],
) -> CommitStatus:
    """Fence one step and fold it into the plan if it passes.

    Once a step of an item is refused, its later steps in the batch are STALE too: a runner
    computes each on top of the one before, so a later one whose expected ``seq`` happens to
    equal the stored one (another writer committed exactly one step meanwhile) was still
    judged from an item that never existed. A rejection's reason goes into ``errors``.
    """
    ref = (entry.result.item.workflow, entry.result.item.key)
    if ref in fence.refused:  # it was computed on top of a step this batch did not take
        return CommitStatus.STALE
    status = _admit_one_txn(db, fence, plan, entry, position, errors)
    if status is not CommitStatus.COMMITTED:
        fence.refused.add(ref)
    return status


def _admit_one_txn(
    db: Connection,
    fence: _Fence,
    plan: WritePlan,
    entry: StepCommit,
    position: int,
    errors: dict[int, str],
) -> CommitStatus:
    """The fence, guard and encoding of one step whose item has no refused step before it."""
    status, current = fence.check(entry)
    if status is not CommitStatus.COMMITTED:
        return status
    if entry.task_guard is not None:
        refusal = _task_refusal_txn(db, fence.dialect, entry.task_guard)
        if refusal is not None:
            errors[position] = refusal
            return CommitStatus.REFUSED
    item = entry.result.item
    if current is not None and entry.result.outcome is Outcome.IGNORED:
        fence.accept(entry, current)
        plan.consume(entry, current[0])
        return status
    try:
        rows = encode_step(entry.result)
    except _UNENCODABLE as exc:
        errors[position] = f"a step of item {item.key!r} ({item.workflow}) cannot be stored: {exc}"
        return CommitStatus.REJECTED
    if current is None:
        inserted = _insert_item_txn(db, item, rows)
        if inserted is None:
            return CommitStatus.DUPLICATE  # another writer started it just now
        current = fence.add(item, inserted)
    else:
        fence.accept(entry, current)
    plan.add(current[0], entry, rows, position)
    plan.tally.step(
        current[0], entry.result, fence.dialect.escalation_txn(db, item.workflow, item.version)
    )
    return status


def _task_refusal_txn(db: Connection, dialect: Dialect, guard: TaskGuard) -> str | None:
    """Why the task a decision closes cannot be decided by ``guard.actor`` now, if it cannot."""
    rows = db.execute(
        f"SELECT status, decided_by, claimed_by, claim_until, branch, comment FROM tasks "
        f"WHERE id = ?"
        f"{dialect.lock_rows}",
        (guard.task_id,),
    )
    if not rows:
        return f"there is no task {guard.task_id}; nothing changed"
    status, decided_by, claimed_by, claim_until, branch, comment = rows[0]
    if status != "open":
        by = f" by {decided_by}" if decided_by else ""
        why = f" ({comment})" if status == "cancelled" and branch and comment else ""
        return f"task {guard.task_id} is already {status}{by}{why}; nothing changed"
    if (
        claimed_by not in (None, guard.actor)
        and claim_until is not None
        and claim_until > guard.now
    ):
        return f"task {guard.task_id} is claimed by {claimed_by}; nothing changed"
    return None


def _held_txn(
    db: Connection, dialect: Dialect, commits: Sequence[StepCommit], lease: Lease | None
) -> dict[tuple[str, int], int] | None:
    """The consumed work rows still leased to ``lease.owner``, locked, with their items' ids."""
    if lease is None:
        return None
    held: dict[tuple[str, int], int] = {}
    for table, kind, ids in (
        ("outbox", "outbox", {c.outbox_id for c in commits if c.outbox_id is not None}),
        ("timers", "timer", {c.timer_id for c in commits if c.timer_id is not None}),
    ):
        if ids:
            condition, params = dialect.any_of("id", ids)
            found = db.execute(
                f"SELECT id, item_id FROM {table} WHERE {condition} AND lease_owner = ? "
                f"ORDER BY id{dialect.lock_rows}",  # locked in id order, like the items
                [*params, lease.owner],
            )
            held.update(((kind, row_id), item_id) for row_id, item_id in found)
    return held


def _insert_item_txn(db: Connection, item: Item, rows: EncodedStep) -> int | None:
    """Insert a new item; None when its (workflow, key) already exists."""
    found = db.execute(_INSERT_ITEM, (*rows.values, item.workflow, item.key, item.created_at))
    return int(found[0][0]) if found else None


def _write_txn(
    db: Connection, plan: WritePlan, dialect: Dialect, lease: Lease | None
) -> dict[int, list[ClaimedCommand]]:
    """Run the plan's statements; return the queued commands leased to ``lease``, by step."""
    db.executemany(_UPDATE_ITEM, [(*values, item_id) for item_id, values in plan.items.items()])
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
        "INSERT INTO history (item_id, seq, at, from_state, to_state, event, detail, output, "
        "output_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        plan.history,
    )
    db.executemany(
        "INSERT INTO payloads (item_id, hash, body) VALUES (?, ?, ?) "
        "ON CONFLICT (item_id, hash) DO NOTHING",
        plan.payload_rows(),
    )
    db.executemany("DELETE FROM timers WHERE item_id = ?", [(i,) for i in plan.timer_clears])
    db.executemany(
        "INSERT INTO timers (item_id, due_at, event) VALUES (?, ?, ?)", plan.timer_rows()
    )
    db.executemany("DELETE FROM outbox WHERE item_id = ?", [(i,) for i in plan.command_clears])
    db.executemany("DELETE FROM outbox WHERE id = ? AND item_id = ?", plan.consumed_outbox)
    db.executemany("DELETE FROM timers WHERE id = ? AND item_id = ?", plan.consumed_timers)
    db.executemany(
        "INSERT INTO conversations (item_id, agent, messages, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (item_id, agent) DO UPDATE SET messages = excluded.messages, "
        "updated_at = excluded.updated_at",
        list(plan.conversations.values()),
    )
    _write_tasks_txn(db, plan)
    return _queue_commands_txn(db, plan, dialect, lease)


def _write_tasks_txn(db: Connection, plan: WritePlan) -> None:
    """Open, close and remind human tasks; closing touches only a task still open."""
    db.executemany(
        "INSERT INTO tasks (item_id, state, visit, queue, role, status, created_at, due_at, "
        "remind_at, branch) VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?) "
        "ON CONFLICT (item_id, state, visit, branch) DO NOTHING",
        plan.task_opens,
    )
    db.executemany(
        "UPDATE tasks SET status = ?, decided_by = ?, decided_at = ?, outcome = ?, "
        "comment = ?, data = ?, claimed_by = NULL, claim_until = NULL "
        "WHERE item_id = ? AND state = ? AND visit = ? AND branch = ? AND status = 'open'",
        plan.task_closes,
    )
    db.executemany(
        "UPDATE tasks SET reminded_at = ? "
        "WHERE item_id = ? AND state = ? AND visit = ? AND branch = ? AND status = 'open'",
        plan.task_reminders,
    )


def _queue_commands_txn(
    db: Connection, plan: WritePlan, dialect: Dialect, lease: Lease | None
) -> dict[int, list[ClaimedCommand]]:
    """Insert the outbox rows; leased ones come back keyed by their step's position."""
    if not plan.commands:
        return {}
    owner, until = (lease.owner, lease.until) if lease else (None, None)
    ids = dialect.reserve_outbox_ids_txn(db, len(plan.commands))
    db.executemany(
        "INSERT INTO outbox (id, item_id, effect, available_at, lease_owner, lease_until) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            (outbox_id, c.item_id, c.payload, c.item.updated_at, owner, until)
            for outbox_id, c in zip(ids, plan.commands, strict=True)
        ],
    )
    queued: dict[int, list[ClaimedCommand]] = {}
    if lease is not None:
        for outbox_id, c in zip(ids, plan.commands, strict=True):
            claimed = ClaimedCommand(outbox_id, c.item.workflow, c.item.key, c.effect)
            queued.setdefault(c.position, []).append(claimed)
    return queued
