"""A parallel state's branches, as data: which a visit runs, their commands, their keys.

Pure lookups shared by entering a parallel state (``moves``) and handling its branches'
results (``parallel``).
"""

from __future__ import annotations

from typing import Any

from statewise.definition.model import Command, Definition, Parallel, State
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
    return list(dict.fromkeys(branch.command.result for branch in parallel.branches))


def branch_command(state: State, branch: str) -> Command:
    """The command branch ``branch`` of parallel ``state`` runs."""
    parallel = state.parallel
    assert parallel is not None
    if parallel.map_command is not None:
        return parallel.map_command
    return next(b.command for b in parallel.branches if b.name == branch)


def command_name(definition: Definition, state: str, branch: str | None) -> str | None:
    """The command a (state, branch) runs, if the definition still has it."""
    found = definition.states.get(state)
    if found is None:
        return None
    if branch is None:
        return found.command.name if found.command else None
    parallel = found.parallel
    if parallel is None:
        return None
    if parallel.map_command is not None:
        return parallel.map_command.name
    return next((b.command.name for b in parallel.branches if b.name == branch), None)


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
