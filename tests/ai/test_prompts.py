"""Rendering instructions and input: sandboxed Jinja2, strict about undefined variables."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from statewise.ai.prompts import Prompts
from statewise.contract import CommandContext
from statewise.definition.model import KnowledgeDoc
from statewise.errors import PermanentError, StatewiseError
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, registered, workflow
from .servers import FakeProvider


def render(instructions: str, context: dict[str, Any], input: str | None = None) -> tuple[str, str]:
    prompts = Prompts(agent(instructions=instructions, input=input))
    ctx = CommandContext("triage", "k-9", "review", 2, "k-9:2", context, branch="b", input=[1])
    rendered = prompts.render(ctx, {"writer": [{"role": "user", "text": "hi"}]})
    return rendered.instructions, rendered.input


def test_templates_see_the_context_the_item_and_the_conversations() -> None:
    instructions, user_input = render(
        "{{ customer.name }} / {{ item.key }} in {{ item.state }} (attempt {{ item.attempt }}, "
        "branch {{ item.branch }}, input {{ item.input }}) / {{ context['odd-key'] }} / "
        "{{ conversations.writer[0].text }}",
        {"customer": {"name": "Ada"}, "odd-key": 1, "score": 0.5},
        input="score={{ score }} {{ customer | json }}",
    )
    assert instructions == "Ada / k-9 in review (attempt 2, branch b, input [1]) / 1 / hi"
    assert user_input == 'score=0.5 {\n  "name": "Ada"\n}'


def test_the_default_input_is_the_context_as_json() -> None:
    assert render("x", {"b": 1, "a": [True]})[1] == '{\n  "a": [\n    true\n  ],\n  "b": 1\n}'


def test_a_missing_variable_is_a_permanent_error_that_names_it() -> None:
    with pytest.raises(PermanentError) as raised:
        render("Dear {{ customer_name }},", {"customer": "Ada"})
    message = raised.value.message
    assert "agent 'classifier'" in message
    assert "the instructions template uses `customer_name`, which is not defined (" in message
    assert "available: context, conversations, customer, item" in message


def test_a_missing_field_is_named_too() -> None:
    with pytest.raises(PermanentError) as raised:
        render("x", {"customer": {"name": "Ada"}}, input="{{ customer.email }}")
    message = raised.value.message
    assert "the input template uses a field or element that is not there (" in message
    assert "email" in message  # named in Jinja's words, appended in the parentheses


def test_the_sandbox_refuses_python_internals() -> None:
    with pytest.raises(PermanentError, match="template failed"):
        render("{{ item.__class__.__mro__[1].__subclasses__() }}", {})


def test_a_syntax_error_fails_at_registration() -> None:
    with pytest.raises(StatewiseError, match="invalid template"):
        Prompts(agent(instructions="{% if %}"))


def test_a_missing_variable_fails_the_command_before_any_request(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    spec = agent(instructions="Hello {{ nme }}")

    async def scenario() -> PermanentError:
        async with registered(store, workflow(spec), openai=openai) as agents:
            with pytest.raises(PermanentError) as raised:
                await agents.run("classifier", {"name": "Ada"})
        return raised.value

    raised = asyncio.run(scenario())
    assert "uses `nme`, which is not defined" in raised.message
    assert raised.usage is not None and raised.usage["outcome"] == "permanent"
    assert openai.requests == []


RETURNS = KnowledgeDoc("Returns", "Items can be returned within 30 days.")


def test_knowledge_is_quoted_after_the_instructions_unless_a_template_places_it() -> None:
    ctx = CommandContext("triage", "k", "answer", 1, "k:1", {})
    appended = Prompts(agent(instructions="Answer.", knowledge=(RETURNS,))).render(ctx, {})
    assert appended.instructions == (
        "Answer.\n\nAnswer from this knowledge base:\n\n"
        "## Returns\nItems can be returned within 30 days."
    )
    placed = Prompts(
        agent(instructions="Docs: {{ knowledge[0].title }}", knowledge=(RETURNS,))
    ).render(ctx, {})
    assert placed.instructions == "Docs: Returns"
