"""Retries that change the agent (``retry: {adjust: [...]}``), against a local OpenAI server."""

from __future__ import annotations

import asyncio

import pytest

from statewise.definition.model import Adjustment, RetryPolicy
from statewise.errors import ConfigurationError
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, registered, workflow
from .servers import FakeProvider, message_text, openai_text

ADJUSTED = RetryPolicy(
    attempts=4,
    adjust=(
        Adjustment(settings={"temperature": 0.2}),
        Adjustment("openai:gpt-4.1", "Answer with the labels only.", {"temperature": 0}),
    ),
)


def test_each_retry_runs_with_its_entry_and_the_audit_says_which(
    store: SQLiteStore, openai: FakeProvider
) -> None:
    openai.always(lambda received: openai_text("billing"))
    spec = agent(retry=ADJUSTED, settings={"temperature": 0.9})

    async def main() -> list[dict[str, object]]:
        async with registered(store, workflow(spec), openai=openai) as agents:
            return [(await agents.run("classifier")).usage for _ in range(4)]

    usages = asyncio.run(main())

    bodies = openai.bodies()
    assert [(b["model"], b["temperature"]) for b in bodies] == [
        ("gpt-4o-mini", 0.9),
        ("gpt-4o-mini", 0.2),
        ("gpt-4.1", 0),
        ("gpt-4.1", 0),  # attempts past the list keep the last entry
    ]
    system = [message_text(b["messages"][0]) for b in bodies]
    assert system[1] == "Classify the message."
    assert system[2] == "Classify the message.\n\nAnswer with the labels only."
    assert "adjustment" not in usages[0]
    assert usages[1]["adjustment"] == {
        "attempt": 2,
        "entry": 1,
        "model": "openai:gpt-4o-mini",
        "settings": {"temperature": 0.2},
        "instructions_added": False,
    }
    assert usages[3]["adjustment"] == {
        "attempt": 4,
        "entry": 2,
        "model": "openai:gpt-4.1",
        "settings": {"temperature": 0},
        "instructions_added": True,
    }


def test_an_entry_with_an_unknown_provider_fails_at_registration(
    store: SQLiteStore, openai: FakeProvider
) -> None:
    bad = RetryPolicy(attempts=2, adjust=(Adjustment("opnai:gpt-4.1"),))

    async def main() -> None:
        async with registered(store, workflow(agent(retry=bad)), openai=openai):
            pass

    with pytest.raises(ConfigurationError, match=r"unknown model provider 'opnai'; did you mean"):
        asyncio.run(main())
