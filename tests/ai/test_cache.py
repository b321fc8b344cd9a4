"""The optional response cache: a re-run answers from the store and costs nothing."""

from __future__ import annotations

import asyncio

from statewise.ai import conversations
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, registered, workflow
from .servers import FakeProvider, openai_text, openai_tool_call

OUTPUT = {"type": "object", "properties": {"answer": {"type": "string"}}}


def test_a_re_run_is_answered_from_the_cache(openai: FakeProvider, store: SQLiteStore) -> None:
    spec = agent(output=OUTPUT, input="{{ message }}")
    openai.reply(
        openai_tool_call("final_result", {"answer": "one"}),
        openai_tool_call("final_result", {"answer": "two"}),
    )

    async def scenario() -> None:
        async with registered(store, workflow(spec), openai=openai, cache=True) as agents:
            first = await agents.run("classifier", {"message": "hi"}, key="a")
            again = await agents.run("classifier", {"message": "hi"}, key="b")
            other = await agents.run("classifier", {"message": "hello"}, key="c")
        assert first.value == again.value == {"answer": "one"}
        assert first.usage["cached"] is False and first.usage["cost"] > 0
        assert again.usage["cached"] is True
        assert again.usage["cost"] == 0.0
        assert again.usage["input_tokens"] == again.usage["output_tokens"] == 0
        assert other.value == {"answer": "two"}

    asyncio.run(scenario())
    assert len(openai.requests) == 2


def test_the_cache_is_off_by_default(openai: FakeProvider, store: SQLiteStore) -> None:
    spec = agent(input="{{ message }}")
    openai.reply(openai_text("one"), openai_text("two"))

    async def scenario() -> None:
        async with registered(store, workflow(spec), openai=openai) as agents:
            assert (await agents.run("classifier", {"message": "hi"})).value == "one"
            assert (await agents.run("classifier", {"message": "hi"})).value == "two"

    asyncio.run(scenario())


def test_a_cache_hit_continues_the_conversation(openai: FakeProvider, store: SQLiteStore) -> None:
    spec = agent("writer", input="{{ message }}", conversation=True)
    openai.reply(openai_text("draft"))

    async def scenario() -> None:
        async with registered(store, workflow(spec), openai=openai, cache=True) as agents:
            await agents.run("writer", {"message": "write"}, key="a")
            hit = await agents.run("writer", {"message": "write"}, key="b")
        assert hit.usage["cached"] is True
        assert hit.conversation is not None
        messages = conversations.load("writer", hit.conversation["writer"])
        assert conversations.transcript(messages) == [
            {"role": "user", "text": "write"},
            {"role": "assistant", "text": "draft"},
        ], "the hit proposes the cached exchange, as if the model had answered"

    asyncio.run(scenario())
    assert len(openai.requests) == 1
