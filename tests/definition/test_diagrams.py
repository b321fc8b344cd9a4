from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from statewise.conditions import compile_condition
from statewise.definition.diagrams import (
    DiagramFormat,
    Edge,
    EdgeKind,
    edge_table,
    node_ids,
    parallel_summary,
    render,
    to_dot,
    to_mermaid,
    to_svg,
)
from statewise.definition.layout_graph import layout_graph
from statewise.definition.model import (
    Branch,
    Command,
    Definition,
    JoinKind,
    Parallel,
    State,
    StateKind,
    Transition,
)
from statewise.errors import ExternalProgramError

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's dot is not installed (apt-get install graphviz); svg is drawn by it",
)
T, TIMER, EXH, ERR = EdgeKind.TRANSITION, EdgeKind.TIMER, EdgeKind.EXHAUSTED, EdgeKind.ERROR


def _workflow() -> Definition:
    """Every feature a diagram has to show, in one small publishing workflow."""
    states = [
        State(
            "intake",
            StateKind.INITIAL,
            command=Command("classify", "category"),
            transitions=(Transition("research"),),
        ),
        State(
            "research",
            StateKind.PARALLEL,
            parallel=Parallel(
                over=compile_condition("doc.sections"),
                map_command=Command("summarize", "summary"),
                concurrency=4,
            ),
            transitions=(Transition("draft"),),
        ),
        State(
            "draft",
            command=Command("write", "draft"),
            max_visits=3,
            on_exhausted="escalated",
            transitions=(
                Transition("review", when=compile_condition('tone == "formal"')),
                Transition("polish", is_else=True),
                Transition("escalated", on="error"),
            ),
        ),
        State("polish", command=Command("polish", "draft"), transitions=(Transition("review"),)),
        State(
            "review",
            StateKind.WAITING,
            transitions=(
                Transition("published", on="approved"),
                Transition("draft", on="changes_requested"),
                Transition("escalated", on="timeout", after=172_800),
            ),
        ),
        State("published", StateKind.FINAL),
        State("escalated", StateKind.FINAL),
    ]
    return Definition("publish", 2, {s.name: s for s in states}, initial="intake")


EXPECTED_EDGES = [
    ("intake", "research", "", T),
    ("intake", "escalated", "error", ERR),
    ("research", "draft", "", T),
    ("research", "escalated", "error", ERR),
    ("draft", "review", '[tone == "formal"]', T),
    ("draft", "polish", "else", T),
    ("draft", "escalated", "error", T),
    ("draft", "escalated", "exhausted (max 3)", EXH),
    ("polish", "review", "", T),
    ("polish", "escalated", "error", ERR),
    ("review", "published", "approved", T),
    ("review", "draft", "changes_requested", T),
    ("review", "escalated", "timeout after 2d", TIMER),
]
COUNTS = {"review": 5, "draft": 12, "ghost": 9}


def test_edge_table_follows_written_transitions_plus_engine_routes() -> None:
    edges = [(e.source, e.target, e.label, e.kind) for e in edge_table(_workflow())]
    assert edges == EXPECTED_EDGES


def test_no_implicit_error_edge_without_an_escalation_state() -> None:
    workflow = _workflow()
    states = {n: s for n, s in workflow.states.items() if n != "escalated"}
    bare = Definition("publish", 2, states, initial="intake", escalation="escalated")
    assert all(e.kind is not EdgeKind.ERROR for e in edge_table(bare))


def test_engine_routes_follow_what_the_engine_does() -> None:
    run = Command("run", "out")
    guarded = Transition("escalated", on="error", when=compile_condition("attempts > 2"))
    states = {
        "a": State("a", command=run, transitions=(Transition("b"), guarded)),
        "b": State(
            "b",
            command=run,
            max_visits=2,
            transitions=(
                Transition("c"),
                Transition("a", on="error", is_else=True),
            ),
        ),
        "c": State("c", transitions=(Transition("escalated"),)),
        "escalated": State("escalated", StateKind.FINAL),
    }
    edges = [
        (e.source, e.target, e.label, e.kind) for e in edge_table(Definition("r", 1, states, "a"))
    ]
    assert edges == [
        ("a", "b", "", T),
        ("a", "escalated", "error [attempts > 2]", T),
        ("a", "escalated", "error", ERR),  # a guarded error handler may not match
        ("b", "c", "", T),
        ("b", "a", "error else", T),  # an unguarded handler catches every error
        ("b", "escalated", "exhausted (max 2)", EXH),  # no on_exhausted: the engine escalates
        ("c", "escalated", "", T),  # no command, nothing to fail
    ]


def test_dangling_targets_are_drawn_not_dropped() -> None:
    states = {"a": State("a", transitions=(Transition("nowhere"),))}
    workflow = Definition("broken", 1, states, initial="a")
    assert '    state "nowhere" as s_nowhere\n' in to_mermaid(workflow)
    assert '    s_nowhere [label="nowhere", shape=box, style=dashed, color=red];' in to_dot(
        workflow
    )
    nodes = {node["id"]: node for node in layout_graph(workflow)["nodes"]}
    assert nodes["nowhere"]["kind"] == "missing"


