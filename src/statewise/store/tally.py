"""Counts and per-minute flow figures kept as work commits, so the board never scans items.

Two tables, written in the same transaction as the steps they describe (``commit_txn``):

- ``counts_by_state`` (workflow, version, state, status, shard) -> count: how many items sit
  there. A commit adds the net change of its items (-1 where an item was, +1 where it is).
- ``flows_by_minute`` (minute, workflow, state, shard) -> what moved through the state in that
  minute (epoch seconds // 60): ``entered``, ``departed``, ``failures``, ``retries``, ``cost``,
  ``dwell_sum`` and a dwell histogram ``d0``..``d24``, plus how items ended there:
  ``finished``, ``escalated``, ``failed``, ``cancelled`` (``FLOW_COLUMNS``; the semantics are
  on ``Flow`` and in the README).

Why shards: every commit that moves an item into or out of a state changes that state's
count, and every commit of a busy minute its flow row. On PostgreSQL one row per key would
make concurrent commits queue on its row lock until each one commits. So each key is spread
over ``SHARDS`` rows and a transaction writes only the rows of a shard it holds alone
(``Dialect.tally_shard_txn``: a transaction-scoped advisory lock on PostgreSQL, always 0 on
SQLite, whose single writer needs none); readers sum the shards. Correctness never rests on
the shard: every write is one ``INSERT ... ON CONFLICT DO UPDATE`` adding a delta, atomic on
both stores, so even two transactions sharing a shard lose nothing (the later one waits).

Rows are written in key order, so two transactions that do share a shard cannot deadlock.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.engine.result import StepResult
from statewise.store.connection import Connection, Dialect

SHARDS = 16
"""Rows each key is spread over: concurrent committers that never wait for one another."""

BUCKETS = 25
"""Dwell histogram buckets: ``d0`` below 1/8 s, then one per doubling, ``d24`` from 2^20 s."""
_SMALLEST = 2.0**-3  # upper edge of d0, seconds
_LARGEST = 2.0**20  # lower edge of the last bucket (about 12 days)

Position = tuple[int, str, str]
"""Where an item is counted: (version, state, status)."""
CountKey = tuple[str, int, str, str]
FlowKey = tuple[int, str, str]
"""(minute, workflow, state)."""


@dataclass(slots=True)
class Flow:
    """What moved through one state in one minute.

    ``entered``/``departed`` count arrivals and departures (a re-entry of the same state by a
    retry or a redrive counts both); ``dwell_sum`` and ``dwells`` (the histogram) are the
    departures' time in the state; ``failures`` are failed command attempts there, ``retries``
    the retries started, ``cost`` the priced model calls' cost (None: none was priced).

    How items ended, each counted when it happened, in the state it happened in:
    ``finished`` became done here (a final state) without ever having been in the workflow's
    escalation state; ``escalated`` moved from here into the escalation state; ``failed``
    became failed here; ``cancelled`` were cancelled while here. An escalated item that is
    later resolved, abandoned or redriven to an end counts as escalated once per escalation
    and never as finished; one later cancelled (or failed) counts there too.
    """

    entered: int = 0
    departed: int = 0
    failures: int = 0
    retries: int = 0
    cost: float | None = None
    dwell_sum: float = 0.0
    finished: int = 0
    escalated: int = 0
    failed: int = 0
    cancelled: int = 0
    dwells: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def values(self) -> tuple[Any, ...]:
        """The row's figures, in ``FLOW_COLUMNS`` order (written out: this runs per commit)."""
        return (
            self.entered, self.departed, self.failures, self.retries, self.cost,
            self.dwell_sum, self.finished, self.escalated, self.failed, self.cancelled,
            *self.dwells,
        )  # fmt: skip


HISTOGRAM = tuple(f"d{n}" for n in range(BUCKETS))
FLOW_COLUMNS = (*(f.name for f in fields(Flow) if f.name != "dwells"), *HISTOGRAM)
_FLOW_KEY = ("minute", "workflow", "state", "shard")


def bucket(dwell: float) -> int:
    """The histogram bucket of a dwell time in seconds (log scale, one per doubling)."""
    if dwell < _SMALLEST:
        return 0
    if dwell >= _LARGEST:
        return BUCKETS - 1
    return min(math.floor(math.log2(dwell / _SMALLEST)) + 1, BUCKETS - 2)


