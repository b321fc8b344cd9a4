"""What a changed definition would have done to past items, item by item and summed.

Pure: each item comes in as its stored row and audit trail (the "before"), and its fold
through the new definition (the "after"). The sums are what an operator decides on: where
items end or wait, how many tasks each queue gets, what the model calls cost, which paths
change and where first, which items need a result never recorded, and, per agent a person
reviews, how many reviews the change saves and how many of those the reviewers had overridden.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from statewise.definition.agent_rules import agent_of
from statewise.definition.model import Definition
from statewise.engine.budget import NOTHING, Spend
from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.replay.fold import Folded, Need
from statewise.replay.record import Inputs, Review, enters, path_of, spend_of

JSON = Any
NEEDS = "needs"
"""The status an item is counted under "after" when its new path needs an unrecorded result."""


@dataclass(frozen=True, slots=True)
class Step:
    """One entry into a state, and why: the guard that chose it, or the row's note."""

    state: str | None
    condition: str | None = None
    values: Mapping[str, JSON] = field(default_factory=dict)
    note: str | None = None
    rejected: tuple[Mapping[str, JSON], ...] = ()

    def describe(self) -> str:
        """``review [intake.score >= 70: intake.score=65]``, for a report.

        An ``else`` names the guards it found false, with what they read.
        """
        if self.state is None:
            return "(no further step)"
        if self.condition == "else" and self.rejected:
            guards = "; ".join(
                f"not {g.get('condition')}: {_values(g.get('values') or {})}" for g in self.rejected
            )
            return f"{self.state} [else, {guards}]"
        if self.condition is not None:
            return f"{self.state} [{self.condition}: {_values(self.values)}]"
        return f"{self.state} ({self.note})" if self.note else self.state


@dataclass(frozen=True, slots=True)
class Difference:
    """Where a path first changes: the nth state entered, before and after.

    ``since`` is the last state both paths entered (None when they differ from the start).
    """

    index: int
    since: str | None
    before: Step
    after: Step

    def describe(self) -> str:
        """``after assess: was review [...], now auto_approved [...]``."""
        where = f"after {self.since}: " if self.since is not None else ""
        return f"{where}was {self.before.describe()}, now {self.after.describe()}"


@dataclass(frozen=True, slots=True)
class ItemReplay:
    """One item before (as recorded) and after (as the new definition would take it)."""

    workflow: str
    key: str
    version: int
    before: tuple[str, str]
    after: tuple[str, str]
    before_path: tuple[str, ...]
    after_path: tuple[str, ...]
    difference: Difference | None
    need: Need | None
    cost_before: Spend
    cost_after: Spend
    tasks_before: tuple[tuple[str, int, str], ...]
    tasks_after: tuple[tuple[str, int, str], ...]
    reviews: Mapping[tuple[str, int], Review]
    refused: tuple[str, ...] = ()
    stopped: str | None = None


@dataclass(frozen=True, slots=True)
class Advice:
    """What the change does to the reviews of one agent stage.

    ``saved``: reviews in the record the new path no longer asks for; ``overridden_saved``:
    of those, the ones where the reviewer had overridden the agent (a mistake the change would
    have let through); ``added``: reviews the new path asks for that the recorded one never
    opened (nobody decided them: those items wait in the task's queue).
    """

    agent: str
    reviews: int
    agreed: int
    overridden: int
    saved: int
    overridden_saved: int
    added: int
    overridden_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    """The whole what-if: counts before and after, and the items that change."""

    definition: str
    items: tuple[ItemReplay, ...]
    skipped: tuple[str, ...] = ()

    @property
    def endings(self) -> list[tuple[str, str, int, int]]:
        """(state, status, items before, items after), for every state an item ends or waits in."""
        before = Counter(i.before for i in self.items)
        after = Counter(i.after for i in self.items)
        return [(s, st, before[(s, st)], after[(s, st)]) for s, st in sorted(before | after)]

    @property
    def queues(self) -> list[tuple[str, int, int]]:
        """(queue, tasks opened before, tasks opened after)."""
        before = Counter(q for i in self.items for _, _, q in i.tasks_before)
        after = Counter(q for i in self.items for _, _, q in i.tasks_after)
        return [(q, before[q], after[q]) for q in sorted(before | after)]

    @property
    def cost_before(self) -> Spend:
        """What the recorded paths' model calls cost."""
        return _sum(i.cost_before for i in self.items)

    @property
    def cost_after(self) -> Spend:
        """What the recorded calls the new paths reuse cost (a needed call is not priced)."""
        return _sum(i.cost_after for i in self.items)

    @property
    def changed(self) -> list[ItemReplay]:
        """Items whose path or ending changes, or whose new path needs something."""
        return [i for i in self.items if i.difference is not None or i.before != i.after]

    @property
    def needs(self) -> list[ItemReplay]:
        """Items whose new path asks for a command result never recorded."""
        return [i for i in self.items if i.need is not None]


