"""An item's recorded inputs, read back out of its audit trail, keyed so a new path finds them.

Every row that consumed something keeps it (``HistoryRecord.output``): the start data, a
command's or branch's result, an external event's data, a task's decision. Failures, timers and
operator actions leave rows of their own. This module turns those rows back into the events
that caused them, keyed by what a replay through another definition can ask for:

- a command's result or failure by (state, visit, branch, attempt);
- a task's decision, and a transition's, due time's or reminder's timer by (state, visit);
- external events and operator actions in the order they were recorded.

``visit`` is the per-state ordinal: the nth time the item entered that state (as
``Item.visits`` counts), never a global counter, so a path that skips or repeats other states
still finds the results of the nth round of a loop. Rows that carry no ``visit`` of their own
(failures, timers) get it by walking the trail and counting entries into each state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from statewise.definition.model import ErrorKind
from statewise.engine.budget import NOTHING, Spend, usage_spend
from statewise.engine.buffer import KEPT
from statewise.engine.builder import RESULT_IGNORED
from statewise.engine.events import (
    RETRY_TIMER,
    TASK_DUE_TIMER,
    TASK_REMINDER_TIMER,
    CommandFailed,
    CommandSucceeded,
    Event,
    External,
    Operate,
    Operation,
    TaskDecided,
    TimerFired,
)
from statewise.engine.item import HistoryRecord
from statewise.engine.timeouts import TIMEOUT_CAUSE

JSON = Any
ResultKey = tuple[str, int, str | None, int]
"""(state, visit, branch, attempt) of one command attempt."""
VisitKey = tuple[str, int]
"""(state, visit): one visit of one state."""
TaskKey = tuple[str, int, str | None]
"""(state, visit, branch): one task of one state visit (a branch's, or the state's own)."""
TimerKey = tuple[str, str, int, str | None]
"""(timer name, state, visit, branch)."""

# The audit events a task's timers leave, and the timers that fired them.
_TASK_TIMER_ROWS = {"task_overdue": TASK_DUE_TIMER, "task_reminder": TASK_REMINDER_TIMER}
_OPERATIONS = {
    "redrive": Operation.RETRY,
    "moved": Operation.MOVE,
    "resumed": Operation.RESUME,
    "paused": Operation.PAUSE,
    "cancelled": Operation.CANCEL,
}


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded input: the event to deliver, where it sat in the trail and when.

    ``command`` names the command whose result (or failure) it is.
    """

    seq: int
    at: float
    event: Event
    command: str | None = None


@dataclass(frozen=True, slots=True)
class Operated:
    """An operator's action, delivered only where the item stood when the operator acted."""

    seq: int
    at: float
    state: str
    event: Operate


@dataclass(frozen=True, slots=True)
class Review:
    """A reviewer's decision grading an agent stage: which agent, and agree or override."""

    agent: str
    verdict: str
    score: float | None


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything an item's trail says it was given, ready to answer a new path's asks."""

    key: str
    data: dict[str, JSON]
    actor: str
    started_at: float
    results: Mapping[ResultKey, Recorded] = field(default_factory=dict)
    retries: Mapping[ResultKey, Recorded] = field(default_factory=dict)
    decisions: Mapping[TaskKey, Recorded] = field(default_factory=dict)
    timers: Mapping[TimerKey, Recorded] = field(default_factory=dict)
    events: tuple[Recorded, ...] = ()
    operations: tuple[Operated, ...] = ()
    reviews: Mapping[VisitKey, Review] = field(default_factory=dict)


def path_of(rows: Sequence[HistoryRecord]) -> tuple[str, ...]:
    """The states an item entered, in order: what "its path" means in a comparison."""
    return tuple(row.to_state for row in rows if enters(row))


def spend_of(rows: Sequence[HistoryRecord]) -> Spend:
    """What the model calls of these rows cost, late results included."""
    total = NOTHING
    for row in rows:
        spend = usage_spend(row.usage)
        if spend is not None:
            total = total.plus(spend)
    return total


def read_inputs(key: str, rows: Sequence[HistoryRecord]) -> Inputs | None:
    """The inputs in one item's trail, or None when the trail has no start row (pruned)."""
    reader = _Reader()
    for row in rows:
        reader.read(row)
    start = reader.start
    if start is None:
        return None
    return Inputs(
        key=key,
        data=dict(start.output or {}),
        actor=start.actor,
        started_at=start.at,
        results=reader.results,
        retries=reader.retries,
        decisions=reader.decisions,
        timers=reader.timers,
        events=tuple(reader.events),
        operations=tuple(reader.operations),
        reviews=reader.reviews,
    )


