"""Per-item conversations: kept in a real SQLite store, fed back, pruned, read by a supervisor."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from statewise.ai import conversations
from statewise.errors import TransientError
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, create_item, registered, workflow
from .servers import FakeProvider, error, openai_text, openai_tool_call

WRITER = agent(
    "writer",
    instructions="You write replies to customers.",
    input=(
        "{% if review is defined %}The reviewer says: {{ review.feedback }}. Revise your draft."
        "{% else %}Reply to: {{ message }}{% endif %}"
    ),
    conversation=True,
)
REVIEWER = agent(
    "reviewer",
    instructions="Review the draft.",
    input="{{ draft }}",
    output={
        "type": "object",
        "properties": {"approved": {"type": "boolean"}, "feedback": {"type": "string"}},
        "required": ["approved", "feedback"],
    },
)


def roles(body: dict[str, object]) -> list[tuple[str, object]]:
    messages = body["messages"]
    assert isinstance(messages, list)
    return [(m["role"], m.get("content")) for m in messages]


def test_a_revision_loop_feeds_the_feedback_into_the_next_draft(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    definition = workflow(WRITER, REVIEWER)
    openai.reply(
        openai_text("Dear customer, no."),
        openai_tool_call("final_result", {"approved": False, "feedback": "be kinder"}),
        openai_text("Dear customer, we are sorry and will refund you."),
    )

    async def scenario() -> None:
        await create_item(store, definition)
        context: dict[str, object] = {"message": "I was charged twice"}
        async with registered(store, definition, openai=openai) as agents:
            first = await agents.run("writer", context)
            context["draft"] = first.value
            context["review"] = (await agents.run("reviewer", context)).value
            second = await agents.run("writer", context)
        assert second.value == "Dear customer, we are sorry and will refund you."
        # Only this run's tokens are accounted, not the history's.
        assert second.usage["input_tokens"] == 100
        stored = await store.conversations("triage", "item-1")
        assert set(stored) == {"writer"}  # the reviewer keeps no conversation
        kept = conversations.transcript(conversations.load("writer", stored["writer"]))
        assert [entry["role"] for entry in kept] == ["user", "assistant", "user", "assistant"]

    asyncio.run(scenario())
    draft, _, revision = openai.bodies()
    assert roles(draft)[1:] == [("user", "Reply to: I was charged twice")]
    assert roles(revision)[1:] == [
        ("user", "Reply to: I was charged twice"),
        ("assistant", "Dear customer, no."),
        ("user", "The reviewer says: be kinder. Revise your draft."),
    ]


def test_the_conversation_is_pruned_to_the_token_budget(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    definition = workflow(WRITER)
    openai.reply(*(openai_text(f"answer {n} " + "x" * 40) for n in range(3)))

    async def scenario() -> None:
        await create_item(store, definition)
        async with registered(
            store, definition, openai=openai, conversation_token_budget=40
        ) as agents:
            for n in range(3):
                await agents.run("writer", {"message": f"question {n} " + "y" * 40})
        stored = await store.conversations("triage", "item-1")
        kept = conversations.load("writer", stored["writer"])
        assert [entry["text"][:10] for entry in conversations.transcript(kept)] == [
            "Reply to: ",
            "answer 2 x",
        ]

    asyncio.run(scenario())
    third = roles(openai.bodies()[2])[1:]
    # Two exchanges of ~25 tokens do not fit 40: only the newest earlier one is fed back.
    assert [content[:19] for _, content in third] == [  # type: ignore[index]
        "Reply to: question ",
        "answer 1 xxxxxxxxxx",
        "Reply to: question ",
    ]


def test_a_failed_attempt_leaves_the_conversation_alone(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    definition = workflow(WRITER)
    openai.reply(openai_text("first draft"), error(500, "down"))

    async def scenario() -> None:
        await create_item(store, definition)
        async with registered(store, definition, openai=openai) as agents:
            await agents.run("writer", {"message": "hi"})
            before = await store.conversations("triage", "item-1")
            with pytest.raises(TransientError):
                await agents.run("writer", {"message": "hi"})
        assert await store.conversations("triage", "item-1") == before

    asyncio.run(scenario())


def test_a_supervisor_reads_a_specialists_conversation(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    specialist = agent(
        "billing_specialist",
        instructions="Resolve billing questions.",
        input="{{ message }}",
        output={"type": "object", "properties": {"resolution": {"type": "string"}}},
        conversation=True,
    )
    supervisor = agent(
        "supervisor",
        instructions=(
            "Check the specialist's work.\n"
            "{% for turn in conversations.billing_specialist %}"
            "{{ turn.role }}: {{ turn.text }}\n"
            "{% endfor %}"
            "Its result: {{ resolution | json }}"
        ),
        input="Is the resolution right?",
    )
    definition = workflow(specialist, supervisor)
    openai.reply(
        openai_tool_call("final_result", {"resolution": "refund 20 EUR"}),
        openai_text("Yes."),
    )

    async def scenario() -> None:
        await create_item(store, definition)
        async with registered(store, definition, openai=openai) as agents:
            resolution = await agents.run("billing_specialist", {"message": "charged twice"})
            await agents.run("supervisor", {"resolution": resolution.value})

    asyncio.run(scenario())
    instructions = roles(openai.bodies()[1])[0][1]
    assert instructions == (
        "Check the specialist's work.\n"
        "user: charged twice\n"
        'assistant: {"resolution":"refund 20 EUR"}\n'
        'Its result: {\n  "resolution": "refund 20 EUR"\n}'
    )


def _exchange(n: int, *, tool: bool = False) -> list[ModelMessage]:
    messages: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart(f"question {n} " * 10)])]
    if tool:
        messages += [
            ModelResponse(parts=[ToolCallPart("lookup", {"q": n}, tool_call_id=f"t{n}")]),
            ModelRequest(parts=[ToolReturnPart("lookup", "found " * 20, tool_call_id=f"t{n}")]),
        ]
    messages.append(ModelResponse(parts=[TextPart(f"answer {n} " * 10)]))
    return messages


def test_pruning_drops_whole_exchanges_oldest_first() -> None:
    history = _exchange(1) + _exchange(2, tool=True) + _exchange(3)
    sizes = [conversations.estimate_tokens(_exchange(n, tool=n == 2)) for n in (1, 2, 3)]
    assert conversations.prune(history, sum(sizes)) == history
    kept = conversations.prune(history, sizes[1] + sizes[2])
    assert kept == history[2:]  # the tool call stays with its result
    assert conversations.prune(history, 1) == history[-2:]  # the newest exchange always stays
    assert conversations.prune([], 10) == []


def test_stored_conversations_round_trip_through_json() -> None:
    history = _exchange(1, tool=True)
    restored = conversations.load("a", conversations.dump(history))
    assert conversations.transcript(restored) == conversations.transcript(history)
    assert json.loads(conversations.dump(history))[0]["kind"] == "request"


def test_an_unreadable_stored_conversation_is_a_permanent_error() -> None:
    from statewise.errors import PermanentError

    with pytest.raises(PermanentError, match="conversation of agent 'writer'"):
        conversations.load("writer", '[{"kind": "nonsense"}]')
