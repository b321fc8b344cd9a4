"""The `statewise` command end to end: real YAML files, a real SQLite file, real commands."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from statewise.cli import app

WORKFLOW = """\
workflow: review
version: 1
events:
  approve: a reviewer approves
  reject: a reviewer rejects
states:
  intake:
    kind: initial
    command: {name: score, result: score}
    transitions:
      - when: score.value >= 5
        to: accepted
      - else: true
        to: human_review
  human_review:
    kind: waiting
    transitions:
      - on: approve
        to: notify
      - on: reject
        to: rejected
  notify:
    command: notify
    transitions:
      - to: accepted
  accepted:
    kind: final
  rejected:
    kind: final
"""

COMMANDS = """\
from statewise import CommandRegistry

registry = CommandRegistry()


@registry.command()
def score(ctx):
    return {"value": len(ctx.context["title"])}


@registry.command()
async def notify(ctx):
    return {"sent_to": ctx.context["approve"].get("reviewer", "nobody")}
"""

BROKEN = """\
workflow: broken
states:
  start:
    kind: initial
    command: scor
    transitions:
      - when: score.value >
        to: nowhere
  lonely:
    kind: final
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "review.yaml").write_text(WORKFLOW)
    (tmp_path / "commands.py").write_text(COMMANDS)
    items = [{"key": "long", "data": {"title": "a long title"}}, {"key": "s1", "title": "ab"}]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n")
    return tmp_path


def invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def run_items(project: Path) -> tuple[int, str]:
    return invoke(
        "run", project / "review.yaml", "--items", project / "items.jsonl",
        "--commands", project / "commands.py", "--db", project / "run.sqlite",
    )  # fmt: skip


def test_validate_accepts_a_good_file(project: Path) -> None:
    code, output = invoke(
        "validate", project / "review.yaml", "--commands", project / "commands.py"
    )
    assert code == 0
    assert "review@1, 6 states" in output


def test_validate_reports_every_problem_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    (tmp_path / "commands.py").write_text(COMMANDS)
    code, output = invoke("validate", path, "--commands", tmp_path / "commands.py")
    assert code == 1
    assert f"{path}:5:14: command `scor` is not registered; did you mean `score`?" in output
    assert f"{path}:7:15:" in output and "CEL syntax error" in output
    assert "`lonely` can never be reached from the initial state `start`" in output
    assert "problem(s) found" in output


def test_graph_renders_each_format_and_live_counts(project: Path) -> None:
    code, mermaid = invoke("graph", project / "review.yaml")
    assert code == 0
    assert "stateDiagram-v2" in mermaid and "human_review" in mermaid
    code, dot = invoke("graph", project / "review.yaml", "--format", "dot")
    assert code == 0 and dot.lstrip().startswith("digraph")
    assert run_items(project)[0] == 0
    svg_path = project / "review.svg"
    code, _ = invoke(
        "graph",
        project / "review.yaml",
        "-f",
        "svg",
        "-o",
        svg_path,
        "--db",
        project / "run.sqlite",
    )
    assert code == 0
    text = " ".join(ET.parse(svg_path).getroot().itertext())
    assert "accepted" in text and "1" in text


def test_run_is_idempotent_per_key_and_prints_the_summary(project: Path) -> None:
    code, output = run_items(project)
    assert code == 0, output
    assert "started 2 new item(s); 0 already existed" in output
    assert "accepted" in output and "human_review" in output
    code, output = run_items(project)
    assert code == 0
    assert "started 0 new item(s); 2 already existed" in output


def test_status_items_and_history(project: Path) -> None:
    run_items(project)
    db = project / "run.sqlite"
    code, output = invoke("status", "--db", db)
    assert code == 0 and "waiting" in output
    code, output = invoke("items", "--db", db, "--state", "human_review")
    assert code == 0 and "s1" in output and "long" not in output
    code, output = invoke("history", "long", "--db", db, "--format", "jsonl")
    assert code == 0
    rows = [json.loads(line) for line in output.splitlines()]
    assert [r["seq"] for r in rows] == [1, 2]
    assert rows[1]["condition"] == "score.value >= 5"
    assert rows[1]["values"] == {"score.value": 12}
    assert rows[1]["command"] == "score"


def test_send_resumes_a_waiting_item_and_runs_it_on(project: Path) -> None:
    run_items(project)
    db = project / "run.sqlite"
    code, output = invoke("send", "s1", "approve", "--data", '{"reviewer": "dana"}', "--db", db)
    assert code == 0, output
    assert "now in accepted (done)" in output
    code, output = invoke("history", "s1", "--db", db, "--format", "jsonl")
    rows = [json.loads(line) for line in output.splitlines()]
    assert rows[2]["event"] == "approve" and rows[2]["actor"] == "cli"
    assert rows[3]["command"] == "notify"


def test_send_refuses_an_event_the_state_does_not_accept(project: Path) -> None:
    run_items(project)
    code, output = invoke("send", "s1", "publish", "--db", project / "run.sqlite")
    assert code == 1
    assert "does not accept event 'publish' (it accepts: approve, reject)" in output


