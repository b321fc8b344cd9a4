"""Diagrams of a workflow definition: Mermaid, Graphviz DOT, and SVG drawn by Graphviz.

Every renderer draws the same edge table, built from ``definition.states[...].transitions`` plus
the two routes the engine adds on its own (a spent visit budget and an unhandled ``error``), so
the pictures can never disagree with each other or with what the engine does. Mermaid and DOT
are text made here; the SVG is that DOT laid out by Graphviz's ``dot`` where it is installed
(:mod:`statewise.definition.graphviz`), and the dashboard lays the same edges out in the
browser (:mod:`statewise.definition.layout_graph`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, assert_never

from statewise.definition.durations import format_duration
from statewise.definition.graphviz import dot_to_svg
from statewise.definition.model import (
    DONE_EVENT,
    ERROR_EVENT,
    Definition,
    JoinKind,
    State,
    StateKind,
    Transition,
)

__all__ = [
    "DiagramFormat",
    "Edge",
    "EdgeKind",
    "edge_table",
    "node_ids",
    "node_label",
    "parallel_summary",
    "render",
    "to_dot",
    "to_mermaid",
    "to_svg",
]


class DiagramFormat(StrEnum):
    """The formats :func:`render` can produce."""

    MERMAID = "mermaid"
    DOT = "dot"
    SVG = "svg"


class EdgeKind(StrEnum):
    """Why an edge exists; renderers style each kind differently."""

    TRANSITION = "transition"
    TIMER = "timer"
    EXHAUSTED = "exhausted"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Edge:
    """One arrow of a diagram: ``source`` to ``target``, with the label every format shows."""

    source: str
    target: str
    label: str
    kind: EdgeKind


def edge_table(definition: Definition) -> list[Edge]:
    """Every edge of the workflow in written order: the one table all renderers draw.

    Besides the written transitions it holds the routes the engine takes on its own: where an
    item goes once a state's visit budget is spent (``on_exhausted``, else the escalation
    state), where a human task's due time sends it (its ``escalate_to``), and the implicit
    ``error`` edge to the escalation state from each state that runs work (a command or a
    fan-out) without an unguarded ``on: error`` transition, because that is where the engine
    sends a failure nothing else catches.
    """
    edges: list[Edge] = []
    escalation = definition.escalation if definition.escalation in definition.states else None
    for state in definition.states.values():
        edges.extend(_transition_edge(state.name, t) for t in state.transitions)
        exhausted = _exhausted_target(state, escalation)
        if exhausted is not None:
            label = f"exhausted (max {state.max_visits})" if state.max_visits else "exhausted"
            edges.append(Edge(state.name, exhausted, label, EdgeKind.EXHAUSTED))
        if escalation is not None and _escalates_errors(state, escalation):
            edges.append(Edge(state.name, escalation, ERROR_EVENT, EdgeKind.ERROR))
        task = state.task
        if task is not None and task.due is not None:
            target = task.escalate_to or definition.escalation
            label = f"task due {format_duration(task.due)}"
            edges.append(Edge(state.name, target, label, EdgeKind.TIMER))
    return edges


def _transition_edge(source: str, transition: Transition) -> Edge:
    parts: list[str] = []
    if transition.on != DONE_EVENT and not transition.on.startswith("timer:"):
        parts.append(transition.on)
    if transition.after is not None:
        parts.append(f"after {format_duration(transition.after)}")
    if transition.when is not None:
        parts.append(f"[{transition.when.source}]")
    if transition.is_else:
        parts.append("else")
    kind = EdgeKind.TIMER if transition.after is not None else EdgeKind.TRANSITION
    return Edge(source, transition.target, " ".join(parts), kind)


def _exhausted_target(state: State, escalation: str | None) -> str | None:
    if state.on_exhausted is not None:
        return state.on_exhausted
    if state.max_visits is not None and state.name != escalation:
        return escalation
    return None


def _escalates_errors(state: State, escalation: str) -> bool:
    runs_work = state.command is not None or state.parallel is not None
    catches_all = any(
        t.on == ERROR_EVENT and (t.when is None or t.is_else) for t in state.transitions
    )
    return runs_work and not catches_all and state.name != escalation


def parallel_summary(state: State) -> list[str]:
    """Lines describing a fan-out: its branches (or what it maps over), concurrency and join."""
    parallel = state.parallel
    if parallel is None:
        return []
    lines: list[str] = []
    if parallel.branches:
        lines.append("branches: " + ", ".join(b.name for b in parallel.branches))
    if parallel.over is not None:
        command = f" {parallel.map_command.name}" if parallel.map_command else ""
        lines.append(f"map{command} over {parallel.over.source}")
    if parallel.concurrency is not None:
        lines.append(f"concurrency {parallel.concurrency}")
    if parallel.join is JoinKind.N_OF:
        lines.append(f"join: {parallel.n_of} of n")
    else:
        lines.append(f"join: {parallel.join}")
    return lines


def node_label(name: str, counts: Mapping[str, int] | None) -> str:
    """The state's name, with its live item count when counts are given (absent means 0)."""
    return name if counts is None else f"{name} ({counts.get(name, 0)})"


