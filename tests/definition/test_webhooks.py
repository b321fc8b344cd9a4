"""A state's ``webhook:``: how it loads, what validation says about it, the builder's parity."""

from __future__ import annotations

import textwrap

import pytest

from statewise.definition import loads
from statewise.definition.builder import Workflow, to_yaml
from statewise.definition.model import WEBHOOK_RESULT_SCHEMA, RetryPolicy, Webhook
from statewise.errors import DefinitionError

BASE = """
workflow: publish
version: 1
input: [copy]
destinations:
  cms: {url_env: CMS_URL, secret_env: CMS_SECRET}
  team_chat: {url_env: CHAT_URL, preset: chat}
states:
  start:
    kind: initial
    command: write
    transitions: [{to: send}]
  send:
    STATE
    transitions:
      - to: done
        when: cms_delivery.status == 200
      - else: true
        to: done
      - on: error
        to: done
  done: {kind: final}
"""


def definition(state: str) -> str:
    return textwrap.dedent(BASE).replace("STATE", textwrap.indent(state, "    ").strip())


def messages(state: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        loads(definition(state), commands=frozenset({"write"}))
    return [p.message for p in info.value.problems]


def test_a_webhook_state_runs_the_built_in_command_with_its_retry() -> None:
    loaded = loads(
        definition(
            "webhook: {to: cms, payload: copy, result: cms_delivery}\n"
            "retry: {attempts: 4, backoff: 2s}"
        ),
        commands=frozenset({"write"}),
    )

    state = loaded.state("send")
    assert state.webhook == Webhook("cms", "copy")
    assert state.command is not None
    assert (state.command.name, state.command.result) == ("webhook:cms", "cms_delivery")
    assert state.command.retry == RetryPolicy(attempts=4, backoff=2.0)
    assert state.command.result_schema == WEBHOOK_RESULT_SCHEMA


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (
            "webhook: {to: cmss, payload: copy, result: cms_delivery}",
            "state `send` sends a webhook to `cmss`, which is not declared under "
            "`destinations:`; did you mean `cms`? (declared: `cms`, `team_chat`)",
        ),
        (
            "webhook: {to: team_chat, payload: copy, result: cms_delivery}",
            "a `preset: chat` destination",
        ),
        (
            "webhook: {to: cms, payload: cpy, result: cms_delivery}",
            "webhook payload `cpy` starts at `cpy`, which is not an input key, a command "
            "result or a task decision; did you mean `copy`?",
        ),
        (
            "webhook: {to: cms, payload: 'copy[0]', result: cms_delivery}",
            "`payload` must be a context path such as `copy`",
        ),
        (
            "command: write\nretry: {attempts: 2}",
            "state `send` has `retry:` but no `webhook:`",
        ),
        (
            "command: write\nwebhook: {to: cms, payload: copy, result: cms_delivery}",
            "state `send` has `webhook` and a command or agent",
        ),
    ],
)
def test_mistakes_are_reported_with_the_fix(state: str, expected: str) -> None:
    found = messages(state)
    assert any(expected in message for message in found), found


def test_a_payload_field_the_result_does_not_declare_is_reported() -> None:
    text = definition("webhook: {to: cms, payload: start.titel, result: cms_delivery}").replace(
        "command: write",
        "command: {name: write, result_schema: {type: object, properties: "
        "{title: {type: string}}}}",
    )
    with pytest.raises(DefinitionError) as info:
        loads(text, commands=frozenset({"write"}))
    (problem,) = info.value.problems
    assert "reads `titel`, which the result `start` does not declare; did you mean `title`?" in (
        problem.message
    )


def test_the_builder_writes_the_yaml_that_loads_back_equal() -> None:
    wf = Workflow(
        "publish",
        inputs=["copy"],
        destinations={"cms": {"url_env": "CMS_URL", "secret_env": "CMS_SECRET"}},
    )
    wf.initial("start").to("send")
    wf.webhook("send", to="cms", payload="copy", result="cms_delivery", retry={"attempts": 4}).to(
        "done"
    ).on("error", "done")
    wf.final("done")
    built = wf.build()

    text = wf.to_yaml()
    assert "webhook:\n      to: cms\n      payload: copy\n      result: cms_delivery\n" in text
    assert loads(text) == built
    assert loads(to_yaml(built)) == built
    assert built.state("send").webhook == Webhook("cms", "copy")
