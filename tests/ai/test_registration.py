"""``register_agents``: one command per agent name, running the item's own declaration."""

from __future__ import annotations

import asyncio

import pytest

from statewise.ai import register_agents
from statewise.contract import CommandRegistry
from statewise.definition.model import agent_command
from statewise.errors import NotFoundError, PermanentError, StatewiseError
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, create_item, registered, workflow
from .servers import FakeProvider, message_text, openai_text

FIRST = agent(instructions="You are the first.")
SECOND = agent(instructions="You are the second.")


def sent_instructions(server: FakeProvider) -> list[str]:
    return [message_text(body["messages"][0]) for body in server.bodies()]


def test_workflows_declaring_one_name_differently_each_run_their_own(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    openai.reply(openai_text("1"), openai_text("2"))

    async def scenario() -> None:
        definitions = (workflow(FIRST, name="sales"), workflow(SECOND, name="support"))
        async with registered(store, *definitions, openai=openai) as agents:
            await agents.run("classifier", {}, workflow="sales")
            await agents.run("classifier", {}, workflow="support")
            with pytest.raises(PermanentError, match="workflow 'billing' declares no agent"):
                await agents.run("classifier", {}, workflow="billing")

    asyncio.run(scenario())
    assert sent_instructions(openai) == ["You are the first.", "You are the second."]


def test_versions_declaring_an_agent_differently_run_the_items_own_version(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    old, new = workflow(FIRST, version=1), workflow(SECOND, version=2)
    openai.reply(openai_text("1"), openai_text("2"))

    async def scenario() -> None:
        await create_item(store, old, key="old-item")
        await create_item(store, new, key="new-item")
        async with registered(store, old, new, openai=openai) as agents:
            await agents.run("classifier", {}, key="new-item")
            await agents.run("classifier", {}, key="old-item")

    asyncio.run(scenario())
    assert sent_instructions(openai) == ["You are the second.", "You are the first."]


def test_registering_again_adds_to_the_same_command(store: SQLiteStore) -> None:
    registry = CommandRegistry()
    register_agents(registry, [workflow(FIRST, name="sales")], store)
    command = registry.get(agent_command("classifier"))
    register_agents(registry, [workflow(SECOND, name="support")], store)
    assert registry.get(agent_command("classifier")) is command


def test_an_agent_name_taken_by_a_plain_command_is_refused(store: SQLiteStore) -> None:
    registry = CommandRegistry()
    registry.register(agent_command("classifier"), lambda ctx: None)
    with pytest.raises(StatewiseError, match="reserved for agent 'classifier'"):
        register_agents(registry, [workflow(FIRST)], store)


def test_an_unregistered_tool_fails_at_registration(store: SQLiteStore) -> None:
    registry = CommandRegistry()

    @registry.tool()
    def lookup_order(order_id: str) -> str:
        """Find an order."""
        return order_id

    with pytest.raises(NotFoundError, match="did you mean 'lookup_order'"):
        register_agents(registry, [workflow(agent(tools=("lookup_ordr",)))], store)


def test_a_bad_output_mode_fails_at_registration(store: SQLiteStore) -> None:
    spec = agent(output={"type": "object"}, settings={"output_mode": "json"})
    modes = "tool, tool-auto, native, prompted-json, prompted"
    with pytest.raises(StatewiseError, match=f"output_mode must be auto or one of {modes}"):
        register_agents(CommandRegistry(), [workflow(spec)], store)