def node_ids(definition: Definition, edges: Iterable[Edge]) -> dict[str, str]:
    """A safe, unique identifier for every state (and any dangling target), in written order.

    State names are free text, so formats with restricted identifiers get ``s_`` plus the name
    with anything outside ``[A-Za-z0-9_]`` replaced; the real name is shown as the label.
    """
    names = [*definition.states, definition.initial, *(e.target for e in edges)]
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in dict.fromkeys(names):
        base = "s_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
        candidate, suffix = base, 1
        while candidate in taken:
            suffix += 1
            candidate = f"{base}_{suffix}"
        ids[name] = candidate
        taken.add(candidate)
    return ids


# -- Mermaid ---------------------------------------------------------------------------------

# ASCII punctuation Mermaid's state-diagram lexer leaves alone in labels; other ASCII symbols
# become entity codes (``#34;``), which Mermaid decodes before drawing, so a condition can hold
# quotes, brackets or colons without ending the label.
_MERMAID_PLAIN = frozenset(" _.,!?'()+-*/=|@")

_MERMAID_CLASSES = (
    "    classDef initial font-weight:bold,stroke-width:3px",
    "    classDef waiting stroke-dasharray:5 5",
    "    classDef parallel stroke-width:2px,fill:#eef2ff",
)


def _mermaid_text(text: str) -> str:
    return "".join(
        c
        if c in _MERMAID_PLAIN or (c.isprintable() and (c.isalnum() or not c.isascii()))
        else f"#{ord(c)};"
        for c in text.replace("\n", " ")
    )


def to_mermaid(definition: Definition, counts: Mapping[str, int] | None = None) -> str:
    """Render a Mermaid ``stateDiagram-v2``; waiting and parallel states get their own class."""
    edges = edge_table(definition)
    ids = node_ids(definition, edges)
    lines = ["stateDiagram-v2", f"    %% {_mermaid_text(definition.ref)}", *_MERMAID_CLASSES]
    for name, node in ids.items():
        lines.append(f'    state "{_mermaid_text(node_label(name, counts))}" as {node}')
    lines.append(f"    [*] --> {ids[definition.initial]}")
    for edge in edges:
        label = f" : {_mermaid_text(edge.label)}" if edge.label else ""
        lines.append(f"    {ids[edge.source]} --> {ids[edge.target]}{label}")
    for state in definition.states.values():
        if state.is_final:
            lines.append(f"    {ids[state.name]} --> [*]")
    for state in definition.states.values():
        if state.parallel is not None:
            lines.append(f"    note right of {ids[state.name]}")
            lines.extend(f"        {_mermaid_text(line)}" for line in parallel_summary(state))
            lines.append("    end note")
    lines.extend(_mermaid_class_lines(definition, ids))
    return "\n".join(lines) + "\n"


