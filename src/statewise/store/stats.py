"""Per-state flow figures read back from the audit trail, the same way on every dialect.

Each audit row that leaves a state carries how long the item was there (``dwell``), so one
pass over the rows of a time window gives arrivals, departures, time-in-state percentiles,
failures, retries and model cost per state, with no second table to keep in step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from statewise.store.base import StateStats
from statewise.store.connection import Connection

# The window is read newest first up to this many rows, so a huge backlog stays cheap.
MAX_ROWS = 200_000


@dataclass
class _Tally:
    entered: int = 0
    left: int = 0
    failures: int = 0
    retries: int = 0
    cost: float | None = None
    dwells: list[float] = field(default_factory=list)


def state_stats_txn(db: Connection, since: float, workflow: str | None) -> list[StateStats]:
    """Figures per (workflow, state) over the audit rows written since ``since``."""
    rows = db.execute(
        "SELECT i.workflow, h.from_state, h.to_state, h.event, h.detail FROM history h "
        "JOIN items i ON i.id = h.item_id WHERE h.at >= ?"
        + (" AND i.workflow = ?" if workflow else "")
        + " ORDER BY h.at DESC LIMIT ?",
        (since, workflow, MAX_ROWS) if workflow else (since, MAX_ROWS),
    )
    tallies: dict[tuple[str, str], _Tally] = {}
    for name, origin, target, event, detail in rows:
        extra = json.loads(detail)
        if origin != target or extra.get("dwell") is not None:
            tallies.setdefault((name, target), _Tally()).entered += 1
        if origin is None:
            continue
        here = tallies.setdefault((name, origin), _Tally())
        _count(here, extra, event)
    return [_stats(name, state, since, tally) for (name, state), tally in sorted(tallies.items())]


def _count(tally: _Tally, extra: dict[str, object], event: str) -> None:
    dwell = extra.get("dwell")
    if isinstance(dwell, int | float):
        tally.left += 1
        tally.dwells.append(float(dwell))
    if extra.get("error") and extra.get("command"):
        tally.failures += 1
    if event == "retry":
        tally.retries += 1
    usage = extra.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("cost"), int | float):
        tally.cost = (tally.cost or 0.0) + float(usage["cost"])


def _stats(workflow: str, state: str, since: float, tally: _Tally) -> StateStats:
    dwells = sorted(tally.dwells)
    return StateStats(
        workflow=workflow,
        state=state,
        since=since,
        entered=tally.entered,
        left=tally.left,
        failures=tally.failures,
        retries=tally.retries,
        dwell_p50=_percentile(dwells, 0.50),
        dwell_p95=_percentile(dwells, 0.95),
        cost=tally.cost,
    )


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted values; None when there are none."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]
