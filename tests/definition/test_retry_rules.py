"""``retry:`` that changes things: an agent's ``adjust`` entries, and ``on_timeout``."""

from __future__ import annotations

import textwrap

import pytest

from statewise.definition import loads
from statewise.definition.builder import Workflow, cmd, to_yaml
from statewise.definition.model import Adjustment
from statewise.errors import DefinitionError

BASE = """
workflow: triage
version: 1
input: [text]
agents:
  classify:
    model: openai:gpt-4.1-mini
    instructions: Classify the text.
    RETRY
states:
  start:
    kind: initial
    command: prepare
    transitions: [{to: sort}]
  sort:
    agent: classify
    transitions: [{to: fetch}]
  fetch:
    command: FETCH
    transitions: [{to: done}]
  done: {kind: final}
"""


def text(retry: str, fetch: str = "fetch") -> str:
    return textwrap.dedent(BASE).replace("RETRY", retry).replace("FETCH", fetch)


def messages(retry: str, fetch: str = "fetch") -> list[str]:
    with pytest.raises(DefinitionError) as info:
        loads(text(retry, fetch), commands=frozenset({"prepare", "fetch"}))
    return [p.message for p in info.value.problems]


def test_adjust_entries_load_in_order() -> None:
    loaded = loads(
        text(
            "retry: {attempts: 3, backoff: 1s, adjust: [{temperature: 0.2}, "
            '{model: "openai:gpt-4.1", temperature: 0, instructions: "Labels only."}]}'
        ),
        commands=frozenset({"prepare", "fetch"}),
    )

    retry = loaded.agents["classify"].retry
    assert retry.adjust == (
        Adjustment(settings={"temperature": 0.2}),
        Adjustment("openai:gpt-4.1", "Labels only.", {"temperature": 0}),
    )
    assert retry.adjustment(1) is None and retry.adjustment(3) == retry.adjust[1]
    assert loads(to_yaml(loaded)) == loaded


@pytest.mark.parametrize(
    ("retry", "fetch", "expected"),
    [
        (
            "retry: {attempts: 3, adjust: [{temprature: 0.2}]}",
            "fetch",
            "unknown key `temprature` in an `adjust` entry; did you mean `temperature`?",
        ),
        (
            "retry: {attempts: 3, adjust: [{model: gpt-4.1}]}",
            "fetch",
            "model `gpt-4.1` must be `provider:name`",
        ),
        (
            "retry: {attempts: 3, adjust: [{model: opena}]}",
            "fetch",
            "did you mean `openai:<model>`?",
        ),
        (
            "retry: {attempts: 2, adjust: [{temperature: 0}, {temperature: 1}]}",
            "fetch",
            "agent `classify` has 2 `adjust` entries but 2 attempts, so it retries 1 time(s)",
        ),
        ("retry: {attempts: 2, adjust: [{}]}", "fetch", "an `adjust` entry changes nothing"),
        (
            "retry: {attempts: 2}",
            "{name: fetch, retry: {adjust: [{temperature: 0}]}}",
            "`fetch` is a command, not an agent",
        ),
        (
            "retry: {attempts: 2}",
            "{name: fetch, retry: {on_timeout: previous}}",
            "give `fetch` a `max_visits` (and an `on_exhausted` state)",
        ),
        (
            "retry: {attempts: 2, on_timeout: back}",
            "fetch",
            "`on_timeout`: input should be 'previous', not `'back'`",
        ),
    ],
)
def test_mistakes_in_adjust_and_on_timeout_are_reported(
    retry: str, fetch: str, expected: str
) -> None:
    found = messages(retry, fetch)
    assert any(expected in message for message in found), found


def test_on_timeout_in_the_initial_state_has_nowhere_to_go() -> None:
    source = text("retry: {attempts: 2}").replace(
        "command: prepare", "command: {name: prepare, retry: {on_timeout: previous}}"
    )
    with pytest.raises(DefinitionError) as info:
        loads(source, commands=frozenset({"prepare", "fetch"}))
    (problem,) = info.value.problems
    assert "in the initial state `start`: an item starts here" in problem.message


def test_the_builder_writes_adjust_and_on_timeout_back_equal() -> None:
    wf = Workflow("triage", inputs=["text"])
    wf.agent(
        "classify",
        model="openai:gpt-4.1-mini",
        instructions="Classify the text.",
        retry={"attempts": 3, "adjust": [{"temperature": 0.2}, {"model": "openai:gpt-4.1"}]},
    )
    wf.initial("start").to("sort")
    wf.state("sort", agent="classify").to("fetch")
    wf.state(
        "fetch",
        command=cmd("fetch", retry={"timeout": "30s", "on_timeout": "previous"}),
        max_visits=2,
    ).to("done")
    wf.final("done")
    built = wf.build(commands=frozenset({"fetch"}))

    source = wf.to_yaml()
    assert "adjust:\n        - temperature: 0.2\n        - model: openai:gpt-4.1\n" in source
    assert "on_timeout: previous" in source
    assert loads(source) == built == loads(to_yaml(built))