def _mermaid_class_lines(definition: Definition, ids: Mapping[str, str]) -> list[str]:
    groups: dict[str, list[str]] = {"initial": [], "waiting": [], "parallel": []}
    for state in definition.states.values():
        if state.name == definition.initial or state.kind is StateKind.INITIAL:
            groups["initial"].append(ids[state.name])
        if state.waits:
            groups["waiting"].append(ids[state.name])
        if state.parallel is not None:
            groups["parallel"].append(ids[state.name])
    return [f"    class {','.join(group)} {name}" for name, group in groups.items() if group]


# -- Graphviz DOT ----------------------------------------------------------------------------

_DOT_EDGE_STYLE = {
    EdgeKind.TRANSITION: "",
    EdgeKind.TIMER: ", style=dotted, color=purple4, fontcolor=purple4",
    EdgeKind.EXHAUSTED: ", style=bold, color=firebrick, fontcolor=firebrick",
    EdgeKind.ERROR: ", style=dashed, color=gray45, fontcolor=gray45",
}


def _dot_string(*lines: str) -> str:
    """Quote ``lines`` as one DOT string, one label line each, with backslashes kept literal."""
    escaped = (
        line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for line in lines
    )
    return '"' + "\\n".join(escaped) + '"'


def _dot_node_attrs(definition: Definition, name: str, state: State | None) -> str:
    if state is None:
        return "shape=box, style=dashed, color=red"
    if state.is_final:
        return "shape=doublecircle"
    if state.parallel is not None or state.kind is StateKind.PARALLEL:
        return "shape=box3d"
    if state.waits:
        return "shape=hexagon, style=dashed"
    if name == definition.initial or state.kind is StateKind.INITIAL:
        return 'shape=box, style="rounded,bold", penwidth=2'
    return 'shape=box, style="rounded"'


def to_dot(definition: Definition, counts: Mapping[str, int] | None = None) -> str:
    """Render a Graphviz digraph: shapes by state kind, edges styled by why they exist."""
    edges = edge_table(definition)
    ids = node_ids(definition, edges)
    lines = [
        f"digraph {_dot_string(definition.ref)} {{",
        '    node [fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    __start [shape=point, width=0.15, label=""];',
    ]
    for name, node in ids.items():
        state = definition.states.get(name)
        extra = parallel_summary(state) if state is not None else []
        label = _dot_string(node_label(name, counts), *extra)
        lines.append(f"    {node} [label={label}, {_dot_node_attrs(definition, name, state)}];")
    lines.append(f"    __start -> {ids[definition.initial]};")
    for edge in edges:
        label = f"label={_dot_string(edge.label)}" if edge.label else 'label=""'
        style = _DOT_EDGE_STYLE[edge.kind]
        lines.append(f"    {ids[edge.source]} -> {ids[edge.target]} [{label}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- Dispatch --------------------------------------------------------------------------------


def to_svg(definition: Definition, counts: Mapping[str, int] | None = None) -> str:
    """Render a standalone SVG: :func:`to_dot` laid out by Graphviz's ``dot``.

    Raises:
        ExternalProgramError: Graphviz is not installed (the message says how to install
            it, and which formats work without it), or ``dot`` failed.

    """
    return dot_to_svg(to_dot(definition, counts))


def render(
    definition: Definition,
    fmt: DiagramFormat | Literal["mermaid", "dot", "svg"],
    counts: Mapping[str, int] | None = None,
) -> str:
    """Render ``definition`` as ``fmt``; an unknown format name raises ValueError."""
    match DiagramFormat(fmt):
        case DiagramFormat.MERMAID:
            return to_mermaid(definition, counts)
        case DiagramFormat.DOT:
            return to_dot(definition, counts)
        case DiagramFormat.SVG:
            return to_svg(definition, counts)
        case unreachable:
            assert_never(unreachable)
