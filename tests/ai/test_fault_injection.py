"""Fault injection: 500 items through two agents while about 30% of provider calls fail.

Everything is real except the model providers: a SQLite store, the runner, the agents
``register_agents`` builds, pydantic-ai and the OpenAI and Anthropic SDKs talking HTTP to the
local servers of :mod:`.servers`. The servers decide the fate of every request from a seeded
random generator keyed by the request's identity (provider, item, state, attempt and its index
within the attempt), so the faults do not depend on the order requests arrive in and every run
injects the same ones.

The workflow: ``triage`` (the ``classifier`` agent, on ``openai:``) closes ``other`` tickets
and hands the rest to ``answer`` (the ``specialist`` agent, on ``anthropic:``), which resolves
them or hands them to a human. A triage that exhausts its attempts goes to ``needs_human`` by
an ``on: error`` transition. An answer that exhausts its attempts on a provider that stays
down goes to the default escalation state, a person's task; one whose output stays unusable
is a defect and fails where it stands.

Reconciling the audit trail with what the servers received: each attempt of an agent leaves
exactly one audit row (``done`` when it succeeded, ``failed`` when it is retried, ``error``
when it is not), with the usage the agent recorded. ``usage.requests`` counts the model
responses the attempt received and used (valid output, or output that violated the schema and
was sent back to the model). The only request an attempt can make that yields no response is
its last one, and only when the attempt failed as ``transient`` (a 429, a 5xx, a body that is
not JSON, or a hang the attempt's timeout cut off; an attempt cut off must still record the
responses it had used). So the rule is, per attempt::

    requests the servers received for it == usage.requests + (1 if it failed as transient)

except for an attempt its timeout cut off: on a loaded machine the cut may come just after
its last response arrived rather than while it waited for one, so 0 or 1 request of it is
unanswered. Summed over the audit, the requests the servers received lie within those bounds,
and no request belongs to an attempt the audit does not know. The tokens work the same
way: the audit's input and output tokens are exactly those of the responses that reached the
agent.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx2
import pytest

from statewise.ai import AISettings, Price, register_agents
from statewise.contract import CommandRegistry
from statewise.definition import loads
from statewise.engine import HistoryRecord, ItemStatus
from statewise.store.base import StateCount
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner

from .servers import (
    FakeProvider,
    Received,
    Reply,
    anthropic_text,
    anthropic_tool_use,
    error,
    malformed,
    malformed_stream,
    openai_tool_call,
)

SEED = 20_240_611
ITEMS = 500
# Under the full load one request takes 0.25s (up to 0.5s) on two cores, as the loop, the
# SDKs and the servers share one GIL, and an attempt of three requests up to 1s: a shorter
# timeout would also cut off attempts that were only slow, differently in every run.
ATTEMPT_TIMEOUT = 2.0
HANG = 4.0  # well past the attempt timeout: a hang always ends as a timeout
# A request after an unusable output is unusable again this often (a stubborn model), so
# some attempts exhaust their output retries and fail as invalid output.
STUBBORN = 0.4
OPENAI_TOKENS = (100, 20)  # what servers.py reports per OpenAI response
ANTHROPIC_TOKENS = (80, 30)  # and per Anthropic response
# Where items end: three final states, and the escalation task a person decides.
END_STATES = {"closed", "resolved", "needs_human", "escalated"}
STATE_OF_COMMAND = {"agent:classifier": "triage", "agent:specialist": "answer"}
TAG = re.compile(r"<<(?P<key>item-\d+)\|(?P<state>\w+)\|(?P<attempt>\d+)>>")


class Fate(StrEnum):
    """What the server does with one request."""

    OK = "ok"
    HANG = "hang"  # a valid answer, too late: the attempt times out first
    RATE_LIMITED = "rate_limited"  # 429 with a short Retry-After
    SERVER_ERROR = "server_error"  # 500, 502, 503 (and Anthropic's 529)
    MALFORMED_BODY = "malformed_body"  # a 200 whose body is not JSON
    SCHEMA_VIOLATION = "schema_violation"  # valid JSON, output breaking the schema
    # OpenAI: output-tool arguments that are not JSON; Anthropic: prose instead of the tool.
    UNUSABLE_OUTPUT = "unusable_output"


# A fresh request fails with these odds (27% in all); a request that follows an unusable
# output fails more often (the stubborn model), which brings the total to about 30%.
FAILURES = {
    Fate.HANG: 0.04,
    Fate.RATE_LIMITED: 0.05,
    Fate.SERVER_ERROR: 0.05,
    Fate.MALFORMED_BODY: 0.04,
    Fate.SCHEMA_VIOLATION: 0.05,
    Fate.UNUSABLE_OUTPUT: 0.04,
}
# Fates whose response reaches the agent, which counts it in ``usage.requests``.
ANSWERED = frozenset({Fate.OK, Fate.SCHEMA_VIOLATION, Fate.UNUSABLE_OUTPUT})

WORKFLOW = """
workflow: fault_injection
input: [text]
agents:
  classifier:
    model: openai:gpt-4o-mini
    instructions: Classify the support ticket.
    input: "<<{{ item.key }}|{{ item.state }}|{{ item.attempt }}>> {{ text }}"
    output:
      type: object
      properties:
        category: {type: string, enum: [billing, technical, other]}
        confidence: {type: number, minimum: 0, maximum: 1}
      required: [category, confidence]
    retry: {attempts: 3, backoff: 10ms, max_backoff: 40ms, timeout: %(timeout)s}
  specialist:
    model: anthropic:claude-sonnet-4-6
    instructions: Answer a {{ triage.category }} ticket.
    input: "<<{{ item.key }}|{{ item.state }}|{{ item.attempt }}>> {{ text }}"
    output:
      type: object
      properties:
        reply: {type: string, minLength: 1}
        resolved: {type: boolean}
      required: [reply, resolved]
    retry: {attempts: 3, backoff: 10ms, max_backoff: 40ms, timeout: %(timeout)s}
    settings: {base_url: "%(anthropic)s"}
