"""Running agents end to end: real pydantic-ai clients against local protocol servers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest

from statewise.contract import CommandRegistry
from statewise.errors import InvalidOutputError
from statewise.store.sqlite import SQLiteStore

from .conftest import OPENAI_MODEL, agent, on_anthropic, registered, workflow
from .servers import (
    FakeProvider,
    anthropic_text,
    anthropic_tool_use,
    message_text,
    openai_text,
    openai_tool_call,
)

CATEGORY = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "technical", "other"]},
        "urgent": {"type": "boolean"},
    },
    "required": ["category", "urgent"],
}


def system_prompt(body: dict[str, Any]) -> str:
    return message_text(body["messages"][0])


def version_of(instructions: str) -> str:
    """The short hash an agent's audit record names its instructions template by."""
    return hashlib.sha256(instructions.encode()).hexdigest()[:12]


def test_structured_output_over_openai_chat_completions(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    spec = agent(
        instructions="You triage mail for {{ company }}. Case {{ item.key }}.",
        input="{{ message }}",
        output=CATEGORY,
    )
    openai.reply(openai_tool_call("final_result", {"category": "billing", "urgent": True}))

    async def scenario() -> None:
        async with registered(store, workflow(spec), openai=openai) as agents:
            result = await agents.run(
                "classifier", {"company": "Acme", "message": "I was charged twice"}
            )
        assert result.value == {"category": "billing", "urgent": True}
        assert result.usage["agent"] == "classifier"
        assert result.usage["provider"] == "openai"
        assert result.usage["model"] == "openai:gpt-4o-mini"
        assert result.usage["output_mode"] == "tool"
        assert result.usage["instructions"] == version_of(spec.instructions)
        assert (result.usage["input_tokens"], result.usage["output_tokens"]) == (100, 20)
        assert result.usage["outcome"] == "ok"
        assert result.usage["cached"] is False
        assert result.usage["tool_calls"] == []
        assert result.usage["latency"] > 0

    asyncio.run(scenario())
    (request,) = openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-openai-0123456789abcdef"
    body = request.body
    assert system_prompt(body) == "You triage mail for Acme. Case item-1."
    assert body["messages"][1]["role"] == "user"
    assert message_text(body["messages"][1]) == "I was charged twice"
    (tool,) = body["tools"]
    assert tool["function"]["name"] == "final_result"
    assert tool["function"]["parameters"]["properties"] == CATEGORY["properties"]


def test_structured_output_over_anthropic_messages(
    anthropic: FakeProvider, store: SQLiteStore
) -> None:
    spec = on_anthropic(anthropic, instructions="Triage for {{ company }}.", output=CATEGORY)
    anthropic.reply(anthropic_tool_use("final_result", {"category": "technical", "urgent": False}))

    async def scenario() -> None:
        async with registered(store, workflow(spec)) as agents:
            result = await agents.run("classifier", {"company": "Acme", "message": "It broke"})
        assert result.value == {"category": "technical", "urgent": False}
        assert result.usage["provider"] == "anthropic"
        assert (result.usage["input_tokens"], result.usage["output_tokens"]) == (80, 30)

    asyncio.run(scenario())
    (request,) = anthropic.requests
    assert request.path == "/v1/messages"
    credentials = request.headers.get("x-api-key") or request.headers["authorization"]
    assert credentials.endswith("sk-ant-test-0123456789abcdef")
    assert "Triage for Acme." in [block["text"] for block in request.body["system"]]
    # Without an input template the user message is the whole context, as JSON.
    sent = request.body["messages"][0]["content"][0]["text"]
    assert json.loads(sent) == {"company": "Acme", "message": "It broke"}
    assert request.body["tools"][0]["input_schema"]["required"] == ["category", "urgent"]


def test_text_output_on_both_protocols(
    openai: FakeProvider, anthropic: FakeProvider, store: SQLiteStore
) -> None:
    writer = agent("writer", instructions="Write a reply.")
    poet = on_anthropic(anthropic, name="poet", instructions="Write a haiku.")
    openai.reply(openai_text("Dear customer, sorry."))
    anthropic.reply(anthropic_text("Refunds drift like leaves"))

    async def scenario() -> None:
        async with registered(store, workflow(writer, poet), openai=openai) as agents:
            wrote = await agents.run("writer", {})
            assert wrote.value == "Dear customer, sorry."
            assert (await agents.run("poet", {})).value == "Refunds drift like leaves"
        assert (wrote.usage["output_mode"], wrote.usage["model"]) == ("text", OPENAI_MODEL)

    asyncio.run(scenario())
    assert "tools" not in openai.requests[0].body


def test_native_output_mode_uses_the_json_schema_response_format(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    spec = agent(output=CATEGORY, settings={"output_mode": "native"})
    openai.reply(openai_text(json.dumps({"category": "other", "urgent": False})))

    async def scenario() -> None:
        async with registered(store, workflow(spec), openai=openai) as agents:
            result = await agents.run("classifier", {"message": "hello"})
        assert result.value == {"category": "other", "urgent": False}
        assert result.usage["output_mode"] == "native"

    asyncio.run(scenario())
    response_format = openai.requests[0].body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["properties"] == CATEGORY["properties"]


def test_the_record_names_the_instructions_template_not_the_rendered_text(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    template = "Triage mail for {{ company }}."
    first = agent(instructions=template, output=CATEGORY, settings={"output_mode": "prompted"})
    edited = agent("edited", instructions=template + " Be brief.", output=CATEGORY)
    reply = json.dumps({"category": "other", "urgent": False})
    openai.reply(openai_text(reply), openai_text(reply))
    openai.reply(openai_tool_call("final_result", {"category": "other", "urgent": False}))

    async def scenario() -> list[dict[str, Any]]:
        async with registered(store, workflow(first, edited), openai=openai) as agents:
            return [
                (await agents.run("classifier", {"company": "Acme"})).usage,
                (await agents.run("classifier", {"company": "Initech"}, key="item-2")).usage,
                (await agents.run("edited", {"company": "Acme"})).usage,
            ]

    acme, initech, changed = asyncio.run(scenario())
    assert acme["output_mode"] == "prompted" and changed["output_mode"] == "tool"
    assert acme["instructions"] == initech["instructions"] == version_of(template)
    assert changed["instructions"] == version_of(template + " Be brief.")


def test_a_tool_is_called_then_the_output_given(openai: FakeProvider, store: SQLiteStore) -> None:
    registry = CommandRegistry()

    @registry.tool()
    def order_status(order_id: str, include_items: bool = False) -> dict[str, Any]:
        """Look up an order in the shop's database.

        Args:
            order_id: The order number the customer quoted.
            include_items: Whether to list the order's items too.
        """
        return {"order_id": order_id, "status": "shipped"}

    spec = agent(
        "support",
        instructions="Answer about orders.",
        tools=("order_status",),
        output={"type": "object", "properties": {"answer": {"type": "string"}}},
    )
    openai.reply(
        openai_tool_call("order_status", {"order_id": "A-17"}, call_id="call_tool"),
        openai_tool_call("final_result", {"answer": "Your order A-17 has shipped."}),
    )

    async def scenario() -> None:
        async with registered(store, workflow(spec), registry=registry, openai=openai) as agents:
            result = await agents.run("support", {"message": "Where is A-17?"})
        assert result.value == {"answer": "Your order A-17 has shipped."}
        assert result.usage["tool_calls"] == [
            {
                "name": "order_status",
                "args": {"order_id": "A-17"},
                "result": {"order_id": "A-17", "status": "shipped"},
            }
        ]
        assert result.usage["requests"] == 2
        assert result.usage["input_tokens"] == 200

    asyncio.run(scenario())
    first, second = openai.bodies()
    tools = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert tools["order_status"]["description"] == "Look up an order in the shop's database."
    parameters = tools["order_status"]["parameters"]["properties"]
    assert parameters["order_id"]["description"] == "The order number the customer quoted."
    assert parameters["include_items"]["type"] == "boolean"
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert json.loads(tool_message["content"]) == {"order_id": "A-17", "status": "shipped"}


def test_a_schema_violation_is_shown_to_the_model_and_retried(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    spec = agent(output=CATEGORY)
    openai.reply(
        openai_tool_call("final_result", {"category": "refund", "urgent": True}),
        openai_tool_call("final_result", {"category": "billing", "urgent": True}),
    )

    async def scenario() -> None:
        async with registered(store, workflow(spec), openai=openai) as agents:
            result = await agents.run("classifier", {"message": "money back"})
        assert result.value == {"category": "billing", "urgent": True}
        assert result.usage["requests"] == 2

    asyncio.run(scenario())
    feedback = openai.requests[1].body["messages"][-1]
    assert feedback["role"] == "tool"
    # How pydantic-ai wraps the retry message in the tool reply is its own; the path is ours.
    assert "- $.category: " in feedback["content"]


def test_persistent_schema_violations_fail_as_invalid_output(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    spec = agent(output=CATEGORY)
    openai.reply(*[openai_tool_call("final_result", {"category": "billing"})] * 3)

    async def scenario() -> None:
        async with registered(store, workflow(spec), openai=openai) as agents:
            with pytest.raises(InvalidOutputError) as raised:
                await agents.run("classifier", {"message": "money back"})
        error = raised.value
        # The last problem is quoted as pydantic-ai wrapped it for the model: only ours is pinned.
        assert "; last problem: " in error.message and "- $: " in error.message
        assert "urgent" in error.message
        assert error.usage is not None
        assert error.usage["outcome"] == "invalid_output"
        assert error.usage["requests"] == 3
        assert error.usage["input_tokens"] == 300

    asyncio.run(scenario())
    assert len(openai.requests) == 3  # the first try and output_retries=2


def test_invalid_output_shows_what_the_model_replied_cut_to_a_readable_length(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    # A small model echoing the schema back instead of filling it (issue 17, llama.cpp).
    echoed = "Here is the schema: " + json.dumps(CATEGORY) * 20
    spec = agent(output=CATEGORY, settings={"output_mode": "prompted"})
    openai.reply(*[openai_text(echoed)] * 3)

    async def scenario() -> None:
        async with registered(store, workflow(spec), openai=openai) as agents:
            with pytest.raises(InvalidOutputError) as raised:
                await agents.run("classifier", {"message": "money back"})
        message = raised.value.message
        assert "the model replied: 'Here is the schema: " in message
        assert f"... ({len(echoed):,} characters)'" in message
        assert len(message) < len(echoed)

    asyncio.run(scenario())


def test_too_many_tool_rounds_fail_as_invalid_output(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    registry = CommandRegistry()

    @registry.tool()
    def lookup(query: str) -> str:
        """Search the knowledge base."""
        return "nothing found"

    spec = agent("researcher", tools=("lookup",), max_tool_rounds=1, output=CATEGORY)
    openai.reply(
        *[openai_tool_call("lookup", {"query": "again"}, call_id=f"c{i}") for i in range(9)]
    )

    async def scenario() -> None:
        async with registered(
            store, workflow(spec), registry=registry, openai=openai, output_retries=0
        ) as agents:
            with pytest.raises(InvalidOutputError) as raised:
                await agents.run("researcher", {"message": "?"})
        assert "request_limit" in raised.value.message
        assert raised.value.usage is not None
        assert [c["name"] for c in raised.value.usage["tool_calls"]] == ["lookup", "lookup"]

    asyncio.run(scenario())
    assert len(openai.requests) == 2


def test_a_tool_round_over_anthropic(anthropic: FakeProvider, store: SQLiteStore) -> None:
    registry = CommandRegistry()

    @registry.tool()
    def exchange_rate(currency: str) -> float:
        """Today's rate of ``currency`` to euros."""
        return 0.92

    spec = on_anthropic(
        anthropic,
        tools=("exchange_rate",),
        output={"type": "object", "properties": {"euros": {"type": "number"}}},
    )
    anthropic.reply(
        anthropic_tool_use("exchange_rate", {"currency": "USD"}, call_id="toolu_rate"),
        anthropic_tool_use("final_result", {"euros": 92.0}),
    )

    async def scenario() -> None:
        async with registered(store, workflow(spec), registry=registry) as agents:
            result = await agents.run("classifier", {"amount": "100 USD"})
        assert result.value == {"euros": 92.0}
        assert result.usage["tool_calls"] == [
            {"name": "exchange_rate", "args": {"currency": "USD"}, "result": 0.92}
        ]

    asyncio.run(scenario())
    answer = anthropic.requests[1].body["messages"][-1]["content"][0]
    assert (answer["type"], answer["tool_use_id"]) == ("tool_result", "toolu_rate")


def test_model_calls_are_traced_with_genai_attributes(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spec = agent(instructions="Triage.", input="{{ message }}", output=CATEGORY)
    openai.reply(openai_tool_call("final_result", {"category": "billing", "urgent": False}))

    async def scenario() -> None:
        async with registered(
            store, workflow(spec), openai=openai, tracer_provider=provider
        ) as agents:
            await agents.run("classifier", {"message": "charged twice"})

    asyncio.run(scenario())
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("chat")]
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.usage.input_tokens"] == 100
    assert "charged twice" not in str(attributes)  # no prompt content in spans