def test_parallel_summary_for_map_and_fixed_branches() -> None:
    assert parallel_summary(_workflow().states["research"]) == [
        "map summarize over doc.sections",
        "concurrency 4",
        "join: all",
    ]
    fixed = State(
        "checks",
        StateKind.PARALLEL,
        parallel=Parallel(
            branches=(
                Branch("lint", Command("lint", "lint")),
                Branch("spell", Command("sp", "sp")),
            ),
            join=JoinKind.N_OF,
            n_of=1,
        ),
    )
    assert parallel_summary(fixed) == ["branches: lint, spell", "join: 1 of n"]
    assert parallel_summary(_workflow().states["draft"]) == []


# -- Mermaid ---------------------------------------------------------------------------------

_ENTITY = re.compile(r"#(\d+);")
_MERMAID_LINE = re.compile(
    r"stateDiagram-v2"
    r'|    %% .*|    classDef \w+ .+|    state "[^"]*" as s_\w+'
    r"|    (\[\*\]|s_\w+) --> (\[\*\]|s_\w+)( : .+)?"
    r"|    note right of s_\w+|        .+|    end note|    class s_\w+(,s_\w+)* \w+"
)


def _decode(text: str) -> str:
    return _ENTITY.sub(lambda m: chr(int(m.group(1))), text)


def _mermaid_edges(text: str) -> list[tuple[str, str, str]]:
    found = re.findall(r"^    (s_\w+) --> (s_\w+)(?: : (.*))?$", text, re.MULTILINE)
    return [(a, b, _decode(label)) for a, b, label in found]


def test_mermaid_shows_every_state_and_edge_with_its_label() -> None:
    workflow = _workflow()
    text = to_mermaid(workflow)
    ids = node_ids(workflow, edge_table(workflow))
    for name in workflow.states:
        assert f'    state "{name}" as s_{name}\n' in text
    assert "    [*] --> s_intake\n" in text
    assert "    s_published --> [*]\n" in text
    assert "    s_escalated --> [*]\n" in text
    expected = [(ids[s], ids[t], label) for s, t, label, _ in EXPECTED_EDGES]
    assert _mermaid_edges(text) == expected
    assert "    s_draft --> s_review : #91;tone == #34;formal#34;#93;\n" in text
    assert "    s_review --> s_escalated : timeout after 2d\n" in text
    assert "    s_research --> s_draft\n" in text


def test_mermaid_marks_waiting_initial_and_parallel_states() -> None:
    text = to_mermaid(_workflow())
    assert "    class s_review waiting\n" in text
    assert "    class s_intake initial\n" in text
    assert "    class s_research parallel\n" in text
    note = "    note right of s_research\n        map summarize over doc.sections\n"
    assert note + "        concurrency 4\n        join#58; all\n    end note\n" in text


def test_mermaid_is_syntactically_plausible() -> None:
    text = to_mermaid(_workflow(), COUNTS)
    for line in text.splitlines():
        assert _MERMAID_LINE.fullmatch(line), line
        label = line.split(" : ", 1)[1] if " : " in line else line
        if line.startswith("    state "):
            label = line.split('"')[1]
        if line.startswith("        "):
            label = line
        if " : " in line or line.startswith(("    state ", "        ")):
            assert not re.search(r'["\[\]{}:;#<>%]', _ENTITY.sub("", label)), line


def test_mermaid_escapes_awkward_state_names() -> None:
    names = ['needs "human" review', "a-b", "a_b", "end", "x: y; [z] #1 %% <b>"]
    states = {
        n: State(n, transitions=(Transition(names[(i + 1) % 5]),)) for i, n in enumerate(names)
    }
    workflow = Definition("odd", 1, states, initial=names[0])
    ids = node_ids(workflow, edge_table(workflow))
    assert list(ids.values()) == [
        "s_needs__human__review",
        "s_a_b",
        "s_a_b_2",
        "s_end",
        ids[names[4]],
    ]
    assert re.fullmatch(r"s_\w+", ids[names[4]])
    text = to_mermaid(workflow)
    labels = re.findall(r'^    state "([^"]*)" as (s_\w+)$', text, re.MULTILINE)
    assert [(_decode(label), node) for label, node in labels] == [(n, ids[n]) for n in names]
    test_lines = [line for line in text.splitlines() if line.startswith("    state ")]
    assert all(_MERMAID_LINE.fullmatch(line) for line in test_lines)


def test_mermaid_counts() -> None:
    text = to_mermaid(_workflow(), COUNTS)
    assert '    state "review (5)" as s_review\n' in text
    assert '    state "draft (12)" as s_draft\n' in text
    assert '    state "published (0)" as s_published\n' in text
    assert "ghost" not in text


# -- Graphviz DOT ----------------------------------------------------------------------------

_DOT_EDGE = re.compile(r'^    (\w+) -> (\w+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$', re.MULTILINE)