states:
  triage:
    kind: initial
    agent: {name: classifier, result: triage}
    transitions:
      - when: triage.category == 'other'
        to: closed
      - else: true
        to: answer
      - on: error
        to: needs_human
  answer:
    agent: {name: specialist, result: answer}
    transitions:
      - when: answer.resolved
        to: resolved
      - else: true
        to: needs_human
  closed: {kind: final}
  resolved: {kind: final}
  needs_human: {kind: final}
"""


@dataclass(frozen=True)
class Call:
    """One request a server received, and what it was answered with."""

    provider: str
    key: str
    state: str
    attempt: int
    index: int  # requests of the same attempt before this one
    fate: Fate

    @property
    def attempt_id(self) -> tuple[str, str, int]:
        return (self.key, self.state, self.attempt)


class Script:
    """A server's answers: a deterministic fate per request, and a log of every request."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.calls: list[Call] = []
        self.untagged: list[Received] = []
        self.abandoned: list[Received] = []
        self._lock = threading.Lock()

    def __call__(self, received: Received) -> Reply:
        if received.body is None:
            # The client gave up (its attempt's deadline) before sending the body: no model
            # call happened, so nothing is owed and nothing is audited.
            with self._lock:
                self.abandoned.append(received)
            return error(400, "request without a body")
        found = TAG.search(json.dumps(received.body))
        if found is None:
            with self._lock:
                self.untagged.append(received)
            return error(400, "request without an attempt tag")
        messages = received.body.get("messages", [])
        index = sum(1 for m in messages if m.get("role") == "assistant")
        key, state, attempt = found["key"], found["state"], int(found["attempt"])
        rng = random.Random(f"{SEED}:{self.provider}:{key}:{state}:{attempt}:{index}")
        fate = self._fate(rng, index)
        with self._lock:
            self.calls.append(Call(self.provider, key, state, attempt, index, fate))
        return self._reply(fate, rng, key)

    @staticmethod
    def _fate(rng: random.Random, index: int) -> Fate:
        if index > 0 and rng.random() < STUBBORN:
            return Fate.SCHEMA_VIOLATION
        roll = rng.random()
        for fate, share in FAILURES.items():
            if roll < share:
                return fate
            roll -= share
        return Fate.OK

    def _reply(self, fate: Fate, rng: random.Random, key: str) -> Reply:
        openai = self.provider == "openai"
        match fate:
            case Fate.OK:
                return self._answer(key)
            case Fate.HANG:
                return _later(self._answer(key))
            case Fate.RATE_LIMITED:
                # Both spellings pydantic-ai reads: whole seconds, or milliseconds.
                if rng.random() < 0.5:
                    return error(429, "Rate limit reached", retry_after="0")
                return error(429, "Rate limit reached", **{"retry-after-ms": "20"})
            case Fate.SERVER_ERROR:
                statuses = [500, 502, 503] if openai else [500, 502, 503, 529]
                return error(rng.choice(statuses), "upstream exploded")
            case Fate.MALFORMED_BODY:
                # Anthropic's client asks for an event stream: break an event's JSON.
                return malformed() if openai else malformed_stream()
            case Fate.SCHEMA_VIOLATION:
                if openai:
                    return openai_tool_call("final_result", {"category": "spam", "confidence": 7})
                return anthropic_tool_use("final_result", {"reply": "", "resolved": "maybe"})
            case Fate.UNUSABLE_OUTPUT:
                if openai:
                    return openai_tool_call("final_result", '{"category": "billing", "confid')
                return anthropic_text("I would rather not use the tool.")

    def _answer(self, key: str) -> Reply:
        """A valid answer; the same one for an item however often it is asked."""
        rng = random.Random(f"{SEED}:{self.provider}:answer:{key}")
        if self.provider == "openai":
            category = rng.choices(["billing", "technical", "other"], [4, 4, 2])[0]
            return openai_tool_call(
                "final_result", {"category": category, "confidence": round(rng.random(), 2)}
            )
        resolved = rng.random() < 0.8
        return anthropic_tool_use("final_result", {"reply": f"Hello {key}", "resolved": resolved})


