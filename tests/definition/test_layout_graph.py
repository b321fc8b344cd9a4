"""The graph the dashboard lays out: every state and every edge of the one edge table, with
loops marked so that the rest is a DAG."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest

from statewise.definition import load
from statewise.definition.diagrams import edge_table
from statewise.definition.layout_graph import LayoutGraph, back_edges, layout_graph
from statewise.definition.model import Definition, State, StateKind, Transition

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/workflow.yaml"))
HOSTILE = ["a/b", "inv%41", "what?x=1#f", "naïve 日本", 'a "b" <c> & d', " padded ", "nul\x00"]


def _acyclic(graph: LayoutGraph, skip: set[str]) -> bool:
    """Whether the edges not in ``skip`` form no cycle (Kahn's algorithm)."""
    edges = [(e["source"], e["target"]) for e in graph["edges"] if e["id"] not in skip]
    incoming = {node["id"]: 0 for node in graph["nodes"]}
    for _, target in edges:
        incoming[target] += 1
    ready = [name for name, count in incoming.items() if count == 0]
    removed = 0
    while ready:
        name = ready.pop()
        removed += 1
        for source, target in edges:
            if source == name:
                incoming[target] -= 1
                if incoming[target] == 0:
                    ready.append(target)
    return removed == len(incoming)


def test_the_examples_are_covered() -> None:
    assert [p.parent.name for p in EXAMPLES] == [
        "compliance_review",
        "content_approval",
        "order_processing",
        "product_onboarding",
        "support_routing",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_state_and_every_edge_of_the_edge_table(path: Path) -> None:
    definition = load(path)
    graph = layout_graph(definition)
    assert (graph["workflow"], graph["version"]) == (definition.name, definition.version)
    assert [node["id"] for node in graph["nodes"]] == list(definition.states)
    table = edge_table(definition)
    assert [(e["source"], e["target"], e["label"], e["kind"]) for e in graph["edges"]] == [
        (e.source, e.target, e.label, e.kind.value) for e in table
    ]
    assert [e["id"] for e in graph["edges"]] == [f"e{n}" for n in range(len(table))]
    nodes = {node["id"]: node for node in graph["nodes"]}
    assert [name for name, node in nodes.items() if node["escalation"]] == [definition.escalation]
    assert [name for name, node in nodes.items() if node["initial"]] == [definition.initial]
    for name, state in definition.states.items():
        assert nodes[name]["terminal"] == state.is_final
        assert nodes[name]["kind"] == state.kind.value
        assert nodes[name]["description"] == state.description
    assert json.loads(json.dumps(graph)) == graph


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_back_edges_are_exactly_what_breaks_the_cycles(path: Path) -> None:
    graph = layout_graph(load(path))
    back = {e["id"] for e in graph["edges"] if e["back"]}
    assert back, "every example has a loop (a revision, a retry or a re-check)"
    assert not _acyclic(graph, set())
    assert _acyclic(graph, back)


def test_the_revision_loop_of_compliance_review_is_a_back_edge() -> None:
    graph = layout_graph(load(EXAMPLES[0]))
    back = {(e["source"], e["target"]) for e in graph["edges"] if e["back"]}
    forward = {(e["source"], e["target"]) for e in graph["edges"] if not e["back"]}
    assert ("resubmission", "checks") in back
    assert ("intake", "checks") in forward and ("feedback", "revision") in forward


def test_hostile_state_names_are_ids_as_written() -> None:
    states = {
        name: State(name, transitions=(Transition(HOSTILE[(n + 1) % len(HOSTILE)]),))
        for n, name in enumerate(HOSTILE[:-1])
    }
    states[HOSTILE[-1]] = State(HOSTILE[-1], StateKind.FINAL)
    definition = Definition("w/ü?", 1, states, initial=HOSTILE[0], escalation=HOSTILE[-1])
    graph = layout_graph(definition)
    assert [node["id"] for node in graph["nodes"]] == HOSTILE
    assert [node["label"] for node in graph["nodes"]] == HOSTILE
    assert [(e["source"], e["target"]) for e in graph["edges"]] == list(pairwise(HOSTILE))
    assert graph["nodes"][-1]["escalation"] and graph["nodes"][-1]["terminal"]
    assert json.loads(json.dumps(graph)) == graph


def test_a_target_no_state_defines_is_drawn_as_missing() -> None:
    states = {"a": State("a", transitions=(Transition("nowhere"), Transition("a")))}
    graph = layout_graph(Definition("broken", 1, states, initial="a"))
    assert [(n["id"], n["kind"]) for n in graph["nodes"]] == [
        ("a", "normal"),
        ("nowhere", "missing"),
    ]
    assert [e["back"] for e in graph["edges"]] == [False, True]  # the self-loop closes a loop


def test_a_long_chain_does_not_exhaust_the_stack() -> None:
    names = [f"s{n}" for n in range(5_000)]
    states = {
        name: State(name, transitions=(Transition(after),))
        for name, after in zip(names, [*names[1:], names[0]], strict=True)
    }
    graph = layout_graph(Definition("long", 1, states, initial="s0"))
    assert [e["source"] for e in graph["edges"] if e["back"]] == [names[-1]]


def test_back_edges_start_from_unreached_states_too() -> None:
    edges = edge_table(
        Definition(
            "w",
            1,
            {
                "start": State("start", StateKind.FINAL),
                "x": State("x", transitions=(Transition("y"),)),
                "y": State("y", transitions=(Transition("x"),)),
            },
            initial="start",
        )
    )
    assert back_edges("start", ["start", "x", "y"], edges) == {1}
