"""Human tasks in the step: a person's decision, and the task's reminder and due time.

Entering a ``kind: human`` state opens a task (``moves``); this module is
what happens to it next. A decision fires its outcome like an event, with who decided, the
comment and the form data kept in the context and the audit row. The reminder only marks the
task; the due time expires it and sends the item to the task's escalation target.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from statewise.definition.agent_rules import agent_of
from statewise.definition.model import Review
from statewise.engine.builder import StepBuilder
from statewise.engine.effects import RemindTask
from statewise.engine.events import TASK_DUE_TIMER, TaskDecided, TimerFired
from statewise.engine.item import ItemStatus
from statewise.engine.moves import enter, fire
from statewise.engine.result import Hop, Outcome, StepResult
from statewise.errors import InvalidEventError

JSON = Any


def decide(builder: StepBuilder, event: TaskDecided) -> StepResult:
    """Fire the outcome a person chose; InvalidEventError when the task is not open."""
    item, state = builder.original, builder.state
    if item.state != event.state or item.visit != event.visit:
        raise InvalidEventError(
            f"the task of {event.state!r} (visit {event.visit}) is no longer open: item "
            f"{item.key!r} has moved on to {item.state!r}"
        )
    if state.task is None or item.status is not ItemStatus.WAITING:
        raise InvalidEventError(
            f"item {item.key!r} in state {state.name!r} ({item.status.value}) has no open task"
        )
    decision = decision_of(builder, event, state.outcomes, f"task {state.name!r}")
    builder.set((state.task.result,), decision)
    builder.close_task("decided", event.actor, event.outcome, event.comment, event.data)
    hop = decision_hop(builder, event, decision, state.task.reviews)
    if not fire(builder, event.outcome, hop):
        raise InvalidEventError(
            f"outcome {event.outcome!r} reached item {item.key!r} in state {state.name!r}, but "
            f"none of its conditions held, so nothing changed"
        )
    return builder.result()


def decision_of(
    builder: StepBuilder, event: TaskDecided, outcomes: tuple[str, ...], where: str
) -> dict[str, JSON]:
    """The decision as the context keeps it (a human state's task and a branch's alike).

    InvalidEventError names the outcomes ``where`` offers when the person chose another.
    """
    if event.outcome not in outcomes:
        close = difflib.get_close_matches(event.outcome, outcomes, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidEventError(
            f"{event.outcome!r} is not an outcome of {where} (choose from: "
            f"{', '.join(outcomes)}){hint}"
        )
    return {
        "outcome": event.outcome,
        "comment": event.comment,
        "data": event.data,
        "by": event.actor,
        "at": builder.now,
    }


def decision_hop(
    builder: StepBuilder,
    event: TaskDecided,
    decision: dict[str, JSON],
    reviews: Review | None,
    branch: str | None = None,
) -> Hop:
    """The audit hop of a person's decision, with the review it grades (if any)."""
    return Hop(
        event=event.outcome,
        kind="task",
        actor=event.actor,
        branch=branch,
        event_data=decision,
        decision={
            "task_id": event.task_id,
            "outcome": event.outcome,
            "comment": event.comment,
            "data": event.data,
            **review_of(builder, reviews, event.outcome),
        },
        output=decision,
    )


def review_of(builder: StepBuilder, reviews: Review | None, outcome: str) -> dict[str, JSON]:
    """``{"review": ...}``: how this decision grades the agent stage the task reviews.

    The audit row keeps what a later replay of thresholds needs beside the item and the
    time: the verdict, the score as the context held it when the task was decided, and the
    visit of the reviewed state it grades (whose own row holds the agent's output). Empty
    when the task reviews nothing, or when the agent has no result for this item (it never
    ran, or failed and routed here on ``error``): there is no call of the agent to grade.
    """
    if reviews is None:
        return {}
    visit = builder.visits.get(reviews.state, 0)
    command = builder.definition.state(reviews.state).command
    agent = None if command is None else agent_of(command)
    if not visit or command is None or agent is None or command.result not in builder.context:
        return {}
    review: dict[str, JSON] = {
        "agent": agent,
        "state": reviews.state,
        "visit": visit,
        "verdict": reviews.verdict(outcome).value,
    }
    score = _score(builder.context, reviews.score)
    if score is not None:
        review["score"] = score
    return {"review": review}


def _score(context: Mapping[str, JSON], path: str | None) -> float | None:
    """The number at the dotted ``path`` of the context; None when it holds no number."""
    value: JSON = context
    for name in path.split(".") if path else ():
        value = value.get(name) if isinstance(value, Mapping) else None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return value if is_number and math.isfinite(value) else None


def on_task_timer(builder: StepBuilder, event: TimerFired) -> StepResult:
    """The task's reminder marks it; its due time expires it and escalates the item."""
    state = builder.state
    task = state.task
    if task is None or builder.original.status is not ItemStatus.WAITING:
        return StepResult(builder.original, Outcome.IGNORED)
    if event.name == TASK_DUE_TIMER:
        builder.close_task("expired")
        target = task.escalate_to or builder.definition.escalation
        enter(
            builder,
            target,
            Hop(
                event="task_overdue",
                kind="timer",
                note=f"the task of {state.name!r} was not decided by its due time",
            ),
        )
        return builder.result()
    builder.emit(RemindTask(state.name, builder.visit))
    note = f"the task of {state.name!r} is still open; reminder due"
    builder.record(Hop(event="task_reminder", kind="timer", note=note), to_state=state.name)
    return builder.result()