def replay_item(
    item: Item,
    rows: Sequence[HistoryRecord],
    inputs: Inputs,
    folded: Folded,
    old: Definition | None,
    new: Definition,
) -> ItemReplay:
    """Compare one item's record with its fold through ``new``.

    ``old`` is the definition the item ran on (for the queues of its tasks); when the store
    no longer has it, the new definition's queues stand in for states of the same name.
    An item whose new path waits for the very command run it is waiting for in the record
    (still running, or queued) needs nothing: like the record, it waits for that result.
    """
    need = folded.need
    if need is not None and _in_flight(item, need):
        need = None
    after_status = NEEDS if need is not None else str(folded.item.status)
    return ItemReplay(
        workflow=item.workflow,
        key=item.key,
        version=item.version,
        before=(item.state, str(item.status)),
        after=(folded.item.state, after_status),
        before_path=path_of(rows),
        after_path=path_of(folded.history),
        difference=first_difference(rows, folded.history),
        need=need,
        cost_before=spend_of(rows),
        cost_after=spend_of(folded.history),
        tasks_before=_tasks(old or new, rows),
        tasks_after=folded.tasks,
        reviews=inputs.reviews,
        refused=folded.refused,
        stopped=folded.stopped,
    )


def _in_flight(item: Item, need: Need) -> bool:
    return (
        item.status is ItemStatus.ACTIVE
        and (item.state, item.visit) == (need.state, need.visit)
        and (need.branch is not None or item.attempt == need.attempt)
    )


def first_difference(
    before: Sequence[HistoryRecord], after: Sequence[HistoryRecord]
) -> Difference | None:
    """The first state entered differently (or entered on one side only), or None."""
    old, new = _steps(before), _steps(after)
    for index in range(max(len(old), len(new))):
        one = old[index] if index < len(old) else Step(None)
        two = new[index] if index < len(new) else Step(None)
        if one.state != two.state:
            return Difference(index, old[index - 1].state if index else None, one, two)
    return None


def advice(report: Report, new: Definition) -> list[Advice]:
    """Per reviewed agent: reviews the change saves, overridden ones among them, and new ones.

    A review is a task of a state that reviews an agent stage, decided or still open: one the
    recorded path opened and the new one does not is saved, one only the new path opens is
    added. Verdicts come from the recorded decisions (the agreement records).
    """
    reviewed = _reviewed_agents(new)
    rows: dict[str, Counter[str]] = {}
    overridden_keys: dict[str, list[str]] = {}
    for item in report.items:
        before = {(state, visit) for state, visit, _ in item.tasks_before}
        after = {(state, visit) for state, visit, _ in item.tasks_after}
        for review in item.reviews.values():
            counts = rows.setdefault(review.agent, Counter())
            counts["reviews"] += 1
            counts[review.verdict] += 1
        for where in sorted(before ^ after):
            recorded = item.reviews.get(where)
            agent = recorded.agent if recorded is not None else reviewed.get(where[0])
            if agent is None:
                continue
            counts = rows.setdefault(agent, Counter())
            if where in after:
                counts["added"] += 1
                continue
            counts["saved"] += 1
            if recorded is not None and recorded.verdict == "override":
                counts["overridden_saved"] += 1
                overridden_keys.setdefault(agent, []).append(item.key)
    return [
        Advice(
            agent,
            counts["reviews"],
            counts["agree"],
            counts["override"],
            counts["saved"],
            counts["overridden_saved"],
            counts["added"],
            tuple(overridden_keys.get(agent, ())),
        )
        for agent, counts in sorted(rows.items())
    ]


def _reviewed_agents(definition: Definition) -> dict[str, str]:
    """Each task state that reviews an agent stage, and that agent."""
    found: dict[str, str] = {}
    for state in definition.states.values():
        reviews = state.task.reviews if state.task is not None else None
        if reviews is None or reviews.state not in definition.states:
            continue
        command = definition.state(reviews.state).command
        agent = None if command is None else agent_of(command)
        if agent is not None:
            found[state.name] = agent
    return found


def _steps(rows: Sequence[HistoryRecord]) -> list[Step]:
    return [
        Step(row.to_state, row.condition, row.values, row.note, tuple(row.rejected or ()))
        for row in rows
        if enters(row)
    ]


def _tasks(
    definition: Definition, rows: Sequence[HistoryRecord]
) -> tuple[tuple[str, int, str], ...]:
    """The (state, visit, queue) of every task the recorded path opened."""
    visits: Counter[str] = Counter()
    opened: list[tuple[str, int, str]] = []
    for state in path_of(rows):
        visits[state] += 1
        found = definition.states.get(state)
        if found is not None and found.task is not None:
            opened.append((state, visits[state], found.task.queue))
    return tuple(opened)


def _sum(spends: Iterable[Spend]) -> Spend:
    total = NOTHING
    for spend in spends:
        total = total.plus(spend)
    return total


def _values(values: Mapping[str, JSON]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items()) or "-"
