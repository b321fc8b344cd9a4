from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

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
from statewise.definition.svg import rank_states

SVG = "{http://www.w3.org/2000/svg}"
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
    assert _group(_svg(workflow=workflow), "nowhere").get("data-kind") == "missing"


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


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_dot_is_accepted_by_graphviz() -> None:
    for counts in (None, COUNTS):
        subprocess.run(
            ["dot", "-Tsvg"],
            input=to_dot(_workflow(), counts),
            text=True,
            check=True,
            capture_output=True,
        )


# -- SVG -------------------------------------------------------------------------------------


def _svg(counts: dict[str, int] | None = None, workflow: Definition | None = None) -> ET.Element:
    return ET.fromstring(to_svg(workflow or _workflow(), counts))


def _group(root: ET.Element, state: str) -> ET.Element:
    found = root.find(f".//{SVG}g[@data-state='{state}']")
    assert found is not None, state
    return found


def _box(root: ET.Element, state: str) -> ET.Element:
    found = _group(root, state).find(f"{SVG}rect[@class='box']")
    assert found is not None, state
    return found


def _xs(path: ET.Element) -> list[float]:
    return [float(x) for x, _ in re.findall(r"(-?[\d.]+) (-?[\d.]+)", path.get("d", ""))]


def _num(element: ET.Element, attribute: str) -> float:
    return float(element.get(attribute, "nan"))


def test_svg_has_one_box_per_state_and_one_path_per_edge() -> None:
    root = _svg()
    groups = root.findall(f".//{SVG}g[@class='state']")
    assert [g.get("data-state") for g in groups] == list(_workflow().states)
    assert all(len(g.findall(f"{SVG}rect[@class='box']")) == 1 for g in groups)
    assert len(root.findall(f".//{SVG}rect[@class='box']")) == 7
    paths = root.findall(f".//{SVG}path[@class='edge']")
    edges = [(p.get("data-from"), p.get("data-to"), p.get("data-kind")) for p in paths]
    assert edges == [(s, t, str(kind)) for s, t, _, kind in EXPECTED_EDGES]
    assert all(p.get("marker-end", "").startswith("url(#sw-arrow-") for p in paths)


def test_svg_text_has_names_and_labels() -> None:
    root = _svg()
    names = [t.text for t in root.findall(f".//{SVG}text[@class='name']")]
    assert names == list(_workflow().states)
    labels = sorted(t.text or "" for t in root.findall(f".//{SVG}text[@class='edge-label']"))
    # The two implicit errors that skip rows share one lane on the left, and one label.
    expected = [label for _, _, label, _ in EXPECTED_EDGES if label]
    assert labels == sorted(expected[1:])
    detail = _group(root, "research").find(f"{SVG}text[@class='detail']")
    assert detail is not None
    assert detail.text == "map summarize over doc.sections · concurrency 4 · join: all"
    assert "[tone == &quot;formal&quot;]" in to_svg(_workflow())


def test_svg_styles_states_by_kind() -> None:
    root = _svg()
    assert _box(root, "review").get("stroke-dasharray")
    assert _box(root, "draft").get("stroke-dasharray") is None
    assert _box(root, "intake").get("stroke-width") == "3"
    assert len(_group(root, "research").findall(f"{SVG}rect[@class='stack']")) == 2
    assert len(_group(root, "published").findall(f"{SVG}rect[@class='inner']")) == 1
    assert [_group(root, n).get("data-kind") for n in ("intake", "review", "research")] == [
        "initial",
        "waiting",
        "parallel",
    ]


def test_svg_count_badges() -> None:
    root = _svg(COUNTS)
    badges = {}
    for name in _workflow().states:
        text = _group(root, name).find(f"{SVG}g[@class='count']/{SVG}text")
        assert text is not None
        badges[name] = text.text
    assert (badges["review"], badges["draft"], badges["published"]) == ("5", "12", "0")
    assert _svg().find(f".//{SVG}g[@class='count']") is None


def test_svg_ranks_states_by_distance_from_the_initial_state() -> None:
    workflow = _workflow()
    ranks = rank_states(workflow, list(workflow.states), edge_table(workflow))
    assert ranks == {
        "intake": 0,
        "research": 1,
        "draft": 2,
        "polish": 3,
        "review": 3,
        "escalated": 3,
        "published": 4,
    }
    root = _svg()
    y = {name: _num(_box(root, name), "y") for name in workflow.states}
    assert y["intake"] < y["research"] < y["draft"] < y["review"] < y["published"]
    assert y["polish"] == y["review"] == y["escalated"]
    x = {name: _num(_box(root, name), "x") for name in workflow.states}
    assert x["polish"] < x["review"] < x["escalated"]  # written order within a rank


def test_svg_routes_back_edges_and_long_edges_around_the_sides() -> None:
    root = _svg()
    boxes = root.findall(f".//{SVG}rect[@class='box']")
    left = min(_num(b, "x") for b in boxes)
    right = max(_num(b, "x") + _num(b, "width") for b in boxes)
    back = root.find(f".//{SVG}path[@data-from='review'][@data-to='draft']")
    assert back is not None
    assert max(_xs(back)) > right  # the revision loop runs up outside every box
    skips = root.findall(f".//{SVG}path[@data-to='escalated'][@data-kind='error']")
    lanes = [min(_xs(p)) for p in skips if p.get("data-from") in ("intake", "research")]
    assert lanes[0] == lanes[1] < left  # both skip rows down one shared lane on the left


def test_svg_unreachable_states_go_below_and_names_are_escaped() -> None:
    odd = 'a <b> & "c"'
    states = {
        "start": State("start", transitions=(Transition("end"),)),
        "end": State("end", StateKind.FINAL),
        odd: State(odd, transitions=(Transition(odd),)),
    }
    workflow = Definition("w", 1, states, initial="start")
    assert rank_states(workflow, list(states), edge_table(workflow))[odd] == 2
    root = _svg(workflow=workflow)
    assert [t.text for t in root.findall(f".//{SVG}text[@class='name']")] == ["start", "end", odd]
    self_loop = root.find(f".//{SVG}path[@class='edge'][@data-to='{odd}']")
    assert self_loop is not None and self_loop.get("data-from") == odd


def test_svg_size_covers_the_content() -> None:
    root = _svg(COUNTS)
    width, height = _num(root, "width"), _num(root, "height")
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    for rect in root.findall(f".//{SVG}rect[@x]"):
        x, y = _num(rect, "x"), _num(rect, "y")
        assert 0 <= x < x + _num(rect, "width") < width
        assert 0 <= y < y + _num(rect, "height") < height
    for path in root.findall(f".//{SVG}path[@class='edge']"):
        assert all(0 <= x < width for x in _xs(path))


# -- Dispatch and determinism -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(DiagramFormat))
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
