"""What the store says right now, read once and shared by every scrape for a few seconds.

Prometheus' exposition is synchronous and runs wherever it is called (prometheus-client's own
ASGI app renders on the event loop), while the store is async. So the store is never read
from inside a collector: the ``/metrics`` endpoint first awaits :meth:`StoreSnapshots.current`
on the service's loop, which reads the store at most once per ``max_age`` seconds however many
scrapers ask (concurrent callers share the one read), and the collector then only turns the
immutable snapshot into samples. Nothing polls when nobody scrapes.

Open human tasks are derived from the same per-state counts instead of listing the task
table: an item waiting in a ``kind: human`` state holds exactly one open task, the one of its
current visit, in that state's queue, open since the item entered the state. One grouped
query therefore answers for a million items.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from statewise.definition.model import Definition
from statewise.engine.item import ItemStatus
from statewise.observe.alerts import Alert, evaluate
from statewise.store.base import CostRow, StateCount, StateStats, Store

logger = logging.getLogger("statewise.observe")
DEFAULT_MAX_AGE = 5.0
"""Seconds a snapshot serves scrapes before the next scrape reads the store again."""
FLOW_WINDOW = 3600.0
"""Seconds of flow figures (how items ended, per state) a snapshot holds: the last hour."""


@dataclass(frozen=True, slots=True)
class OpenTasks:
    """Open human tasks of one workflow in one queue, and when the oldest was opened."""

    workflow: str
    queue: str
    count: int
    oldest_opened_at: float


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """Per-state counts, model usage, alerts and open tasks, as read at ``taken_at``.

    ``flows`` are the per-state flow figures of the ``FLOW_WINDOW`` before ``taken_at``.
    """

    taken_at: float
    counts: tuple[StateCount, ...]
    costs: tuple[CostRow, ...]
    alerts: tuple[Alert, ...]
    open_tasks: tuple[OpenTasks, ...]
    flows: tuple[StateStats, ...] = ()


def open_tasks(definitions: Iterable[Definition], counts: Iterable[StateCount]) -> list[OpenTasks]:
    """Open tasks by (workflow, queue) from items waiting in human states.

    Items of a version none of ``definitions`` is cannot be placed in a queue and are left out.
    """
    by_version = {(d.name, d.version): d for d in definitions}
    found: dict[tuple[str, str], OpenTasks] = {}
    for row in counts:
        definition = by_version.get((row.workflow, row.version))
        if row.status is not ItemStatus.WAITING or row.count <= 0 or definition is None:
            continue
        state = definition.states.get(row.state)
        if state is None or state.task is None:
            continue
        ref = (row.workflow, state.task.queue)
        held = found.get(ref)
        if held is None:
            found[ref] = OpenTasks(row.workflow, state.task.queue, row.count, row.oldest_entered_at)
        else:
            oldest = min(held.oldest_opened_at, row.oldest_entered_at)
            found[ref] = OpenTasks(row.workflow, held.queue, held.count + row.count, oldest)
    return list(found.values())


class StoreSnapshots:
    """Reads the store into a :class:`StoreSnapshot` at most once per ``max_age`` seconds.

    ``definitions`` is called on each read, so workflows registered while the service runs
    get their alerts and queues. A failed read is logged and counted, and the previous
    snapshot keeps serving; the age of the one served is exported, so a stale one shows.
    """

    def __init__(
        self,
        store: Store,
        definitions: Callable[[], Iterable[Definition]],
        *,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.definitions = definitions
        self.max_age = max_age
        self.clock = clock
        self.latest: StoreSnapshot | None = None
        self.errors = 0
        self._reading: asyncio.Task[StoreSnapshot] | None = None

    async def current(self) -> StoreSnapshot | None:
        """A snapshot no older than ``max_age``, or the last good one if reading fails."""
        latest = self.latest
        if latest is not None and self.clock() - latest.taken_at < self.max_age:
            return latest
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read())
        try:
            # Shielded: a scrape that disconnects must not cancel the read the others await.
            self.latest = await asyncio.shield(self._reading)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store is down or slow: serve what we had, say so
            self.errors += 1
            logger.warning("metrics: reading the store failed: %s: %s", type(exc).__name__, exc)
        return self.latest

    async def _read(self) -> StoreSnapshot:
        counts = tuple(await self.store.state_counts())
        costs = tuple(await self.store.costs())
        definitions = list(self.definitions())
        now = self.clock()
        flows = tuple(await self.store.state_stats(now - FLOW_WINDOW))
        return StoreSnapshot(
            taken_at=now,
            counts=counts,
            costs=costs,
            alerts=tuple(evaluate(definitions, counts, now)),
            open_tasks=tuple(open_tasks(definitions, counts)),
            flows=flows,
        )
