"""Fixtures for the AI tests: local protocol servers, a real SQLite store, a clean environment.

Agents run through ``register_agents`` and the registered command, exactly as the runner calls
them, with the real pydantic-ai models and provider SDKs talking HTTP to servers on 127.0.0.1;
what only a committed step keeps (conversations) is tested through a real runner.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

from statewise.ai import AISettings, register_agents
from statewise.contract import CommandContext, CommandRegistry, CommandResult
from statewise.definition.model import (
    AgentSpec,
    Definition,
    State,
    StateKind,
    Transition,
    agent_command,
)
from statewise.engine import start
from statewise.store import StepCommit
from statewise.store.sqlite import SQLiteStore
from statewise.worker.runner import Runner

from .servers import FakeProvider, serving

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
OPENAI_MODEL = "openai:gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic:claude-sonnet-4-6"
T0 = 1_700_000_000.0


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Known keys, and none of the user's own statewise or provider configuration."""
    for name in (
        "STATEWISE_MODEL",
        "STATEWISE_OPENAI_BASE_URL",
        "STATEWISE_PRICES",
        "OPENAI_BASE_URL",
        "OLLAMA_BASE_URL",
        "OLLAMA_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)


@pytest.fixture
def openai() -> Iterator[FakeProvider]:
    """A local server speaking OpenAI chat completions."""
    with serving() as server:
        yield server


@pytest.fixture
def anthropic() -> Iterator[FakeProvider]:
    """A local server speaking Anthropic messages."""
    with serving() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A real SQLite store, closed after the test."""
    opened = SQLiteStore(tmp_path / "ai.sqlite")
    yield opened
    asyncio.run(opened.close())


def agent(name: str = "classifier", **fields: Any) -> AgentSpec:
    """An agent on the local OpenAI server unless told otherwise."""
    fields.setdefault("instructions", "Classify the message.")
    fields.setdefault("model", OPENAI_MODEL)
    return AgentSpec(name=name, **fields)


def on_anthropic(server: FakeProvider, **fields: Any) -> AgentSpec:
    """An agent on the local Anthropic server, reached through its own ``base_url``."""
    settings = {"base_url": server.root, **fields.pop("settings", {})}
    return agent(model=ANTHROPIC_MODEL, settings=settings, **fields)


def workflow(*agents: AgentSpec, name: str = "triage", version: int = 1) -> Definition:
    """A minimal definition declaring ``agents``: it waits in ``open`` until closed."""
    states = {
        "open": State(
            "open", kind=StateKind.WAITING, transitions=(Transition("closed", on="close"),)
        ),
        "closed": State("closed", kind=StateKind.FINAL),
        "escalated": State("escalated", kind=StateKind.FINAL),
    }
    return Definition(
        name=name,
        version=version,
        states=states,
        initial="open",
        agents={spec.name: spec for spec in agents},
    )


@dataclass
class Agents:
    """Registered agent commands, called the way the runner calls them."""

    registry: CommandRegistry
    store: SQLiteStore
    settings: AISettings
    attempts: dict[str, int] = field(default_factory=dict)

    async def run(
        self,
        name: str,
        context: Mapping[str, Any] | None = None,
        *,
        key: str = "item-1",
        workflow: str = "triage",
        state: str = "open",
    ) -> CommandResult:
        """One attempt of agent ``name`` for item ``key``."""
        attempt = self.attempts[key] = self.attempts.get(key, 0) + 1
        command = self.registry.get(agent_command(name))
        ctx = CommandContext(
            workflow=workflow,
            key=key,
            state=state,
            attempt=attempt,
            idempotency_key=f"{key}:{attempt}",
            context=dict(context or {}),
        )
        result = await command(ctx)
        assert isinstance(result, CommandResult)
        return result


@asynccontextmanager
async def registered(
    store: SQLiteStore,
    *definitions: Definition,
    registry: CommandRegistry | None = None,
    openai: FakeProvider | None = None,
    **settings: Any,
) -> AsyncIterator[Agents]:
    """Register ``definitions``' agents with a real HTTP client, closed afterwards."""
    async with httpx2.AsyncClient() as client:
        if openai is not None:
            settings.setdefault("openai_base_url", openai.url)
        chosen = AISettings(http_client=client, **settings)
        registry = registry or CommandRegistry()
        register_agents(registry, definitions, store, chosen)
        yield Agents(registry, store, chosen)


@asynccontextmanager
async def agent_runner(
    store: SQLiteStore,
    *definitions: Definition,
    openai: FakeProvider | None = None,
    **settings: Any,
) -> AsyncIterator[Runner]:
    """A real runner over ``definitions`` with their agents registered, as ``statewise run`` has."""
    async with registered(store, *definitions, openai=openai, **settings) as agents:
        yield Runner(store, definitions, agents.registry)


async def create_item(
    store: SQLiteStore, definition: Definition, key: str = "item-1", **data: Any
) -> None:
    """Put an item in the store, so conversations have something to belong to."""
    await store.commit([StepCommit(start(definition, key, dict(data), T0), expected_seq=None)])
