"""The README's workflow examples are real: they load and validate as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from statewise import CommandRegistry, loads
from statewise.definition.model import StateKind

README = Path(__file__).parents[1] / "README.md"


def test_the_readme_workflow_loads() -> None:
    text = README.read_text(encoding="utf-8")
    (block,) = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    definition = loads(block, file="README.md")
    assert definition.ref == "content_approval@1"
    assert definition.states["revise"].max_visits == 2
    assert definition.states["human_review"].transitions[-1].after == 48 * 3600


def test_the_readme_human_task_example_loads() -> None:
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yml\n(.*?)```", text, re.DOTALL) if "editorial" in b)
    document = (
        "workflow: review\nstates:\n  start:\n    kind: initial\n    transitions:\n"
        "      - to: human_review\n" + block + "  publish: {kind: final}\n"
        "  apply_feedback: {kind: final}\n"
    )
    definition = loads(document, file="README.md")
    task = definition.states["human_review"].task
    assert task is not None and task.due == 72 * 3600 and task.queue == "editorial"


def test_the_readme_event_data_example_loads() -> None:
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yml\n(.*?)```", text, re.DOTALL) if "data:" in b)
    document = (
        "workflow: shop\n"
        + block
        + "states:\n  start: {kind: initial, transitions: [{to: wait}]}\n"
        "  wait: {kind: waiting, transitions: [{on: pay, when: event.data.amount > 10, to: done},"
        " {on: pay, else: true, to: done}]}\n  done: {kind: final}\n"
    )
    pay = (loads(document, file="README.md").events or {})["pay"]
    assert pay.data is not None and pay.data["required"] == ["amount"]


def test_the_readme_retention_example_loads() -> None:
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yml\n(.*?)```", text, re.DOTALL) if "retention:" in b)
    states = "states:\n  start: {kind: initial, transitions: [{to: end}]}\n  end: {kind: final}\n"
    document = block + "workflow: kept\n" + states
    retention = loads(document, file="README.md").retention
    assert retention is not None and retention.history == 365 * 86_400


def test_the_readme_budget_example_loads() -> None:
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yml\n(.*?)```", text, re.DOTALL) if "budget:" in b)
    document = block.replace("states:\n", "agents:\n  writer: {instructions: Write.}\nstates:\n")
    definition = loads(document, file="README.md")
    assert definition.budget is not None and definition.budget.cost == 0.5
    stage = definition.states["write"].budget
    assert stage is not None and (stage.tokens, stage.on_exceeded) == (6000, "editor")


def test_the_readme_workflow_test_example_passes(tmp_path: Path) -> None:
    """The "Testing a workflow" files, written out as a user would, pass under pytest."""
    text = README.read_text(encoding="utf-8")
    files = re.findall(r"```\w+ file=(\S+)\n(.*?)```", text, re.DOTALL)
    assert [name for name, _ in files] == ["conftest.py", "invoice.yaml", "test_invoice.py"]
    for name, body in files:
        (tmp_path / name).write_text(body, encoding="utf-8")

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_the_readme_migrations_example_loads() -> None:
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yml\n(.*?)```", text, re.DOTALL) if "migrations:" in b)
    definition = loads(block, file="README.md")
    assert definition.ref == "invoice@2" and definition.migrations == {"review": "check"}


KINDS = {  # the snippet's first comment -> the kind of the state it shows
    "command": StateKind.INITIAL,
    "agent": StateKind.INITIAL,
    "decision": StateKind.INITIAL,
    "waiting": StateKind.WAITING,
    "human": StateKind.HUMAN,
    "parallel": StateKind.PARALLEL,
    "people": StateKind.PARALLEL,
    "map": StateKind.PARALLEL,
    "final": StateKind.FINAL,
}


def _kind_snippets() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Every kind of state", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```yml\n(.*?)```", section, re.DOTALL)
    return {block.split(":", 1)[0].removeprefix("# "): block for block in blocks}


def test_the_readme_shows_every_kind_of_state() -> None:
    assert set(_kind_snippets()) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_each_state_kind_snippet_validates(kind: str) -> None:
    snippet = _kind_snippets()[kind]
    commands = frozenset(re.findall(r"name: (check_\w+|score_\w+|price_\w+)", snippet))
    commands |= frozenset(re.findall(r"address: (\w+)", snippet))
    definition = loads(snippet, file="README.md", commands=commands)
    assert definition.name == f"kinds_{kind}"
    declared = [s for s in definition.states.values() if s.location.file == "README.md"]
    assert KINDS[kind] in {s.kind for s in declared}
    if kind == "map":
        (fan_out,) = [s.parallel for s in declared if s.parallel is not None]
        assert fan_out.over is not None and fan_out.map_command is not None
    if kind == "parallel":
        (fan_out,) = [s.parallel for s in declared if s.parallel is not None]
        assert [b.name for b in fan_out.branches] == ["credit", "fraud", "address"]
    if kind == "people":
        (fan_out,) = [s.parallel for s in declared if s.parallel is not None]
        senior, legal = fan_out.branches
        assert senior.task is not None and senior.outcomes == ("approve", "reject")
        assert [step.name for step in legal.steps] == ["sanctions", "sign_off"]
    if kind == "decision":
        assert all(s.command is None for s in declared)


def test_the_readme_result_model_example_runs() -> None:
    text = README.read_text(encoding="utf-8")
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "result=Stock" in b
    ]
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    registry = namespace["registry"]
    assert isinstance(registry, CommandRegistry)
    assert registry.schemas()["check_stock"]["properties"]["available"]["type"] == "integer"


def test_the_readme_early_events_example_loads() -> None:
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yml\n(.*?)```", text, re.DOTALL) if "buffer:" in b)
    paid = (loads(block, file="README.md").events or {})["paid"]
    assert paid.buffer_ttl == 24 * 3600


def test_the_readme_webhook_example_loads() -> None:
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yml\n(.*?)```", text, re.DOTALL) if "webhook:" in b)
    document = (
        "workflow: publish\ninput: [copy]\n" + block + "  start:\n    kind: initial\n"
        "    transitions: [{to: send_to_cms}]\n  published: {kind: final}\n"
        "  publish_failed: {kind: final}\n"
    )
    definition = loads(document, file="README.md")
    state = definition.states["send_to_cms"]
    assert state.webhook is not None and state.webhook.to == "cms"
    assert state.command is not None and state.command.retry.attempts == 4


def test_the_readme_retry_adjust_and_on_timeout_examples_load() -> None:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```yml\n(.*?)```", text, re.DOTALL)
    agents = next(b for b in blocks if "adjust:" in b)
    fetch = next(b for b in blocks if "on_timeout: previous" in b)
    document = (
        "workflow: orders\ninput: [n]\n" + agents + "states:\n  start:\n    kind: initial\n"
        "    transitions: [{to: classify}]\n  classify:\n    agent: classify\n"
        "    transitions: [{to: fetch}]\n" + fetch + "  process: {kind: final}\n"
        "  fetch_failed: {kind: final}\n"
    )
    definition = loads(document, file="README.md")
    assert len(definition.agents["classify"].retry.adjust) == 2
    command = definition.states["fetch"].command
    assert command is not None and command.retry.on_timeout == "previous"


def test_each_model_server_snippet_is_an_agent_statewise_accepts() -> None:
    from statewise.ai import AISettings
    from statewise.ai.models import model_settings, parse_model
    from statewise.ai.schema import check_mode

    text = README.read_text(encoding="utf-8")
    section = text.split("### Servers of your own", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```yml\n(.*?)```", section, re.DOTALL)
    urls = set()
    for block in blocks:
        document = (
            "workflow: servers\n" + block + "states:\n  start:\n    kind: initial\n"
            "    agent: classifier\n    transitions: [{to: done}]\n  done: {kind: final}\n"
        )
        spec = loads(document, file="README.md").agents["classifier"]
        parse_model(str(spec.model), spec.name)
        model_settings(spec, AISettings())  # every setting is one statewise or pydantic-ai knows
        check_mode(spec.name, str(spec.settings.get("output_mode", "auto")))
        urls.add(spec.settings.get("base_url"))
    # llama.cpp, Ollama, vLLM, LM Studio, and OpenAI itself without one.
    assert urls == {
        "http://localhost:8080/v1",
        "http://localhost:11434/v1",
        "http://localhost:8000/v1",
        "http://localhost:1234/v1",
        None,
    }