def enters(row: HistoryRecord) -> bool:
    """Whether the row entered ``to_state`` (a start, or a move that ended a dwell there)."""
    return row.from_state is None or row.dwell is not None


class _Reader:
    """Walks a trail once, counting entries per state, and files each input it finds."""

    def __init__(self) -> None:
        self.visits: dict[str, int] = {}
        self.start: HistoryRecord | None = None
        self.results: dict[ResultKey, Recorded] = {}
        self.retries: dict[ResultKey, Recorded] = {}
        self.decisions: dict[TaskKey, Recorded] = {}
        self.timers: dict[TimerKey, Recorded] = {}
        self.events: list[Recorded] = []
        self.operations: list[Operated] = []
        self.reviews: dict[VisitKey, Review] = {}

    def read(self, row: HistoryRecord) -> None:
        state = row.from_state
        if state is None:
            if row.event_kind == "start" and self.start is None:
                self.start = row
        elif row.event != RESULT_IGNORED:  # a late result nobody waited for: usage only
            visit = row.visit if row.visit is not None else self.visits.get(state, 0)
            self._file(row, state, visit)
        if enters(row):
            self.visits[row.to_state] = self.visits.get(row.to_state, 0) + 1

    def _file(self, row: HistoryRecord, state: str, visit: int) -> None:
        kind = row.event_kind
        if kind == "command":
            self._command(row, state, visit)
        elif kind == "task" and row.output is not None:
            self._decision(row, state, visit)
        elif kind in ("external", KEPT):  # a kept early event was the sender's input too
            sent = External(row.event, dict(row.output or {}), row.actor)
            self.events.append(Recorded(row.seq, row.at, sent))
        elif kind == "timer":
            self._timer(row, state, visit)
        elif kind == "operator" and row.event in _OPERATIONS:
            operation = _OPERATIONS[row.event]
            target = row.to_state if operation in (Operation.RETRY, Operation.MOVE) else None
            action = Operate(operation, row.note or "replayed", row.actor, target)
            self.operations.append(Operated(row.seq, row.at, state, action))

    def _command(self, row: HistoryRecord, state: str, visit: int) -> None:
        """A result (the row kept it) or a failure of a known kind; anything else is no input."""
        attempt = row.attempt or 1
        key = (state, visit, row.branch, attempt)
        if key in self.results:
            return
        event: Event
        if row.output is not None:
            event = CommandSucceeded(
                state, visit, attempt, row.output, row.duration or 0.0, row.branch, row.usage
            )
        elif row.error is not None and row.error.get("kind") in ErrorKind.__members__.values():
            event = CommandFailed(
                state,
                visit,
                attempt,
                ErrorKind(row.error["kind"]),
                row.error.get("message", ""),
                row.duration or 0.0,
                row.branch,
                row.usage,
                timed_out=row.error.get("cause") == TIMEOUT_CAUSE,
            )
        else:
            return
        self.results[key] = Recorded(row.seq, row.at, event, row.command)

    def _decision(self, row: HistoryRecord, state: str, visit: int) -> None:
        output = row.output if isinstance(row.output, dict) else {}
        decision = row.decision or {}
        task_id = decision.get("task_id")
        event = TaskDecided(
            state,
            visit,
            row.event,
            row.actor,
            str(output.get("comment") or ""),
            dict(output.get("data") or {}),
            task_id if isinstance(task_id, int) else None,
            row.branch,
        )
        self.decisions.setdefault((state, visit, row.branch), Recorded(row.seq, row.at, event))
        review = decision.get("review")
        if isinstance(review, dict) and isinstance(review.get("agent"), str):
            score = review.get("score")
            self.reviews[(state, visit)] = Review(
                review["agent"],
                str(review.get("verdict")),
                float(score) if isinstance(score, int | float) else None,
            )

    def _timer(self, row: HistoryRecord, state: str, visit: int) -> None:
        if row.event == RETRY_TIMER:
            key = (state, visit, row.branch, row.attempt or 1)
            event = TimerFired(RETRY_TIMER, state, visit, row.branch)
            self.retries.setdefault(key, Recorded(row.seq, row.at, event))
            return
        name = _TASK_TIMER_ROWS.get(row.event, row.event)
        fired = TimerFired(name, state, visit, row.branch)
        self.timers.setdefault((name, state, visit, row.branch), Recorded(row.seq, row.at, fired))
