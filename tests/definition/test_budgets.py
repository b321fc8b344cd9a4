"""``budget:`` of a workflow and of an agent state: loaded, checked with file:line, exported."""

from __future__ import annotations

import pytest

from statewise.definition import Workflow, loads, to_yaml
from statewise.definition.model import Budget
from statewise.errors import DefinitionError, Problem

FLOW = """\
workflow: drafts
budget: {tokens: 20000, cost: 0.5}
agents:
  writer: {model: local, instructions: Write.}
states:
  write:
    kind: initial
    agent: writer
    budget: {tokens: 5000, on_exceeded: editor}
    transitions: [{to: done}, {on: error, to: editor}]
  editor:
    kind: waiting
    transitions: [{on: approve, to: done}]
  done: {kind: final}
"""


def problems(text: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as failed:
        loads(text, file="drafts.yaml")
    return list(failed.value.problems)


def test_budgets_load_and_export_back_to_the_same_definition() -> None:
    definition = loads(FLOW)
    assert definition.budget == Budget(tokens=20000, cost=0.5)
    assert definition.states["write"].budget == Budget(tokens=5000, on_exceeded="editor")
    assert loads(to_yaml(definition)) == definition


def test_the_builder_writes_the_same_budgets() -> None:
    wf = Workflow("drafts", budget={"tokens": 20000, "cost": 0.5})
    wf.agent("writer", model="local", instructions="Write.")
    wf.initial("write", agent="writer", budget={"tokens": 5000, "on_exceeded": "editor"}).to(
        "done"
    ).on_error("editor")
    wf.waiting("editor").on("approve", "done")
    wf.final("done")
    assert wf.build() == loads(FLOW)
    assert "budget:\n  tokens: 20000\n  cost: 0.5\n" in wf.to_yaml()


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("tokens: -5", "`tokens` must be a whole number from 1 to 1,000,000,000,000 (got -5)"),
        ("tokens: 0", "`tokens` must be a whole number from 1 to 1,000,000,000,000 (got 0)"),
        ("tokens: 10000000000000", "(got 10,000,000,000,000)"),
        ("tokens: lots", "`tokens` must be a whole number, not `'lots'`"),
        ("tokens: 2.5", "`tokens` must be a whole number"),
        ("tokens: true", "`tokens` must be a whole number, not `True`"),
        ("cost: 0", "`cost` must be a number of USD above 0 and at most 1,000,000 (got 0)"),
        ("cost: -0.5", "(got -0.5)"),
        ("cost: .inf", "(got inf)"),
        ("cost: 1.0e+9", "(got 1e+09)"),
        ("cost: '1'", "`cost` must be a number, not `'1'`"),
        ("tokens: 5, on_exceeded: editr", "unknown state `editr`; did you mean `editor`?"),
        ("{}", "a budget needs `tokens`, `cost` or both"),
        ("tokens: 5, bogus: 1", "unknown key `bogus`; expected one of: tokens, cost, on_exceeded"),
    ],
)
def test_out_of_range_and_mistyped_budgets_are_refused_at_their_line(
    written: str, message: str
) -> None:
    body = written if written.startswith("{") else f"{{{written}}}"
    text = FLOW.replace("{tokens: 5000, on_exceeded: editor}", body)
    [problem] = problems(text)
    assert message in problem.message
    assert (problem.file, problem.line) == ("drafts.yaml", 9)


def test_a_budget_must_sit_where_an_agent_runs_and_lead_where_none_does() -> None:
    text = FLOW.replace(
        "    kind: waiting\n", "    kind: waiting\n    budget: {tokens: 10}\n"
    ).replace("on_exceeded: editor", "on_exceeded: write")
    found = [(p.line, p.message) for p in problems(text)]
    assert found == [
        (9, "`on_exceeded` of state `write` is the state itself, whose spent budget would "
            "refuse it again; name another state"),
        (13, "state `editor` has a `budget` but runs no agent, so it would never spend; put the "
             "budget on the state that runs the agent"),
    ]  # fmt: skip
    text = FLOW.replace("cost: 0.5}", "cost: 0.5, on_exceeded: write}")
    [problem] = problems(text)
    assert problem.line == 2 and "`on_exceeded` state `write` runs an agent" in problem.message


def test_budget_failures_cannot_be_retried() -> None:
    text = FLOW.replace("agent: writer", "agent: {name: writer, retry: {retry_on: [budget]}}")
    [problem] = problems(text)
    assert "`retry_on` cannot hold `budget`" in problem.message
