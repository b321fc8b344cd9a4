"""People's tasks in parallel branches: a decision, and a task's reminder and due time.

A branch step with ``task:`` opens a task when the branch reaches it (``moves.start_step``).
It belongs to (item, state visit, branch key): a decision on it resumes only that branch,
which goes on to its next step or succeeds, and the join counts it as for a command branch.
Once the join is settled, the tasks still open are cancelled (``moves.settle_join``), so a
late decision on one finds it closed. The reminder marks the task; at its due time the task
expires and the branch fails, unless the task names ``escalate_to``: then the item goes
there, as from an overdue human state.
"""

from __future__ import annotations

from typing import Any

from statewise.definition.model import BranchStep, State
from statewise.engine.branches import declared_branch, run_at
from statewise.engine.builder import StepBuilder
from statewise.engine.effects import RemindTask
from statewise.engine.events import TASK_DUE_TIMER, TaskDecided, TimerFired
from statewise.engine.item import BranchRun, BranchStatus
from statewise.engine.moves import enter, finish_step, launch_pending, note_waiting, settle_join
from statewise.engine.result import Hop, Outcome, StepResult
from statewise.engine.tasks import decision_hop, decision_of
from statewise.errors import InvalidEventError

JSON = Any


def decide_branch(builder: StepBuilder, event: TaskDecided) -> StepResult:
    """Keep a person's decision on a branch's task and move that branch on.

    InvalidEventError, changing nothing, when the task is not open any more (the item moved
    on, or the join was settled without it) or the outcome is not one of the step's.
    """
    item, state, key = builder.original, builder.state, event.branch
    assert key is not None  # the step sends only branch decisions here
    where = f"the task of branch {key!r} in state {event.state!r} (visit {event.visit})"
    if item.state != event.state or item.visit != event.visit:
        raise InvalidEventError(
            f"{where} is no longer open: item {item.key!r} has moved on to {item.state!r}"
        )
    found = _waiting(builder, state, key)
    if found is None:
        raise InvalidEventError(
            f"{where} is not open: its branch is not waiting for a decision (the join may "
            f"have been met without it)"
        )
    run, step = found
    assert step.task is not None
    decision = decision_of(builder, event, step.outcomes, where)
    branch = declared_branch(state, run.name)
    sequence = branch is not None and bool(branch.steps)
    builder.set(
        (step.task.result, run.name, step.name) if sequence else (step.task.result, run.name),
        decision,
    )
    builder.close_task("decided", event.actor, event.outcome, event.comment, event.data, branch=key)
    builder.record(decision_hop(builder, event, decision, step.task.reviews, branch=key))
    finish_step(builder, state, run)
    note_waiting(builder)
    return builder.result()


def on_branch_task_timer(builder: StepBuilder, event: TimerFired) -> StepResult:
    """A branch task's reminder marks it; its due time expires it and fails the branch."""
    state, key = builder.state, event.branch
    found = None if key is None else _waiting(builder, state, key)
    if found is None:  # decided or cancelled meanwhile: its timers are left to lapse
        return StepResult(builder.original, Outcome.IGNORED)
    run, step = found
    assert step.task is not None and key is not None
    if event.name != TASK_DUE_TIMER:
        builder.emit(RemindTask(state.name, builder.visit, key))
        note = f"the task of branch {key!r} is still open; reminder due"
        builder.record(Hop(event="task_reminder", kind="timer", branch=key, note=note))
        return builder.result()
    builder.close_task("expired", branch=key)
    note = f"the task of branch {key!r} was not decided by its due time"
    if step.task.escalate_to is not None:
        hop = Hop(event="task_overdue", kind="timer", branch=key, note=note)
        enter(builder, step.task.escalate_to, hop)
        return builder.result()
    builder.update_branch(run, BranchStatus.FAILED)
    hop = Hop(
        event="task_overdue",
        kind="timer",
        branch=key,
        error={"kind": "timeout", "message": note},
    )
    builder.record(hop)
    if not settle_join(builder, state, hop):
        launch_pending(builder, state)
    note_waiting(builder)
    return builder.result()


def _waiting(builder: StepBuilder, state: State, key: str) -> tuple[BranchRun, BranchStep] | None:
    """The run waiting on the task ``key`` of ``state``, and its step; None if none waits."""
    parallel = state.parallel
    found = None if parallel is None else parallel.branch_task(key)
    if found is None:
        return None
    run = run_at(state, builder.branches, key)
    if run is None or run.status is not BranchStatus.WAITING or run.step != found[1]:
        return None
    return run, found[2]
