"""The example files run unchanged on a hosted model: here OpenAI's protocol, served locally.

``STATEWISE_MODEL=openai:gpt-4.1-mini`` moves every agent to the provider; the real
pydantic-ai client talks to a local server that answers each agent's request with a scripted
tool call, as the provider would. What must hold: nothing in the workflow or its tools
changes, the prose stages carry the model's prose (not a quoted passage or a template), the
answer agent looks the order up with its tool before it answers, and the audit trail names the
provider's model, prices its tokens and shows each tool call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ai.servers import FakeProvider, Reply, error, openai_tool_call
from processes.conftest import AgentRequest, hosted_model, run_example
from statewise.cli import app
from statewise.testing import webhook_receiver

REPLY_PROSE = (
    "Hello Anna, I'm sorry about the double charge. The second one is a pre-authorisation "
    "your bank will release within 3 to 5 business days; if it is still there after that, "
    "reply and we refund it within 2 business days."
)


SUMMARY = "Anna Berger, a standard customer, asks which of two charges is real."


def _looked_up(request: AgentRequest) -> bool:
    """Whether the conversation already holds a tool's result (the model called one)."""
    return any(m.get("role") == "tool" for m in request.received.body["messages"])


_failed: set[str] = set()


def _support_agents(request: AgentRequest) -> Reply:
    """Answer each agent of support_routing as a hosted model would.

    The first answer for the invoice question (TCK-5002) fails with a 500, as an overloaded
    provider does, so its retry runs with the answer agent's adjusted parameters.
    """
    arguments: dict[str, Any]
    if "answer" in request.fields and "VAT number" in request.user and not _failed:
        _failed.add("TCK-5002")
        return error(500, "overloaded")
    if "category" in request.fields:
        technical = "crash" in request.user or "error" in request.user
        category = "technical" if technical else "billing"
        complexity = "complex" if technical else "simple"
        arguments = {
            "category": category,
            "priority": "normal",
            "complexity": complexity,
            "confidence": 0.9,
        }
    elif "sentiment" in request.fields:
        arguments = {"sentiment": "neutral", "confidence": 0.8}
    elif "route" in request.fields:  # the coordinator reads the analysis in its instructions
        system = json.dumps(request.received.body["messages"][0])
        route = "specialist" if '\\"technical\\"' in system else "automated"
        arguments = {"route": route, "summary": SUMMARY, "confidence": 0.9}
    elif "verdict" in request.fields:
        arguments = {"verdict": "satisfied", "confidence": 0.9}
    elif "sources" in request.fields:
        arguments = {"summary": SUMMARY, "sources": ["Double charges"]}
    elif "answer" in request.fields and "88213" in request.user and not _looked_up(request):
        return openai_tool_call("lookup_order", {"order_id": "88213"}, call_id="call_lookup")
    elif "answer" in request.fields:
        arguments = {"answer": REPLY_PROSE, "source": "Double charges", "confidence": 0.85}
    else:
        raise AssertionError(f"unexpected agent with fields {sorted(request.fields)}")
    return request.answer(arguments, prompt=420)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    with hosted_model(monkeypatch, _support_agents) as server:
        yield server


def test_support_routing_runs_unchanged_on_a_hosted_model_and_its_answers_are_prose(
    provider: FakeProvider, tmp_path: Path
) -> None:
    env = {"CUSTOMER_NOTIFY_WEBHOOK_SECRET": "s"}
    with webhook_receiver(["CUSTOMER_NOTIFY_WEBHOOK_URL"], env=env):
        ran = run_example("support_routing", tmp_path)

    answered = ran.item("TCK-5001")
    assert answered.state == "awaiting_reply"
    assert answered.context["answer"]["answer"] == REPLY_PROSE  # the model's words, not a passage
    assert answered.context["coordinate"]["summary"] == SUMMARY
    assert ran.states()["TCK-5008"] == "specialist_queue"  # the coordinator routed it
    calls = [r.usage for r in ran.history("TCK-5001") if r.usage]
    assert {u["agent"] for u in calls} == {"classify", "sentiment", "coordinator", "answer"}
    assert {u["model"] for u in calls} == {"openai:gpt-4.1-mini"}
    assert all(u["cost"] and u["cost"] > 0 for u in calls)
    # The answer agent looked the order up before answering; the audit keeps the call.
    (answer,) = [u for u in calls if u["agent"] == "answer"]
    (lookup,) = answer["tool_calls"]
    assert (lookup["name"], lookup["args"]) == ("lookup_order", {"order_id": "88213"})
    assert lookup["result"]["charges"][1] == "64.90 pre-authorisation pending release"
    shown = CliRunner().invoke(
        app, ["history", "TCK-5001", "--db", ran.db, "--format", "tsv"], env={"COLUMNS": "200"}
    )
    assert shown.exit_code == 0, shown.output
    assert 'tools: lookup_order(order_id="88213")' in shown.output
    # The failed answer was retried with the adjusted parameters the workflow declares.
    invoice = [r for r in ran.history("TCK-5002") if r.command == "agent:answer"]
    assert [r.attempt for r in invoice if r.error] == [1]
    (adjusted,) = [r for r in invoice if r.usage and "adjustment" in r.usage]
    assert adjusted.attempt == 2 and adjusted.usage is not None
    assert adjusted.usage["adjustment"] == {
        "attempt": 2,
        "entry": 1,
        "model": "openai:gpt-4.1-mini",
        "settings": {"temperature": 0},
        "instructions_added": True,
    }
    retried = [b for b in provider.bodies() if "Your last reply failed" in json.dumps(b)]
    assert retried and all(b["temperature"] == 0 for b in retried)
    # Every agent request went to the provider with its instructions and the item's text.
    sent = [json.dumps(r.body) for r in provider.requests]
    assert any("Charged twice" in body for body in sent)
    assert any("Double charges" in body and "Use only the knowledge below" in body for body in sent)
