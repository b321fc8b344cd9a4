"""Graph questions about a definition: where an item can go, and which states form loops.

Pure functions over the transition table, used by validation; kept apart so the rules read as
rules and the algorithms as algorithms.
"""

from __future__ import annotations

from collections.abc import Mapping

from statewise.definition.model import Definition, State, StateKind


def successors(definition: Definition, state: State) -> list[str]:
    """Where an item can go from ``state``, including the escalation after failures.

    A state that runs an agent can also go where its budgets send a spent item.
    """
    found = targets(state)
    if fails(state) or state.max_visits is not None:
        found.append(definition.escalation)
    if state.task is not None and state.task.due is not None:
        found.append(state.task.escalate_to or definition.escalation)
    for branch in state.parallel.branches if state.parallel is not None else ():
        for step in branch.tasks:  # an overdue branch task goes there (else the join decides)
            if step.task is not None and step.task.due and step.task.escalate_to:
                found.append(step.task.escalate_to)
    if runs_agent(state):
        for budget in (state.budget, definition.budget):
            if budget is not None:
                found.append(budget.on_exceeded or definition.escalation)
    return found


def runs_agent(state: State) -> bool:
    """Whether ``state`` runs an agent, as its own command or in a parallel branch."""
    commands = [state.command] if state.command is not None else []
    if state.parallel is not None:
        commands += [c for b in state.parallel.branches for c in b.commands]
        if state.parallel.map_command is not None:
            commands.append(state.parallel.map_command)
    return any(command.runs_agent for command in commands)


def fails(state: State) -> bool:
    """Whether something in ``state`` can fail and so route to ``error`` or the escalation."""
    return state.command is not None or state.parallel is not None


def targets(state: State) -> list[str]:
    """Targets of transitions and ``on_exhausted``; none from a final state, items end there."""
    if state.kind is StateKind.FINAL:
        return []
    targets = [t.target for t in state.transitions]
    return [*targets, state.on_exhausted] if state.on_exhausted is not None else targets


def strongly_connected(nodes: list[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm without recursion, so long chains of states cannot overflow the stack."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            child = next(successors, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    components.append(_pop_component(stack, on_stack, node))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(edges[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    component: list[str] = []
    while True:
        node = stack.pop()
        on_stack.discard(node)
        component.append(node)
        if node == root:
            return component
