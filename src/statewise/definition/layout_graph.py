"""A workflow's graph as plain data, for a layout engine to place and a page to draw.

The dashboard lays graphs out in the browser with ELK (``static/graph.js``); what it lays out
is this description, built from :func:`statewise.definition.diagrams.edge_table`, the one edge
table every diagram draws, so the picture agrees with the engine. Each edge also says whether
it is a back edge (it returns to a state the item already passed on a first walk from the
initial state), which the page draws apart so that loops read as loops. Pure: live figures
(counts, alert levels, links) are joined in by the service.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypedDict

from statewise.definition.diagrams import Edge, edge_table, parallel_summary
from statewise.definition.model import Definition, StateKind

__all__ = ["GraphEdge", "GraphNode", "LayoutGraph", "back_edges", "layout_graph"]


class GraphNode(TypedDict):
    """One state: ``id`` is its name (free text, never parsed), ``detail`` a fan-out's lines.

    ``kind`` is the state's kind, or ``missing`` for a target no state defines.
    """

    id: str
    label: str
    kind: str
    description: str
    detail: list[str]
    initial: bool
    terminal: bool
    escalation: bool


class GraphEdge(TypedDict):
    """One arrow, as ``diagrams.Edge`` has it; ``back`` marks a return to an earlier state."""

    id: str
    source: str
    target: str
    label: str
    kind: str
    back: bool


class LayoutGraph(TypedDict):
    """Everything a page needs to lay out and draw one workflow version."""

    workflow: str
    version: int
    nodes: list[GraphNode]
    edges: list[GraphEdge]


def layout_graph(definition: Definition) -> LayoutGraph:
    """The states (in written order, then any undefined target) and every edge of ``definition``.

    Edge ids are their position in the edge table (``e0``, ``e1``, ...): state names are
    free text and two edges can join the same pair of states.
    """
    edges = edge_table(definition)
    back = back_edges(definition.initial, list(definition.states), edges)
    names = dict.fromkeys([*definition.states, definition.initial, *(e.target for e in edges)])
    return {
        "workflow": definition.name,
        "version": definition.version,
        "nodes": [_node(definition, name) for name in names],
        "edges": [
            {
                "id": f"e{index}",
                "source": edge.source,
                "target": edge.target,
                "label": edge.label,
                "kind": edge.kind.value,
                "back": index in back,
            }
            for index, edge in enumerate(edges)
        ],
    }


def _node(definition: Definition, name: str) -> GraphNode:
    state = definition.states.get(name)
    return {
        "id": name,
        "label": name,
        "kind": state.kind.value if state is not None else "missing",
        "description": state.description if state is not None else "",
        "detail": parallel_summary(state) if state is not None else [],
        "initial": name == definition.initial
        or (state is not None and state.kind is StateKind.INITIAL),
        "terminal": state is not None and state.is_final,
        "escalation": name == definition.escalation,
    }


def back_edges(initial: str, order: Sequence[str], edges: Iterable[Edge]) -> set[int]:
    """Positions of the edges that close a loop on a depth-first walk in written order.

    The walk starts at ``initial`` and then at each state not reached yet, in ``order``; an
    edge to a state still on the walk's path (a self-loop included) is a back edge. Iterative,
    so a long chain of states cannot exhaust the stack.
    """
    outgoing: dict[str, list[tuple[int, str]]] = {}
    for index, edge in enumerate(edges):
        outgoing.setdefault(edge.source, []).append((index, edge.target))
    found: set[int] = set()
    seen: set[str] = set()
    on_path: set[str] = set()
    for root in dict.fromkeys([initial, *order]):
        if root in seen:
            continue
        seen.add(root)
        on_path.add(root)
        stack = [(root, iter(outgoing.get(root, [])))]
        while stack:
            name, pending = stack[-1]
            step = next(pending, None)
            if step is None:
                stack.pop()
                on_path.discard(name)
                continue
            index, target = step
            if target in on_path:
                found.add(index)
            elif target not in seen:
                seen.add(target)
                on_path.add(target)
                stack.append((target, iter(outgoing.get(target, []))))
    return found