def _later(reply: Reply) -> Reply:
    return Reply(reply.body, reply.status, reply.headers, delay=HANG)


@dataclass(frozen=True)
class Attempt:
    """One attempt as the audit trail records it."""

    key: str
    state: str
    attempt: int
    event: str
    usage: dict[str, Any] | None
    error: dict[str, str] | None

    @property
    def outcome(self) -> str:
        return "ok" if self.error is None else self.error["kind"]

    @property
    def metered(self) -> int:
        """Requests whose response the attempt recorded."""
        return 0 if self.usage is None else int(self.usage["requests"])

    @property
    def unanswered(self) -> int:
        """The request a transient failure ended on, which no response answered."""
        return 1 if self.outcome == "transient" else 0

    def accounts_for(self, served: int) -> bool:
        """Whether ``served`` requests reconcile with this audit row.

        A timed-out attempt may have been cut off waiting for a response (one request
        unanswered) or, on a loaded machine, after its last response arrived and before it
        finished (none unanswered); every other attempt has exactly one reading.
        """
        if self.timed_out:
            return served in (self.metered, self.metered + 1)
        return served == self.metered + self.unanswered

    @property
    def timed_out(self) -> bool:
        # the agent stopping itself before the deadline, or the runner cutting it at the deadline
        message = "" if self.error is None else self.error["message"]
        return "ran out of time" in message or "timed out after" in message


def attempts_of(key: str, history: Iterable[HistoryRecord]) -> list[Attempt]:
    """The audit rows that close an agent attempt (not the retry timers that start one)."""
    return [
        Attempt(
            key, STATE_OF_COMMAND[row.command], row.attempt or 0, row.event, row.usage, row.error
        )
        for row in history
        if row.command in STATE_OF_COMMAND and row.event in ("done", "failed", "error")
    ]


