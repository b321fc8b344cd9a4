"""The states a filter may name: a typo in ``--state`` is refused with the states there are.

An empty listing must not be the only answer to ``--state reveiw``: the state is looked up
in the stored definitions and, when none has it, the error names the workflow's states and
the closest one.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Set

from statewise.definition import loads
from statewise.errors import DefinitionError, NotFoundError
from statewise.store.base import Store

# How alike a name must be (0..1) to be suggested; a prefix of the name counts as a match.
_LIKE = 0.75


async def check_filter(
    store: Store, workflow: str | None, version: int | None, state: str | None
) -> None:
    """NotFoundError when ``workflow`` is not stored or no version of it has ``state``.

    Without ``workflow`` the state must be in some stored workflow. A version that no
    longer loads leaves its states unknown, and then nothing is refused.
    """
    stored = [
        w
        for w in await store.workflows()
        if (workflow is None or w.name == workflow) and (version is None or w.version == version)
    ]
    if workflow is not None and not stored:
        names = ", ".join(sorted({w.name for w in await store.workflows()})) or "none"
        raise NotFoundError(f"no workflow {workflow!r} is stored (stored: {names})")
    if state is None:
        return
    states: dict[str, set[str]] = {}
    for found in stored:
        try:
            definition = loads(found.source, file=found.file)
        except DefinitionError:
            return
        states.setdefault(found.name, set()).update(definition.states)
    label = workflow if workflow is None or version is None else f"{workflow}@{version}"
    problem = state_problem(state, states, label)
    if problem is not None:
        raise NotFoundError(problem)


def _closest(state: str, names: list[str]) -> list[str]:
    """The name ``state`` most likely misspells, or begins: at most one, none if far off."""

    def likeness(name: str) -> float:
        whole = difflib.SequenceMatcher(None, state, name).ratio()
        start = difflib.SequenceMatcher(None, state, name[: len(state)]).ratio()
        return max(whole, start)

    best = max(names, key=likeness, default=None)
    return [best] if best is not None and likeness(best) >= _LIKE else []


def state_problem(state: str, states: Mapping[str, Set[str]], workflow: str | None) -> str | None:
    """Why ``state`` matches nothing, naming the states there are; None when some has it.

    ``states`` holds each workflow's state names (those of the filter's workflow alone when
    it names one, as ``workflow``: a name or ``name@version``).
    """
    if any(state in names for names in states.values()):
        return None
    every = sorted({name for names in states.values() for name in names})
    close = _closest(state, every)
    if workflow is not None:
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (
            f"workflow {workflow!r} has no state {state!r} (its states: {', '.join(every)}){hint}"
        )
    if not close:
        return f"no stored workflow has a state {state!r}; `-w NAME` lists a workflow's states"
    holders = ", ".join(sorted(name for name, names in states.items() if close[0] in names))
    return f"no stored workflow has a state {state!r}; did you mean {close[0]!r} (in {holders})?"
