"""Parallel states: what a branch's result, failure or retry timer does to the item.

Each branch runs its steps in order (one step, unless it declares ``steps:``); a step runs
a command (one per fixed branch, or one per element of a list in the context) or opens a
person's task (``branch_tasks``). The branches start when the item enters the state
(``moves``). A step's result lands under ``context[result][branch]`` (in a sequence,
``context[result][branch][step]``). After a branch's last step, the join
(``moves.settle_join``) decides whether the state is complete (``all``, ``any``, ``n_of``)
or can no longer complete, which is an ``error``; otherwise the next pending branches start.
"""

from __future__ import annotations

from statewise.definition.model import ErrorKind
from statewise.engine.branches import branch_command, result_path, run_at
from statewise.engine.builder import StepBuilder
from statewise.engine.events import CommandFailed, CommandSucceeded
from statewise.engine.item import BranchRun, BranchStatus
from statewise.engine.moves import (
    finish_step,
    launch_pending,
    note_waiting,
    run_command,
    settle_join,
    stop_cut_short,
)
from statewise.engine.result import Hop, Outcome, StepResult
from statewise.engine.retry import schedule_retry, should_retry


def on_branch_success(builder: StepBuilder, event: CommandSucceeded) -> StepResult:
    """Store a step's result, then go on to the next step, or join, or launch a branch."""
    run = _running(builder, event.branch, event.attempt)
    if run is None:
        return builder.ignore_result(event)
    state = builder.state
    command = branch_command(state, run)
    builder.set(result_path(state, run), event.result)
    builder.save_conversations(event.conversation)
    builder.record(
        Hop(
            event="branch_done",
            kind="command",
            command=command.name,
            branch=event.branch,
            attempt=event.attempt,
            duration=event.duration,
            usage=event.usage,
            note=event.note,
            output=event.result,
        )
    )
    finish_step(builder, state, run)
    note_waiting(builder)
    return builder.result()


def on_branch_failure(builder: StepBuilder, event: CommandFailed) -> StepResult:
    """Retry a failed branch within its budget; past it, the branch fails and the join decides."""
    run = _running(builder, event.branch, event.attempt)
    if run is None:
        return builder.ignore_result(event)
    state = builder.state
    command = branch_command(state, run)
    hop = Hop(
        event="branch_failed",
        kind="command",
        command=command.name,
        branch=event.branch,
        attempt=event.attempt,
        duration=event.duration,
        error={"kind": str(event.error_kind), "message": event.message},
        usage=event.usage,
        retry_after=event.retry_after,
        note=event.note,
    )
    if event.error_kind is ErrorKind.BUDGET:  # the item's budget is spent: the whole state goes
        stop_cut_short(builder, hop)
        return builder.result()
    if should_retry(command.retry, event.error_kind, event.attempt):
        builder.update_branch(run, BranchStatus.RETRYING)
        schedule_retry(builder, command, event.attempt, hop)
        return builder.result()
    builder.update_branch(run, BranchStatus.FAILED)
    builder.record(hop)
    if not settle_join(builder, state, hop):
        launch_pending(builder, state)
    note_waiting(builder)
    return builder.result()


def on_branch_retry(builder: StepBuilder, key: str) -> StepResult:
    """Run a branch step's next attempt once its backoff is over."""
    state = builder.state
    run = run_at(state, builder.branches, key) if state.parallel is not None else None
    if run is None or run.status is not BranchStatus.RETRYING:
        return StepResult(builder.original, Outcome.IGNORED)
    command = branch_command(state, run)
    attempt = run.attempt + 1
    builder.update_branch(run, BranchStatus.RUNNING, attempt)
    builder.record(
        Hop(event="retry", kind="timer", command=command.name, branch=key, attempt=attempt)
    )
    run_command(builder, command, attempt, branch=key, input=run.input)
    note_waiting(builder)
    return builder.result()


def _running(builder: StepBuilder, key: str | None, attempt: int) -> BranchRun | None:
    """The run whose step at ``key`` waits for this very attempt, if one does."""
    if builder.state.parallel is None:
        return None
    run = run_at(builder.state, builder.branches, key)
    if run is None or run.status is not BranchStatus.RUNNING or run.attempt != attempt:
        return None
    return run
