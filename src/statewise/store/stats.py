"""Reading the counts and flow figures commits keep (``store.tally``), and checking them.

``state_counts`` sums a state's count shards and finds its oldest item with one index seek
(``items_overview`` ends in ``entered_at``); ``state_stats`` sums the per-minute rows of the
window. Neither reads more rows as items or audit rows grow: their cost follows the number of
states, minutes and shards in use. ``recount`` is the proof that the kept counts are right:
it compares them with a GROUP BY over every item (and can rewrite them from it).
"""

from __future__ import annotations

from typing import Any

from statewise.engine.item import ItemStatus
from statewise.store.base import CountDrift, StateCount, StateStats
from statewise.store.connection import Connection, Dialect, Row
from statewise.store.tally import (
    FLOW_COLUMNS,
    HISTOGRAM,
    backfill_counts_txn,
    estimate,
)


def state_counts_txn(db: Connection, workflow: str | None) -> list[StateCount]:
    """Items per (workflow, version, state, status) from the kept counts; empty ones left out."""
    rows = db.execute(
        "SELECT c.workflow, c.version, c.state, c.status, c.total, "
        "(SELECT MIN(i.entered_at) FROM items i WHERE i.workflow = c.workflow "
        "AND i.version = c.version AND i.state = c.state AND i.status = c.status) "
        "FROM (SELECT workflow, version, state, status, SUM(count) AS total "
        "FROM counts_by_state" + (" WHERE workflow = ?" if workflow else "") + " "
        "GROUP BY workflow, version, state, status) c WHERE c.total > 0 "
        "ORDER BY c.workflow, c.version, c.state, c.status",
        (workflow,) if workflow else (),
    )
    return [
        StateCount(w, int(v), s, ItemStatus(st), int(c), float(e)) for w, v, s, st, c, e in rows
    ]


_SUMS = ", ".join(f"SUM({column})" for column in FLOW_COLUMNS)


def state_stats_txn(db: Connection, since: float, workflow: str | None) -> list[StateStats]:
    """Figures per (workflow, state) over whole minutes, from the one holding ``since`` on."""
    rows = db.execute(
        f"SELECT workflow, state, {_SUMS} FROM flows_by_minute WHERE minute >= ?"
        + (" AND workflow = ?" if workflow else "")
        + " GROUP BY workflow, state ORDER BY workflow, state",
        (int(since // 60), workflow) if workflow else (int(since // 60),),
    )
    return [_stats(since, row) for row in rows]


def _stats(since: float, row: Row) -> StateStats:
    """One state's summed row; SUM gives NULL only for a cost none of whose calls was priced."""
    workflow, state, *sums = row
    figures: dict[str, Any] = dict(zip(FLOW_COLUMNS, sums, strict=True))
    histogram = [int(figures[name] or 0) for name in HISTOGRAM]

    def whole(name: str) -> int:
        return int(figures[name] or 0)

    cost = figures["cost"]
    return StateStats(
        workflow=str(workflow),
        state=str(state),
        since=since,
        entered=whole("entered"),
        left=whole("departed"),
        failures=whole("failures"),
        retries=whole("retries"),
        dwell_p50=estimate(histogram, 0.50),
        dwell_p95=estimate(histogram, 0.95),
        cost=None if cost is None else float(cost),
        finished=whole("finished"),
        escalated=whole("escalated"),
        failed=whole("failed"),
        cancelled=whole("cancelled"),
    )


_ACTUAL = (
    "SELECT workflow, version, state, status, COUNT(*) FROM items "
    "GROUP BY workflow, version, state, status"
)


def recount_txn(db: Connection, dialect: Dialect, repair: bool) -> list[CountDrift]:
    """Where the kept counts differ from a GROUP BY over the items; rewrite them if ``repair``.

    It runs in a write transaction that first locks the counts against writers
    (``Dialect.lock_counts``), so no commit changes items and counts between the two reads:
    one that has not written its counts yet waits, and its items' change is not seen.
    """
    if dialect.lock_counts:
        db.execute(dialect.lock_counts)
    kept = {
        (w, int(v), s, st): int(c)
        for w, v, s, st, c in db.execute(
            "SELECT workflow, version, state, status, SUM(count) FROM counts_by_state "
            "GROUP BY workflow, version, state, status"
        )
    }
    actual = {(w, int(v), s, st): int(c) for w, v, s, st, c in db.execute(_ACTUAL)}
    drift = [
        CountDrift(*key, kept.get(key, 0), actual.get(key, 0))
        for key in sorted(kept.keys() | actual.keys())
        if kept.get(key, 0) != actual.get(key, 0)
    ]
    if repair and drift:
        backfill_counts_txn(db)
    return drift