def summary(
    calls: list[Call],
    attempts: list[Attempt],
    states: Counter[str],
    mismatches: list[str],
    elapsed: float,
) -> str:
    """Everything worth knowing when an assertion fails."""
    fates = Counter((c.provider, str(c.fate)) for c in calls)
    outcomes = Counter((a.state, a.event, a.outcome, a.timed_out) for a in attempts)
    lines = [
        f"ran {ITEMS} items in {elapsed:.1f}s; {len(calls)} requests",
        "requests by (provider, fate): " + ", ".join(f"{k}={v}" for k, v in sorted(fates.items())),
        "attempts by (state, event, outcome, timed out): "
        + ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())),
        "final states: " + ", ".join(f"{k}={v}" for k, v in sorted(states.items())),
        f"{len(mismatches)} attempts do not reconcile" + (":" if mismatches else ""),
        *mismatches[:20],
    ]
    return "\n".join(lines)


def reconcile(calls: list[Call], attempts: list[Attempt]) -> list[str]:
    """Every attempt whose requests the audit does not account for, by the module's rule."""
    served: dict[tuple[str, str, int], list[Call]] = defaultdict(list)
    for call in calls:
        served[call.attempt_id].append(call)
    audited = {(a.key, a.state, a.attempt): a for a in attempts}
    problems = [
        f"{a.key} {a.state} attempt {a.attempt} ({a.event}, {a.outcome}): served "
        f"{[str(c.fate) for c in sorted(served.get(k, []), key=lambda c: c.index)]}, audit "
        f"metered {a.metered} + unanswered {a.unanswered}"
        + (f"; {a.error['message'][:100]}" if a.error else "")
        for k, a in audited.items()
        if not a.accounts_for(len(served.get(k, [])))
    ]
    problems += [
        f"{' '.join(map(str, k))}: served {[str(c.fate) for c in v]} to an attempt the audit "
        f"does not record"
        for k, v in served.items()
        if k not in audited
    ]
    if len(audited) != len(attempts):
        problems.append(f"{len(attempts) - len(audited)} attempts have more than one audit row")
    return problems


