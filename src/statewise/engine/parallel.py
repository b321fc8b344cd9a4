"""Parallel states: fan out branches, keep within the concurrency limit, and join.

Each branch is a command run (one per fixed branch, or one per element of a list in the
context). Its result lands under ``context[result][branch]``. The join decides when the state
is complete (``all``, ``any``, ``n_of``) or can no longer complete, which is an ``error``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from statewise.definition.model import (
    DONE_EVENT,
    ERROR_EVENT,
    Command,
    ErrorKind,
    JoinKind,
    Parallel,
    State,
)
from statewise.engine.defects import ROUTABLE_DEFECTS, DefectKind, defect_kind
from statewise.engine.events import CommandFailed, CommandSucceeded
from statewise.engine.item import BranchRun, BranchStatus
from statewise.engine.result import Hop, Outcome, StepResult
from statewise.engine.retry import should_retry
from statewise.errors import ConditionError

if TYPE_CHECKING:
    from statewise.engine.builder import StepBuilder

JSON = Any


def fan_out(builder: StepBuilder, state: State) -> None:
    """Create the state's branches, clear their result keys, and launch the first ones."""
    parallel = state.parallel
    assert parallel is not None, "validated at load: parallel states declare branches"
    if parallel.over is not None:
        hop = Hop(event="enter", kind="parallel")
        try:
            elements = parallel.over.evaluate(builder.facts(hop))
        except ConditionError as exc:
            builder.fail_defect(hop, DefectKind.CONDITION, str(exc))
            return
        if not isinstance(elements, list):
            builder.fail_defect(
                hop,
                DefectKind.CONDITION,
                f"map over `{parallel.over.source}` gave {type(elements).__name__}, not a list",
            )
            return
        runs = _map_branches(elements)
    else:
        runs = tuple(BranchRun(name=branch.name) for branch in parallel.branches)
    for result_key in _result_keys(parallel):
        builder.set((result_key,), {})
    builder.set_branches(runs)
    if not _settle(builder, state):
        _launch_pending(builder, state)


def on_branch_success(builder: StepBuilder, event: CommandSucceeded) -> StepResult:
    """Store a branch's result, then join or launch the next branch."""
    run = _running(builder, event.branch, event.attempt)
    if run is None:
        return builder.ignore_result(event)
    state = builder.state
    command = _command(state, run.name)
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
    if not _settle(builder, state):
        _launch_pending(builder, state)
    return builder.result()


def on_branch_failure(builder: StepBuilder, event: CommandFailed) -> StepResult:
    """Retry a failed branch within its budget; past it, the branch fails and the join decides."""
    run = _running(builder, event.branch, event.attempt)
    if run is None:
        return builder.ignore_result(event)
    state = builder.state
    command = _command(state, run.name)
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
        builder.cut_short(hop)
        return builder.result()
    if should_retry(command.retry, event.error_kind, event.attempt):
        builder.update_branch(run, BranchStatus.RETRYING)
        builder.schedule_retry(command, event.attempt, hop)
        return builder.result()
    builder.update_branch(run, BranchStatus.FAILED)
    builder.record(hop)
    if not _settle(builder, state, hop):
        _launch_pending(builder, state)
    return builder.result()


def on_branch_retry(builder: StepBuilder, branch: str) -> StepResult:
    """Run a branch's next attempt once its backoff is over."""
    run = next((r for r in builder.branches if r.name == branch), None)
    if run is None or run.status is not BranchStatus.RETRYING:
        return StepResult(builder.original, Outcome.IGNORED)
    command = _command(builder.state, run.name)
    attempt = run.attempt + 1
    builder.update_branch(run, BranchStatus.RUNNING, attempt)
    builder.record(
        Hop(event="retry", kind="timer", command=command.name, branch=run.name, attempt=attempt)
    )
    builder.run_command(command, attempt, branch=run.name, input=run.input)
    return builder.result()


def _map_branches(elements: list[JSON]) -> tuple[BranchRun, ...]:
    """Name each branch by its element when that is a unique scalar, else by its position."""
    names = [_scalar_name(e) for e in elements]
    if "" in names or len(set(names)) != len(names):
        names = [str(i) for i in range(len(elements))]
    return tuple(BranchRun(name=n, input=e) for n, e in zip(names, elements, strict=True))


def _result_keys(parallel: Parallel) -> list[str]:
    """Every key the state's branches write, reset on each visit even when nothing fans out."""
    if parallel.map_command is not None:
        return [parallel.map_command.result]
    return list(dict.fromkeys(branch.command.result for branch in parallel.branches))


def _scalar_name(element: JSON) -> str:
    if isinstance(element, str | int) and not isinstance(element, bool):
        return str(element)
    return ""


def _command(state: State, branch: str) -> Command:
    parallel = state.parallel
    assert parallel is not None
    if parallel.map_command is not None:
        return parallel.map_command
    return next(b.command for b in parallel.branches if b.name == branch)


def _running(builder: StepBuilder, branch: str | None, attempt: int) -> BranchRun | None:
    for run in builder.branches:
        if run.name == branch and run.status is BranchStatus.RUNNING and run.attempt == attempt:
            return run
    return None


def _launch_pending(builder: StepBuilder, state: State) -> None:
    parallel = state.parallel
    assert parallel is not None
    runs = builder.branches
    running = sum(r.status in (BranchStatus.RUNNING, BranchStatus.RETRYING) for r in runs)
    limit = parallel.concurrency or len(runs)
    for run in runs:
        if running >= limit:
            break
        if run.status is BranchStatus.PENDING:
            builder.update_branch(run, BranchStatus.RUNNING, 1)
            command = _command(state, run.name)
            if not builder.run_command(command, 1, branch=run.name, input=run.input):
                return  # a spent budget sent the item elsewhere
            running += 1


def _settle(builder: StepBuilder, state: State, failure: Hop | None = None) -> bool:
    """Fire ``done`` once the join is met, ``error`` once it never can be; True if it fired.

    When the branch ``failure`` that made the join impossible failed with a defect (an
    unusable result, an unexpected exception), the ``error`` carries that defect's kind, so
    an unhandled one fails the item instead of escalating it.
    """
    parallel = state.parallel
    assert parallel is not None
    runs = builder.branches
    succeeded = sum(r.status is BranchStatus.SUCCEEDED for r in runs)
    failed = [r.name for r in runs if r.status is BranchStatus.FAILED]
    needed = {
        JoinKind.ALL: len(runs),
        JoinKind.ANY: min(1, len(runs)),
        JoinKind.N_OF: parallel.n_of or len(runs),
    }[parallel.join]
    if succeeded >= needed:
        met = Hop(event=DONE_EVENT, kind="join", note=f"join {parallel.join} met")
        builder.fire(DONE_EVENT, met)
        return True
    if len(runs) - len(failed) < needed:
        message = f"join {parallel.join} cannot be met; failed branches: {failed}"
        error = _join_error(message, failure)
        builder.fire(ERROR_EVENT, Hop(event=ERROR_EVENT, kind="parallel", error=error))
        return True
    return False


def _join_error(message: str, failure: Hop | None) -> dict[str, str]:
    """The join's ``error``: kind ``join``, or the defect of the branch that made it fail."""
    cause = None if failure is None else failure.error
    if failure is None or cause is None or defect_kind(cause) not in ROUTABLE_DEFECTS:
        return {"kind": "join", "message": message}
    return {"kind": cause["kind"], "message": f"{message}; {failure.branch}: {cause['message']}"}
