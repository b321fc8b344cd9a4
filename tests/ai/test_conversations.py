"""Per-item conversations: proposed by an attempt, kept by the step that accepts it, fed back.

An agent's attempt only proposes the conversation it wants kept (``CommandResult.conversation``);
the step that accepts its result saves it in that step's own transaction. The tests of one
attempt check the proposal and that the attempt itself writes nothing; the tests through a real
runner check what the committed steps keep and what the next visit feeds back to the model.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

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
from statewise.definition import loads
from statewise.errors import TransientError
from statewise.store.sqlite import SQLiteStore

from .conftest import OPENAI_MODEL, agent, agent_runner, registered, workflow
from .servers import FakeProvider, Reply, error, message_text, openai_text, openai_tool_call

WRITER = agent(
    "writer",
    instructions="You write replies to customers.",
    input="Reply to: {{ message }}",
    conversation=True,
)
REVIEWER = agent("reviewer", instructions="Review the draft.", input="{{ draft }}")
REVISIONS = f"""
workflow: drafting
input: [message]
agents:
  writer:
    model: {OPENAI_MODEL}
    instructions: You write replies to customers.
    input: >-
      {{% if review is defined %}}The reviewer says: {{{{ review.feedback }}}}. Revise your
      draft.{{% else %}}Reply to: {{{{ message }}}}{{% endif %}}
    conversation: per_item
  reviewer:
    model: {OPENAI_MODEL}
    instructions: Review the draft.
    input: "{{{{ draft }}}}"
    output:
      type: object
      properties: {{approved: {{type: boolean}}, feedback: {{type: string}}}}
      required: [approved, feedback]
states:
  write:
    kind: initial
    max_visits: 3
    agent: {{name: writer, result: draft}}
    transitions: [{{to: review}}]
  review:
    agent: {{name: reviewer, result: review}}
    transitions:
      - when: review.approved
        to: sent
      - else: true
        to: write
  sent: {{kind: final}}
"""


def roles(body: dict[str, object]) -> list[tuple[str, object]]:
    messages = body["messages"]
    assert isinstance(messages, list)
    return [(m["role"], message_text(m) if m.get("content") else None) for m in messages]


def kept(stored: dict[str, str], agent_name: str) -> list[dict[str, str]]:
    return conversations.transcript(conversations.load(agent_name, stored[agent_name]))


async def run_items(
    store: SQLiteStore, source: str, openai: FakeProvider, *items: tuple[str, Any], **settings: Any
) -> None:
    """Run ``items`` of the workflow ``source`` through a real runner until they are done."""
    definition = loads(source)
    async with agent_runner(store, definition, openai=openai, **settings) as runner:
        await runner.start(definition, items)
        await runner.run(max_wait=1.0)


# --- one attempt: a proposal, no write ------------------------------------------------------


def test_an_attempt_proposes_its_conversation_and_writes_none_itself(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    openai.reply(openai_text("Dear customer, no."), openai_text("Fine."), error(500, "down"))

    async def scenario() -> None:
        async with registered(store, workflow(WRITER, REVIEWER), openai=openai) as agents:
            draft = await agents.run("writer", {"message": "I was charged twice"})
            review = await agents.run("reviewer", {"draft": draft.value})
            with pytest.raises(TransientError):  # a failed attempt proposes nothing at all
                await agents.run("writer", {"message": "I was charged twice"})
        assert draft.conversation is not None and set(draft.conversation) == {"writer"}
        assert kept(draft.conversation, "writer") == [
            {"role": "user", "text": "Reply to: I was charged twice"},
            {"role": "assistant", "text": "Dear customer, no."},
        ]
        assert review.conversation is None  # the reviewer keeps no conversation
        assert await store.conversations("triage", "item-1") == {}

    asyncio.run(scenario())


# --- through the runner: what committed steps keep ------------------------------------------


def test_a_revision_loop_feeds_the_feedback_into_the_next_draft(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    openai.reply(
        openai_text("Dear customer, no."),
        openai_tool_call("final_result", {"approved": False, "feedback": "be kinder"}),
        openai_text("Dear customer, we are sorry and will refund you."),
        openai_tool_call("final_result", {"approved": True, "feedback": "good"}),
    )

    asyncio.run(run_items(store, REVISIONS, openai, ("item-1", {"message": "I was charged twice"})))

    item = asyncio.run(store.get_item(None, "item-1"))
    assert (item.state, item.context["draft"]) == (
        "sent",
        "Dear customer, we are sorry and will refund you.",
    )
    stored = asyncio.run(store.conversations("drafting", "item-1"))
    assert set(stored) == {"writer"}  # the reviewer keeps no conversation
    assert [entry["role"] for entry in kept(stored, "writer")] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    draft, _, revision, _ = openai.bodies()
    assert roles(draft)[1:] == [("user", "Reply to: I was charged twice")]
    assert roles(revision)[1:] == [
        ("user", "Reply to: I was charged twice"),
        ("assistant", "Dear customer, no."),
        ("user", "The reviewer says: be kinder. Revise your draft."),
    ]
    usages = [r.usage for r in asyncio.run(store.history(None, "item-1")) if r.usage]
    assert [u["input_tokens"] for u in usages] == [100] * 4  # only each run's own tokens


def test_the_conversation_is_pruned_to_the_token_budget(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    source = f"""
workflow: drafting
agents:
  writer:
    model: {OPENAI_MODEL}
    instructions: You write replies to customers.
    input: "Reply to: {{{{ message }}}}"
    conversation: per_item
