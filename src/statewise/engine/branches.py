"""A parallel state's branches, as data: which a visit runs, their steps, their keys.

Pure lookups shared by entering a parallel state (``moves``) and handling its branches'
results and decisions (``parallel``, ``branch_tasks``). A branch runs a sequence of steps
(one, unless declared with ``steps:``); the step it is at is named by its key: the branch's
name, or ``branch.step`` in a sequence. Commands, timers and tasks carry that key, so a
result, a timer or a decision reaches only the step that asked for it.
"""

from __future__ import annotations

from typing import Any

from statewise.definition.model import (
    Branch,
    BranchStep,
    Command,
    Definition,
    Parallel,
    State,
)
from statewise.engine.defects import ROUTABLE_DEFECTS, defect_kind
from statewise.engine.item import BranchRun
from statewise.engine.result import Hop

JSON = Any


def fixed_branches(parallel: Parallel) -> tuple[BranchRun, ...]:
    """One pending run per branch the state declares."""
    return tuple(BranchRun(name=branch.name) for branch in parallel.branches)


def map_branches(elements: list[JSON]) -> tuple[BranchRun, ...]:
    """One pending run per element, named by the element if a unique scalar, else by index."""
    names = [_scalar_name(e) for e in elements]
    if "" in names or len(set(names)) != len(names):
        names = [str(i) for i in range(len(elements))]
    return tuple(BranchRun(name=n, input=e) for n, e in zip(names, elements, strict=True))


def result_keys(parallel: Parallel) -> list[str]:
    """Every key the state's branches write, reset on each visit even when nothing fans out."""
    if parallel.map_command is not None:
        return [parallel.map_command.result]
    return list(dict.fromkeys(branch.result for branch in parallel.branches))


def declared_branch(state: State, name: str) -> Branch | None:
    """The fixed branch ``name`` of parallel ``state``; None for a map's branches."""
    parallel = state.parallel
    assert parallel is not None
    return next((b for b in parallel.branches if b.name == name), None)


def step_of(state: State, run: BranchRun, index: int | None = None) -> BranchStep:
    """The step branch ``run`` is at (or step ``index`` of it)."""
    parallel = state.parallel
    assert parallel is not None
    if parallel.map_command is not None:
        return BranchStep(run.name, command=parallel.map_command)
    branch = declared_branch(state, run.name)
    assert branch is not None  # runs are made from the state's own branches
    return branch.sequence[run.step if index is None else index]


def step_key(state: State, run: BranchRun, index: int | None = None) -> str:
    """The key of the step ``run`` is at: the branch's name, or ``branch.step``."""
    branch = declared_branch(state, run.name) if state.parallel else None
    if branch is None or not branch.steps:
        return run.name
    return branch.task_key(step_of(state, run, index).name)


def result_path(state: State, run: BranchRun) -> tuple[str, ...]:
    """Where the result of the step ``run`` is at lands in the context."""
    step = step_of(state, run)
    branch = declared_branch(state, run.name)
    if branch is not None and branch.steps:
        return (branch.result, run.name, step.name)
    return (step.result, run.name)


def is_last_step(state: State, run: BranchRun) -> bool:
    """Whether ``run`` is at the last step of its branch."""
    branch = declared_branch(state, run.name)
    return branch is None or run.step + 1 >= len(branch.sequence)


def run_at(state: State, runs: tuple[BranchRun, ...], key: str | None) -> BranchRun | None:
    """The run whose current step has key ``key``."""
    return next((run for run in runs if step_key(state, run) == key), None)


def branch_command(state: State, run: BranchRun) -> Command:
    """The command the step ``run`` is at runs."""
    command = step_of(state, run).command
    assert command is not None, "only a run at a command step runs or retries one"
    return command


def command_name(definition: Definition, state: str, key: str | None) -> str | None:
    """The command a (state, branch key) runs, if the definition still has it."""
    found = definition.states.get(state)
    if found is None:
        return None
    if key is None:
        return found.command.name if found.command else None
    parallel = found.parallel
    if parallel is None:
        return None
    if parallel.map_command is not None:
        return parallel.map_command.name
    branch = next((b for b in parallel.branches if b.name == key.partition(".")[0]), None)
    for step in branch.sequence if branch is not None else ():
        if step.command is not None and branch is not None and branch.task_key(step.name) == key:
            return step.command.name
    return None


def join_error(message: str, failure: Hop | None) -> dict[str, str]:
    """The join's ``error``: kind ``join``, or the defect of the branch that made it fail."""
    cause = None if failure is None else failure.error
    if failure is None or cause is None or defect_kind(cause) not in ROUTABLE_DEFECTS:
        return {"kind": "join", "message": message}
    return {"kind": cause["kind"], "message": f"{message}; {failure.branch}: {cause['message']}"}


def _scalar_name(element: JSON) -> str:
    if isinstance(element, str | int) and not isinstance(element, bool):
        return str(element)
    return ""
