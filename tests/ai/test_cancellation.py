"""An agent attempt cancelled from outside still accounts for the model calls it had made.

A parallel branch that loses its ``any``/``n_of`` join is cancelled by the runner; it cannot
return its usage, so the agent registers a usage probe and the executor records what it
reports. Run through the real executor, with the real pydantic-ai client talking HTTP to the
local OpenAI server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from statewise.contract import CommandRegistry
from statewise.definition.model import ErrorKind, agent_command
from statewise.engine import CommandFailed, RunCommand
from statewise.store.sqlite import SQLiteStore
from statewise.worker.commands import JOIN_MET, CommandExecutor, cancel_attempt

from .conftest import agent, registered, workflow
from .servers import FakeProvider, Reply, openai_tool_call

SPEC = agent(
    "support",
    instructions="Answer about orders.",
    input="{{ message }}",
    tools=("order_status",),
    output={"type": "object", "properties": {"answer": {"type": "string"}}},
)


def with_tool() -> CommandRegistry:
    registry = CommandRegistry()

    @registry.tool()
    def order_status(order_id: str) -> dict[str, Any]:
        """Look up an order."""
        return {"order_id": order_id, "status": "shipped"}

    return registry


def hang_after_one_tool_round(openai: FakeProvider) -> None:
    """The first request is answered with a tool call; the second is answered far too late."""
    late = openai_tool_call("final_result", {"answer": "too late"})
    openai.reply(
        openai_tool_call("order_status", {"order_id": "A-17"}, call_id="call_tool"),
        Reply(late.body, delay=3.0),
    )


def assert_spent_one_round(event: CommandFailed, outcome: str) -> None:
    """The usage of exactly the first request: its tokens and the tool call it made."""
    assert event.usage is not None
    assert (event.usage["requests"], event.usage["input_tokens"], event.usage["output_tokens"]) == (
        1,
        100,
        20,
    )
    assert event.usage["tool_calls"] == [
        {
            "name": "order_status",
            "args": {"order_id": "A-17"},
            "result": {"order_id": "A-17", "status": "shipped"},
        }
    ]
    assert (event.usage["agent"], event.usage["outcome"]) == ("support", outcome)


def test_a_losing_branchs_agent_reports_what_it_had_spent(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    hang_after_one_tool_round(openai)
    effect = RunCommand(agent_command("support"), "answer", 1, 1, 10.0, branch="fast")

    async def scenario() -> CommandFailed:
        async with registered(store, workflow(SPEC), registry=with_tool(), openai=openai) as agents:
            executor = CommandExecutor(agents.registry, threads=2)
            try:
                task = asyncio.create_task(
                    executor.execute(effect, "triage", "item-1", {"message": "Where is A-17?"})
                )
                while len(openai.requests) < 2:  # the tool round is done, the answer pending
                    await asyncio.sleep(0.01)
                cancel_attempt(task)
                event = await task
            finally:
                executor.close()
        assert isinstance(event, CommandFailed)
        return event

    event = asyncio.run(scenario())

    assert (event.error_kind, event.message, event.branch) == (
        ErrorKind.PERMANENT,
        JOIN_MET,
        "fast",
    )
    assert_spent_one_round(event, "permanent")


def test_a_timed_out_request_is_cancelled_at_the_connection(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    hang_after_one_tool_round(openai)
    effect = RunCommand(agent_command("support"), "answer", 1, 1, 1.0)

    async def scenario() -> CommandFailed:
        async with registered(store, workflow(SPEC), registry=with_tool(), openai=openai) as agents:
            executor = CommandExecutor(agents.registry, threads=2)
            try:
                event = await executor.execute(
                    effect, "triage", "item-1", {"message": "Where is A-17?"}
                )
            finally:
                executor.close()
        assert isinstance(event, CommandFailed)
        return event

    event = asyncio.run(scenario())

    assert event.error_kind is ErrorKind.TRANSIENT
    assert_spent_one_round(event, "transient")
    assert event.usage is not None and event.usage["queued_ms"] >= 0
    # The server saw the socket close while it was still "generating" the late answer, so a
    # real one would stop; it did not have to finish its three seconds to find out.
    deadline = time.monotonic() + 2.0
    while not openai.disconnected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r.body["messages"][-1]["role"] for r in openai.disconnected] == ["tool"]
