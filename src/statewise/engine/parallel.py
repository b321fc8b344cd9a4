"""Parallel states: what a branch's result, failure or retry timer does to the item.

Each branch is a command run (one per fixed branch, or one per element of a list in the
context), created when the item enters the state (``moves``). Its result lands under
``context[result][branch]``. After each, the join (``moves.settle_join``) decides whether
the state is complete (``all``, ``any``, ``n_of``) or can no longer complete, which is an
``error``; otherwise the next pending branches start.
"""

from __future__ import annotations

from statewise.definition.model import ErrorKind
from statewise.engine.branches import branch_command
from statewise.engine.builder import StepBuilder
from statewise.engine.events import CommandFailed, CommandSucceeded
from statewise.engine.item import BranchRun, BranchStatus
from statewise.engine.moves import launch_pending, run_command, settle_join, stop_cut_short
from statewise.engine.result import Hop, Outcome, StepResult
from statewise.engine.retry import schedule_retry, should_retry


def on_branch_success(builder: StepBuilder, event: CommandSucceeded) -> StepResult:
    """Store a branch's result, then join or launch the next branch."""
    run = _running(builder, event.branch, event.attempt)
    if run is None:
        return builder.ignore_result(event)
    state = builder.state
    command = branch_command(state, run.name)
    builder.set((command.result, run.name), event.result)
    builder.save_conversations(event.conversation)
    builder.update_branch(run, BranchStatus.SUCCEEDED)
    builder.record(
        Hop(
            event="branch_done",
            kind="command",
            command=command.name,
            branch=run.name,
            attempt=event.attempt,
            duration=event.duration,
            usage=event.usage,
            note=event.note,
            output=event.result,
        )
    )
    if not settle_join(builder, state):
        launch_pending(builder, state)
    return builder.result()


def on_branch_failure(builder: StepBuilder, event: CommandFailed) -> StepResult:
    """Retry a failed branch within its budget; past it, the branch fails and the join decides."""
    run = _running(builder, event.branch, event.attempt)
    if run is None:
        return builder.ignore_result(event)
    state = builder.state
    command = branch_command(state, run.name)
    hop = Hop(
        event="branch_failed",
        kind="command",
        command=command.name,
        branch=run.name,
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
    return builder.result()


def on_branch_retry(builder: StepBuilder, branch: str) -> StepResult:
    """Run a branch's next attempt once its backoff is over."""
    run = next((r for r in builder.branches if r.name == branch), None)
    if run is None or run.status is not BranchStatus.RETRYING:
        return StepResult(builder.original, Outcome.IGNORED)
    command = branch_command(builder.state, run.name)
    attempt = run.attempt + 1
    builder.update_branch(run, BranchStatus.RUNNING, attempt)
    builder.record(
        Hop(event="retry", kind="timer", command=command.name, branch=run.name, attempt=attempt)
    )
    run_command(builder, command, attempt, branch=run.name, input=run.input)
    return builder.result()


def _running(builder: StepBuilder, branch: str | None, attempt: int) -> BranchRun | None:
    for run in builder.branches:
        if run.name == branch and run.status is BranchStatus.RUNNING and run.attempt == attempt:
            return run
    return None