states:
  write:
    kind: initial
    max_visits: 3
    agent: writer
    transitions: [{{to: again}}]
  again:
    transitions:
      - when: visits.write < 3
        to: write
      - else: true
        to: done
  done: {{kind: final}}
"""
    openai.reply(*(openai_text(f"answer {n} " + "x" * 40) for n in range(3)))

    asyncio.run(
        run_items(
            store,
            source,
            openai,
            ("item-1", {"message": "question " + "y" * 40}),
            conversation_token_budget=40,
        )
    )

    stored = asyncio.run(store.conversations("drafting", "item-1"))
    assert [entry["text"][:10] for entry in kept(stored, "writer")] == [
        "Reply to: ",
        "answer 2 x",
    ]
    third = roles(openai.bodies()[2])[1:]
    # Two exchanges of ~25 tokens do not fit 40: only the newest earlier one is fed back.
    assert [content[:19] for _, content in third] == [  # type: ignore[index]
        "Reply to: question ",
        "answer 1 xxxxxxxxxx",
        "Reply to: question ",
    ]


def test_a_supervisor_reads_a_specialists_conversation(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    source = f"""
workflow: support
agents:
  billing_specialist:
    model: {OPENAI_MODEL}
    instructions: Resolve billing questions.
    input: "{{{{ message }}}}"
    output: {{type: object, properties: {{resolution: {{type: string}}}}}}
    conversation: per_item
  supervisor:
    model: {OPENAI_MODEL}
    instructions: |-
      Check the specialist's work.
      {{% for turn in conversations.billing_specialist %}}{{{{ turn.role }}}}: {{{{ turn.text }}}}
      {{% endfor %}}Its result: {{{{ resolution | json }}}}
    input: Is the resolution right?
states:
  resolve:
    kind: initial
    agent: {{name: billing_specialist, result: resolution}}
    transitions: [{{to: check}}]
  check:
    agent: supervisor
    transitions: [{{to: done}}]
  done: {{kind: final}}
"""
    openai.reply(
        openai_tool_call("final_result", {"resolution": "refund 20 EUR"}),
        openai_text("Yes."),
    )

    asyncio.run(run_items(store, source, openai, ("item-1", {"message": "charged twice"})))

    history = asyncio.run(store.history(None, "item-1"))
    assert history[-1].to_state == "done", history[-1].error
    instructions = roles(openai.bodies()[1])[0][1]
    assert instructions == (
        "Check the specialist's work.\n"
        "user: charged twice\n"
        'assistant: {"resolution":"refund 20 EUR"}\n'
        'Its result: {\n  "resolution": "refund 20 EUR"\n}'
    )


def test_an_attempt_whose_result_is_ignored_leaves_no_trace(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    source = f"""
workflow: drafting
agents:
  writer:
    model: {OPENAI_MODEL}
    instructions: You write replies to customers.
    input: "Reply to: {{{{ message }}}}"
    conversation: per_item
states:
  write:
    kind: initial
    agent: writer
    transitions: [{{to: sent}}, {{on: close, to: closed}}]
  sent: {{kind: final}}
  closed: {{kind: final}}
"""
    late = openai_text("a draft nobody wants any more")
    openai.reply(Reply(late.body, delay=0.5))
    definition = loads(source)

    async def scenario() -> None:
        async with agent_runner(store, definition, openai=openai) as runner:
            await runner.start(definition, [("item-1", {"message": "hi"})])
            running = asyncio.create_task(runner.run(max_wait=0.0))
            while not openai.requests:
                await asyncio.sleep(0.01)
            await runner.send(None, "item-1", "close", {}, actor="alice")  # the item moves on
            await running

    asyncio.run(scenario())

    assert asyncio.run(store.get_item(None, "item-1")).state == "closed"
    assert len(openai.requests) == 1, "the late reply was received"
    assert asyncio.run(store.conversations("drafting", "item-1")) == {}


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
    stored = conversations.dump(history)
    restored = conversations.load("a", stored)
    # The stored JSON's layout is pydantic-ai's; statewise owns that nothing is lost in it.
    assert restored == history
    assert conversations.transcript(restored) == conversations.transcript(history)
    assert isinstance(json.loads(stored), list)


def test_an_unreadable_stored_conversation_is_a_permanent_error() -> None:
    from statewise.errors import PermanentError

    with pytest.raises(PermanentError, match="conversation of agent 'writer'"):
        conversations.load("writer", '[{"kind": "nonsense"}]')