def _dot_unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def test_dot_shows_every_edge_with_label_and_style() -> None:
    workflow = _workflow()
    text = to_dot(workflow)
    ids = node_ids(workflow, edge_table(workflow))
    found = [(a, b, _dot_unescape(label)) for a, b, label, _ in _DOT_EDGE.findall(text)]
    assert found == [(ids[s], ids[t], label) for s, t, label, _ in EXPECTED_EDGES]
    assert '    s_draft -> s_review [label="[tone == \\"formal\\"]"];\n' in text
    assert '    s_intake -> s_escalated [label="error", style=dashed' in text
    assert '    s_draft -> s_escalated [label="error"];\n' in text
    assert '    s_draft -> s_escalated [label="exhausted (max 3)", style=bold' in text
    assert '    s_review -> s_escalated [label="timeout after 2d", style=dotted' in text
    assert text.startswith('digraph "publish@2" {\n')
    assert "    __start -> s_intake;\n" in text


def test_dot_shapes_by_kind() -> None:
    text = to_dot(_workflow())
    assert '    s_intake [label="intake", shape=box, style="rounded,bold", penwidth=2];' in text
    assert '    s_review [label="review", shape=hexagon, style=dashed];' in text
    assert '    s_published [label="published", shape=doublecircle];' in text
    assert '    s_draft [label="draft", shape=box, style="rounded"];' in text
    research = (
        '    s_research [label="research\\nmap summarize over doc.sections'
        '\\nconcurrency 4\\njoin: all", shape=box3d];'
    )
    assert research in text


def test_dot_counts_and_escaping_of_names() -> None:
    text = to_dot(_workflow(), COUNTS)
    assert '    s_review [label="review (5)"' in text
    assert '    s_polish [label="polish (0)"' in text
    odd = Definition('q"w', 1, {'say "hi" \\o/': State('say "hi" \\o/')}, initial='say "hi" \\o/')
    odd_text = to_dot(odd)
    assert 'digraph "q\\"w@1" {' in odd_text
    assert '[label="say \\"hi\\" \\\\o/"' in odd_text


@needs_dot
def test_dot_is_accepted_by_graphviz() -> None:
    for counts in (None, COUNTS):
        subprocess.run(
            ["dot", "-Tsvg"],
            input=to_dot(_workflow(), counts),
            text=True,
            check=True,
            capture_output=True,
        )


# -- SVG (Graphviz) ---------------------------------------------------------------------------


def _svg(counts: dict[str, int] | None = None, workflow: Definition | None = None) -> ET.Element:
    return ET.fromstring(to_svg(workflow or _workflow(), counts))


@needs_dot
def test_svg_is_graphvizs_drawing_of_the_edge_table() -> None:
    root = _svg(COUNTS)
    assert root.tag == f"{SVG}svg"
    nodes = root.findall(f".//{SVG}g[@class='node']")
    assert len(nodes) == len(_workflow().states) + 1  # and the start point
    edges = root.findall(f".//{SVG}g[@class='edge']")
    assert len(edges) == len(EXPECTED_EDGES) + 1  # and the start arrow
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "review (5)" in texts and "draft (12)" in texts
    assert '[tone == "formal"]' in texts


@needs_dot
def test_svg_keeps_hostile_names_as_text() -> None:
    odd = 'a <b> & "c" \\o/ ключ'
    states = {
        "start": State("start", transitions=(Transition(odd),)),
        odd: State(odd, StateKind.FINAL),
    }
    root = _svg(workflow=Definition("w", 1, states, initial="start"))
    assert odd in [t.text for t in root.iter(f"{SVG}text")]


def test_svg_without_graphviz_says_how_to_install_it_and_what_works_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExternalProgramError) as refused:
        to_svg(_workflow())
    message = str(refused.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    assert "--format mermaid|dot" in message and "dashboard" in message
    assert refused.value.code == "external_program"


@needs_dot
def test_svg_reports_a_failing_dot_with_its_own_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "dot"
    broken.write_text("#!/bin/sh\necho 'dot: out of memory' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExternalProgramError, match="failed: dot: out of memory"):
        to_svg(_workflow())


# -- Dispatch and determinism -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    [DiagramFormat.MERMAID, DiagramFormat.DOT, pytest.param(DiagramFormat.SVG, marks=needs_dot)],
)
def test_render_dispatches_and_is_deterministic(fmt: DiagramFormat) -> None:
    direct = {"mermaid": to_mermaid, "dot": to_dot, "svg": to_svg}[fmt.value]
    first = render(_workflow(), fmt, COUNTS)
    assert first == direct(_workflow(), COUNTS)
    assert render(_workflow(), fmt.value, COUNTS) == first  # a fresh definition, same bytes
    assert render(_workflow(), fmt) != first  # counts change the picture


def test_render_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="png"):
        render(_workflow(), "png")  # type: ignore[arg-type]


def test_edge_is_plain_data() -> None:
    assert Edge("a", "b", "", EdgeKind.TRANSITION) == Edge("a", "b", "", EdgeKind.TRANSITION)