def bucket_edges(index: int) -> tuple[float, float]:
    """The [low, high) seconds of a bucket; the last one's high is infinite."""
    if index == 0:
        return 0.0, _SMALLEST
    if index == BUCKETS - 1:
        return _LARGEST, math.inf
    return _SMALLEST * 2.0 ** (index - 1), _SMALLEST * 2.0**index


def estimate(histogram: Sequence[int], fraction: float) -> float | None:
    """The nearest-rank percentile of the dwells a histogram holds, interpolated in its bucket.

    Precision: the true percentile lies in the bucket found, so the estimate is within a
    factor of 2 of it (geometric interpolation; linear in the first bucket, below 1/8 s); in
    the last bucket, from 2^20 s, the bucket's lower edge is given.
    """
    total = sum(histogram)
    if total == 0:
        return None
    rank = max(1, math.ceil(total * fraction))
    below = 0
    for index, count in enumerate(histogram):
        if below + count >= rank:
            low, high = bucket_edges(index)
            share = (rank - below - 0.5) / count
            if index == 0:
                return low + (high - low) * share
            if math.isinf(high):
                return low
            return float(low * (high / low) ** share)
        below += count
    return None  # unreachable: the ranks sum to ``total``


@dataclass
class Tally:
    """The count changes and flow figures of one transaction's steps, before they are written.

    ``positions`` is where each item touched stands now, as the steps moved it; ``origins``
    where it stood before the transaction (absent: a new item).
    """

    positions: dict[int, Position] = field(default_factory=dict)
    origins: dict[int, Position | None] = field(default_factory=dict)
    workflows: dict[int, str] = field(default_factory=dict)
    flows: dict[FlowKey, Flow] = field(default_factory=dict)

    def known(self, item_id: int, workflow: str, position: Position | None) -> None:
        """Where an item stood when the transaction read it under lock."""
        if item_id not in self.origins:
            self.origins[item_id] = position
            self.workflows[item_id] = workflow
            if position is not None:
                self.positions[item_id] = position

    def step(self, item_id: int, result: StepResult, escalation: str | None) -> None:
        """Fold one accepted step: its audit rows' flows and how it ended the item, if it did."""
        item = result.item
        before = self.positions.get(item_id)
        if item_id not in self.origins:
            self.known(item_id, item.workflow, None)
        for record in result.history:
            self._record(item.workflow, record, escalation)
        self._ending(item, before, escalation)
        self.positions[item_id] = (item.version, item.state, item.status.value)

    def _record(self, workflow: str, record: HistoryRecord, escalation: str | None) -> None:
        """The audit row's share, the same reading the audit-trail figures always made."""
        minute = int(record.at // 60)
        if record.from_state != record.to_state or record.dwell is not None:
            self._flow(minute, workflow, record.to_state).entered += 1
        if record.from_state is None:
            return
        here = self._flow(minute, workflow, record.from_state)
        if record.dwell is not None:
            here.departed += 1
            here.dwell_sum += record.dwell
            here.dwells[bucket(record.dwell)] += 1
        if record.error and record.command:
            here.failures += 1
        if record.event == "retry":
            here.retries += 1
        usage = record.usage
        if usage is not None and isinstance(usage.get("cost"), int | float):
            here.cost = (here.cost or 0.0) + float(usage["cost"])
        if (
            escalation is not None
            and record.to_state == escalation
            and record.from_state != escalation
        ):
            here.escalated += 1

    def _ending(self, item: Item, before: Position | None, escalation: str | None) -> None:
        """Count the step that made the item done, failed or cancelled, in its state."""
        status = item.status
        if before is not None and before[2] == status.value:
            return
        flow = (int(item.updated_at // 60), item.workflow, item.state)
        if status is ItemStatus.DONE:
            if escalation is None or item.visits.get(escalation, 0) == 0:
                self._flow(*flow).finished += 1
        elif status is ItemStatus.FAILED:
            self._flow(*flow).failed += 1
        elif status is ItemStatus.CANCELLED:
            self._flow(*flow).cancelled += 1

    def _flow(self, minute: int, workflow: str, state: str) -> Flow:
        key = (minute, workflow, state)
        found = self.flows.get(key)
        if found is None:
            found = self.flows[key] = Flow()
        return found

    def count_changes(self) -> dict[CountKey, int]:
        """The net change of each (workflow, version, state, status) count, zeros left out."""
        changes: dict[CountKey, int] = {}
        for item_id, now in self.positions.items():
            was = self.origins.get(item_id)
            if was == now:
                continue
            workflow = self.workflows[item_id]
            if was is not None:
                changes[(workflow, *was)] = changes.get((workflow, *was), 0) - 1
            changes[(workflow, *now)] = changes.get((workflow, *now), 0) + 1
        return {key: delta for key, delta in changes.items() if delta}


_UPSERT_COUNT = (
    "INSERT INTO counts_by_state (workflow, version, state, status, shard, count) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (workflow, version, state, status, shard) "
    "DO UPDATE SET count = counts_by_state.count + excluded.count"
)


def _flow_update(column: str) -> str:
    if column == "cost":  # None stays None until a priced call is counted
        return (
            "cost = COALESCE(flows_by_minute.cost + excluded.cost, flows_by_minute.cost, "
            "excluded.cost)"
        )
    return f"{column} = flows_by_minute.{column} + excluded.{column}"


_UPSERT_FLOW = (
    f"INSERT INTO flows_by_minute ({', '.join((*_FLOW_KEY, *FLOW_COLUMNS))}) "
    f"VALUES ({', '.join('?' * (len(_FLOW_KEY) + len(FLOW_COLUMNS)))}) "
    f"ON CONFLICT ({', '.join(_FLOW_KEY)}) DO UPDATE SET "
    + ", ".join(_flow_update(c) for c in FLOW_COLUMNS)
)


def write_tally_txn(db: Connection, dialect: Dialect, tally: Tally) -> None:
    """Add the transaction's count changes and flows to the rows of a shard it holds."""
    changes = tally.count_changes()
    if not changes and not tally.flows:
        return
    shard = dialect.tally_shard_txn(db)
    db.executemany(_UPSERT_COUNT, [(*key, shard, delta) for key, delta in sorted(changes.items())])
    db.executemany(
        _UPSERT_FLOW,
        [(*key, shard, *flow.values()) for key, flow in sorted(tally.flows.items())],
    )


def backfill_counts_txn(db: Connection) -> None:
    """Migration step: count the items there are, into shard 0."""
    db.execute("DELETE FROM counts_by_state")
    db.execute(
        "INSERT INTO counts_by_state (workflow, version, state, status, shard, count) "
        "SELECT workflow, version, state, status, 0, COUNT(*) FROM items "
        "GROUP BY workflow, version, state, status"
    )


BACKFILL_SECONDS = 86_400
"""How far back a migration rebuilds the flow figures from the audit trail."""


def backfill_flows_txn(db: Connection, since: float | None = None) -> None:
    """Migration step: the flow figures of the audit rows since ``since`` (default: a day).

    They come from the audit rows alone, as the figures were read before they were kept, so
    how items ended (which needs each step's statuses) starts at zero for that span.
    """
    if since is None:
        ((newest,),) = db.execute("SELECT MAX(at) FROM history")
        if newest is None:
            return
        since = float(newest) - BACKFILL_SECONDS
    tally = Tally()
    for workflow, at, origin, target, event, detail in db.execute(
        "SELECT i.workflow, h.at, h.from_state, h.to_state, h.event, h.detail FROM history h "
        "JOIN items i ON i.id = h.item_id WHERE h.at >= ?",
        (since,),
    ):
        tally._record(workflow, _row_record(at, origin, target, event, detail), None)
    db.executemany(
        _UPSERT_FLOW, [(*key, 0, *flow.values()) for key, flow in sorted(tally.flows.items())]
    )


def _row_record(
    at: float, origin: str | None, target: str, event: str, detail: str
) -> HistoryRecord:
    """The fields of a stored audit row the flow figures read."""
    extra = json.loads(detail)
    dwell = extra.get("dwell")
    return HistoryRecord(
        seq=0,
        at=float(at),
        from_state=origin,
        to_state=target,
        event=event,
        event_kind=str(extra.get("event_kind", "")),
        command=extra.get("command"),
        error=extra.get("error"),
        usage=extra.get("usage") if isinstance(extra.get("usage"), dict) else None,
        dwell=float(dwell) if isinstance(dwell, int | float) else None,
    )