@pytest.mark.parametrize(
    ("data", "message"),
    [("{oops", "--data is not JSON"), ("[1]", "--data must be a JSON object")],
)
def test_send_rejects_bad_data(project: Path, data: str, message: str) -> None:
    code, output = invoke("send", "s1", "approve", "--data", data, "--db", project / "run.sqlite")
    assert code == 2
    assert message in output


def test_a_bad_items_line_is_reported_with_its_line_number(project: Path) -> None:
    (project / "items.jsonl").write_text('{"key": "a"}\nnot json\n')
    code, output = run_items(project)
    assert code == 1
    assert "items.jsonl:2: not JSON" in output


def test_reading_a_missing_database_says_how_to_start(tmp_path: Path) -> None:
    code, output = invoke("status", "--db", tmp_path / "none.sqlite")
    assert code == 1
    assert "does not exist; start items with `statewise run`" in output


def test_history_of_an_unknown_key(project: Path) -> None:
    run_items(project)
    code, output = invoke("history", "nope", "--db", project / "run.sqlite")
    assert code == 1
    assert "no item with key 'nope'" in output


def test_run_without_a_file_resumes_the_store(project: Path) -> None:
    run_items(project)
    code, output = invoke("run", "--db", project / "run.sqlite")
    assert code == 0, output
    assert "human_review" in output


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "statewise", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("validate", "graph", "run", "status", "items", "history", "send"):
        assert command in done.stdout


def test_one_database_runs_workflows_whose_commands_live_in_different_modules(
    project: Path,
) -> None:
    renamed = {"workflow: review": "workflow: triage", "score": "rate", "notify": "alert"}
    other, commands = WORKFLOW, COMMANDS
    for old, new in renamed.items():
        other, commands = other.replace(old, new), commands.replace(old, new)
    (project / "triage.yaml").write_text(other)
    (project / "triage.py").write_text(commands)
    (project / "triage.jsonl").write_text('{"key": "t1", "data": {"title": "a long title"}}\n')
    assert run_items(project)[0] == 0
    code, output = invoke(
        "run", project / "triage.yaml", "--items", project / "triage.jsonl",
        "--commands", project / "triage.py", "--db", project / "run.sqlite",
    )  # fmt: skip
    assert code == 0, output
    assert "triage@1" in output and "review@1" in output


def test_costs_sum_the_model_usage_recorded_in_the_audit_trail(project: Path) -> None:
    reported = COMMANDS.replace(
        'return {"value": len(ctx.context["title"])}',
        'return CommandResult({"value": len(ctx.context["title"])}, '
        '{"agent": "scorer", "model": "openai:gpt-4.1-mini", "input_tokens": 1000, '
        '"output_tokens": 200, "cost": 0.0012})',
    ).replace(
        "import CommandRegistry",
        "import CommandRegistry\nfrom statewise.worker.registry import CommandResult",
    )
    (project / "commands.py").write_text(reported)
    assert run_items(project)[0] == 0
    code, output = invoke("costs", "--db", project / "run.sqlite")
    assert code == 0, output
    assert "scorer" in output and "openai:gpt-4.1-mini" in output
    assert "2,000" in output and "400" in output  # two items, summed
    assert "total known cost: 0.0024 USD" in output


AGENT_WORKFLOW = """\
workflow: triage
agents:
  classifier:
    model: local
    instructions: Classify the inquiry.
    input: "{{ text }}"
    output:
      type: object
      properties:
        category: {type: string, enum: [billing, shipping]}
      required: [category]
    examples:
      category:
        billing: ["I was charged twice", "refund my last invoice"]
        shipping: ["where is my parcel", "the delivery is late"]
states:
  classify:
    kind: initial
    agent: classifier
    transitions:
      - when: classify.category == 'billing'
        to: billing
      - else: true
        to: shipping
  billing: {kind: final}
  shipping: {kind: final}
"""


def test_a_workflow_with_agents_runs_on_the_offline_model(tmp_path: Path) -> None:
    (tmp_path / "triage.yaml").write_text(AGENT_WORKFLOW)
    lines = [
        {"key": "a", "data": {"text": "You billed my card two times this month"}},
        {"key": "b", "data": {"text": "My package has still not arrived"}},
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(i) for i in lines) + "\n")
    db = tmp_path / "run.sqlite"
    code, output = invoke(
        "run", tmp_path / "triage.yaml", "--items", tmp_path / "items.jsonl", "--db", db
    )
    assert code == 0, output
    code, output = invoke("history", "a", "--db", db, "--format", "jsonl")
    row = json.loads(output.splitlines()[-1])
    assert (row["to_state"], row["command"]) == ("billing", "agent:classifier")
    assert row["usage"]["agent"] == "classifier" and row["usage"]["cost"] == 0.0
    code, output = invoke("history", "b", "--db", db, "--format", "jsonl")
    assert json.loads(output.splitlines()[-1])["to_state"] == "shipping"
    code, output = invoke("costs", "--db", db)
    assert code == 0 and "classifier" in output
    code, output = invoke("history", "a", "--db", db)
    assert "local" in output and "tok $0.0000" in output
