"""Turning a batch of accepted steps into one set of row writes, shared by every dialect.

A batch holds many steps, sometimes several for one item. Writing them step by step costs a
round of statements per step; instead the batch is folded in memory, in step order, into one
list of rows per statement, which a dialect then runs with ``executemany``. Folding keeps the
meaning of the steps in order: a later context write replaces an earlier one at the same or a
deeper path, and a ``CancelTimers`` drops the timers the item's earlier steps started.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from statewise.engine.effects import CancelTimers, RunCommand, StartTimer
from statewise.engine.events import TimerFired
from statewise.engine.item import Item
from statewise.store import codec
from statewise.store.base import StepCommit

ContextRow = tuple[int, str, str]
HistoryRow = tuple[int, int, float, str | None, str, str, str]
TimerRow = tuple[int, float, str]


@dataclass
class WritePlan:
    """Every row one batch writes, grouped by statement."""

    items: dict[int, Item] = field(default_factory=dict)
    context_clears: list[tuple[int, str]] = field(default_factory=list)
    context_sets: dict[int, dict[str, str]] = field(default_factory=dict)
    history: list[HistoryRow] = field(default_factory=list)
    timer_clears: set[int] = field(default_factory=set)
    timers: dict[int, list[TimerRow]] = field(default_factory=dict)
    commands: list[tuple[int, Item, RunCommand, int]] = field(default_factory=list)
    consumed_outbox: list[int] = field(default_factory=list)
    consumed_timers: list[int] = field(default_factory=list)

    def add(self, item_id: int, entry: StepCommit, position: int) -> None:
        """Fold one accepted step (``position`` in its batch) into the plan, in order."""
        result = entry.result
        self.consume(entry)
        self.items[item_id] = result.item
        for patch in result.patches:
            self._set_context(item_id, codec.encode_path(patch.path), codec.dumps(patch.value))
        self.history.extend(
            (item_id, r.seq, r.at, r.from_state, r.to_state, r.event, codec.encode_detail(r))
            for r in result.history
        )
        for effect in result.effects:
            if isinstance(effect, CancelTimers):
                self.timer_clears.add(item_id)
                self.timers.pop(item_id, None)
            elif isinstance(effect, StartTimer):
                event = TimerFired(effect.name, effect.state, effect.visit, effect.branch)
                row = (item_id, effect.due_at, codec.encode_timer(event))
                self.timers.setdefault(item_id, []).append(row)
            elif isinstance(effect, RunCommand):
                self.commands.append((item_id, result.item, effect, position))

    def consume(self, entry: StepCommit) -> None:
        """The outbox or timer row the step used up is deleted with it."""
        if entry.outbox_id is not None:
            self.consumed_outbox.append(entry.outbox_id)
        if entry.timer_id is not None:
            self.consumed_timers.append(entry.timer_id)

    def _set_context(self, item_id: int, path: str, value: str) -> None:
        pending = self.context_sets.setdefault(item_id, {})
        prefix = path + codec.PATH_SEPARATOR
        for deeper in [p for p in pending if p.startswith(prefix)]:
            del pending[deeper]
        pending.pop(path, None)
        pending[path] = value
        self.context_clears.append((item_id, path))

    def context_rows(self) -> list[ContextRow]:
        """Context values to upsert, in the order they were written."""
        return [
            (item_id, path, value)
            for item_id, pending in self.context_sets.items()
            for path, value in pending.items()
        ]

    def timer_rows(self) -> list[TimerRow]:
        """Timers to insert, after the clears have run."""
        return [row for rows in self.timers.values() for row in rows]


def plan_writes(accepted: Sequence[tuple[int, int, StepCommit]]) -> WritePlan:
    """Fold accepted steps, as (position in batch, item id, step), into one plan, in order."""
    plan = WritePlan()
    for position, item_id, entry in accepted:
        plan.add(item_id, entry, position)
    return plan
