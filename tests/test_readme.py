"""The README's workflow example is real: it loads and validates as written."""

import re
from pathlib import Path

from statewise import loads

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
    block = next(b for b in re.findall(r"```yml\n(.*?)```", text, re.DOTALL) if "kind: human" in b)
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


def test_the_readme_early_events_example_loads() -> None:
    text = README.read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yml\n(.*?)```", text, re.DOTALL) if "buffer:" in b)
    paid = (loads(block, file="README.md").events or {})["paid"]
    assert paid.buffer_ttl == 24 * 3600