@pytest.mark.stress
def test_500_items_survive_30_percent_provider_failures(
    openai: FakeProvider, anthropic: FakeProvider, store: SQLiteStore
) -> None:
    scripts = {"openai": Script("openai"), "anthropic": Script("anthropic")}
    openai.always(scripts["openai"])
    anthropic.always(scripts["anthropic"])
    # Agents import their provider's model on first use: a second of blocking imports inside
    # the first attempts' timeouts, which would turn answered requests into spurious timeouts.
    for module in ("pydantic_ai.models.openai", "pydantic_ai.models.anthropic"):
        importlib.import_module(module)
    definition = loads(WORKFLOW % {"timeout": f"{ATTEMPT_TIMEOUT}s", "anthropic": anthropic.root})

    async def scenario() -> float:
        async with httpx2.AsyncClient() as client:
            settings = AISettings(
                http_client=client,
                openai_base_url=openai.url,
                # Above the runner's concurrency: no attempt spends its timeout in a queue.
                provider_concurrency={"openai": 64, "anthropic": 64},
                prices={
                    "openai:gpt-4o-mini": Price(0.15, 0.6),
                    "anthropic:claude-sonnet-4-6": Price(3.0, 15.0),
                },
            )
            registry = CommandRegistry()
            register_agents(registry, [definition], store, settings)
            runner = Runner(store, [definition], registry, concurrency=32)
            began = time.perf_counter()
            items = ((f"item-{n}", {"text": f"ticket number {n}"}) for n in range(ITEMS))
            assert (await runner.start(definition, items)).created == ITEMS
            await runner.run(max_wait=5.0)
            return time.perf_counter() - began

    async def audit() -> tuple[dict[str, list[HistoryRecord]], list[StateCount], int, Any, Any]:
        keys = [f"item-{n}" for n in range(ITEMS)]
        return (
            {key: await store.history("fault_injection", key) for key in keys},
            await store.state_counts(),
            await store.pending_commands(),
            await store.next_timer_due(),
            await store.costs(),
        )

    elapsed = asyncio.run(scenario())
    histories, counts, pending, next_timer, costs = asyncio.run(audit())
    calls = [*scripts["openai"].calls, *scripts["anthropic"].calls]
    attempts = [a for key, rows in histories.items() for a in attempts_of(key, rows)]
    states = Counter({c.state: c.count for c in counts})
    mismatches = reconcile(calls, attempts)
    report = summary(calls, attempts, states, mismatches, elapsed)
    print(report)

    # Every item finished in a final state, waits for a person in the escalation task, or
    # failed in ``answer`` on output that stayed unusable; nothing is active, queued or timed.
    assert sum(states.values()) == ITEMS, report
    for c in counts:
        if c.state == "escalated":
            assert c.status is ItemStatus.WAITING, report
        elif c.state == "answer":
            assert c.status is ItemStatus.FAILED, report
        else:
            assert c.state in END_STATES and c.status is ItemStatus.DONE, report
    assert pending == 0, report
    assert next_timer is None, report

    # The audit trail of every item is gap-free.
    for key, rows in histories.items():
        assert [r.seq for r in rows] == list(range(1, len(rows) + 1)), (key, report)

    # About 30% of requests failed, in every injected way, and every path was taken.
    failed = sum(1 for c in calls if c.fate is not Fate.OK)
    assert 0.25 < failed / len(calls) < 0.35, report
    for provider in ("openai", "anthropic"):
        assert {c.fate for c in calls if c.provider == provider} == set(Fate), report
    assert {"ok", "transient", "invalid_output"} <= {a.outcome for a in attempts}, report
    assert any(a.timed_out for a in attempts), report
    assert any(a.outcome == "ok" and a.attempt > 1 for a in attempts), report
    exhausted = {a.state for a in attempts if a.event == "error" and a.attempt == 3}
    assert exhausted == {"triage", "answer"}, report
    assert all(states[s] for s in END_STATES), report

    # The cost report has both agents, with as many calls as the audit has rows with usage.
    calls_by_agent: Counter[tuple[str, str]] = Counter()
    for row in costs:
        assert row.cost is not None and row.cost > 0, costs
        calls_by_agent[row.agent, row.model] += row.calls
    with_usage = Counter(a.state for a in attempts if a.usage is not None)
    assert calls_by_agent == {
        ("classifier", "openai:gpt-4o-mini"): with_usage["triage"],
        ("specialist", "anthropic:claude-sonnet-4-6"): with_usage["answer"],
    }, costs
    for a in attempts:
        assert a.usage is None or a.usage["outcome"] == a.outcome, (a, report)

    # The audit trail accounts for every request the servers received.
    assert not scripts["openai"].untagged, report
    assert not scripts["anthropic"].untagged, report
    assert not mismatches, report
    assert sum(a.metered for a in attempts) <= len(calls), report
    assert len(calls) <= sum(a.metered + a.unanswered for a in attempts), report
    for provider, state, (tokens_in, tokens_out) in (
        ("openai", "triage", OPENAI_TOKENS),
        ("anthropic", "answer", ANTHROPIC_TOKENS),
    ):
        answered = sum(1 for c in calls if c.provider == provider and c.fate in ANSWERED)
        usages = [a.usage for a in attempts if a.state == state and a.usage is not None]
        metered = sum(u["requests"] for u in usages)
        # An attempt cut at its deadline may leave one answered response unread, never more.
        cut = sum(1 for a in attempts if a.state == state and a.timed_out)
        assert answered - cut <= metered <= answered, report
        assert sum(u["input_tokens"] for u in usages) == metered * tokens_in, report
        assert sum(u["output_tokens"] for u in usages) == metered * tokens_out, report
