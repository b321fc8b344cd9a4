"""Workflows whose every stage depends only on the item's data, and their real runs.

In ``claims``, ``check`` loops (its command counts the rounds an item asks for), ``assess``
scores the claim from its amount, a threshold sends it to auto-approval or to a person's
review, and the scripted reviewer decides from the data alone. So a changed threshold can be
replayed from the record, and the replay checked against a real run of the changed workflow.
``screening`` adds parallel branches, an agent that reports usage, and a review that grades it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from statewise.actions import Principal, TaskDesk
from statewise.contract import CommandContext, CommandRegistry, CommandResult
from statewise.definition import loads
from statewise.definition.model import Definition, Role
from statewise.replay.record import path_of
from statewise.store import open_store
from statewise.store.base import Task
from statewise.worker.runner import Runner

CLAIMS_YAML = """
workflow: claims
version: 1
states:
  check:
    kind: initial
    command: tally
    max_visits: 5
    transitions:
      - to: check
        when: check.round < rounds
      - to: assess
        else: true
  assess:
    command: score
    transitions:
      - to: auto_approved
        when: assess.score >= 70
      - to: review
        else: true
  review:
    kind: human
    task:
      queue: claims
      title: Check the claim
    transitions:
      - on: approve
        to: approved
      - on: reject
        to: rejected
  auto_approved: {kind: final}
  approved: {kind: final}
  rejected: {kind: final}
"""

SCREENING_YAML = """
workflow: screening
version: 1
agents:
  scorer:
    instructions: Score the order's fraud risk from 0 to 1.
    output:
      type: object
      properties:
        risk: {type: number}
      required: [risk]
states:
  start:
    kind: initial
    transitions:
      - to: gather
  gather:
    kind: parallel
    branches: {credit: credit, identity: identity}
    join: all
    transitions:
      - to: scoring
  scoring:
    agent: scorer
    max_visits: 3
    on_exhausted: over_budget
    transitions:
      - to: hold
        when: scoring.risk >= 0.5
      - to: cleared
        else: true
  hold:
    kind: human
    task:
      queue: fraud
      title: Check a held order
      reviews: {state: scoring, agree: [reject], override: [approve], score: scoring.risk}
    transitions:
      - on: approve
        to: cleared
      - on: reject
        to: cancelled
      - on: rescore
        to: scoring
  cleared: {kind: final}
  cancelled: {kind: final}
  over_budget: {kind: final}
"""


def screening(text: str = SCREENING_YAML) -> Definition:
    """The screening workflow, or a changed copy of its text."""
    return loads(text, file="screening.yaml", commands=registry.names())


def screening_items() -> list[tuple[str, dict[str, Any]]]:
    """Twenty orders with risks 0.00, 0.05 ... 0.95."""
    return [(f"order-{i}", {"risk": i / 20}) for i in range(20)]


def screener(task: Task, context: dict[str, Any]) -> str:
    """Asks a rescore of a risk of 0.8 or more once; then approves below 0.6, rejects the rest.

    So the scorer's holds from 0.5 to 0.6 are overridden, the rest agreed with.
    """
    risk = context["scoring"]["risk"]
    if task.visit == 1 and risk >= 0.8:
        return "rescore"
    return "approve" if risk < 0.6 else "reject"


REVIEWER = Principal("rita", Role.REVIEWER)
registry = CommandRegistry()


@registry.command()
async def tally(call: CommandContext) -> dict[str, Any]:
    """One more round of checks than the last visit counted."""
    previous = call.context.get("check") or {}
    return {"round": int(previous.get("round", 0)) + 1}


@registry.command()
async def credit(call: CommandContext) -> dict[str, Any]:
    """A credit check that always passes."""
    return {"ok": True}


@registry.command()
async def identity(call: CommandContext) -> dict[str, Any]:
    """An identity check that passes below a risk of 0.9."""
    return {"ok": call.context["risk"] < 0.9}


@registry.command("agent:scorer")
async def scorer(call: CommandContext) -> CommandResult:
    """The start data's risk, at a price: every call uses 1200 tokens and costs 0.01."""
    usage = {"model": "test:scorer", "input_tokens": 1000, "output_tokens": 200, "cost": 0.01}
    return CommandResult({"risk": call.context["risk"]}, usage)


FAILING_ONCE: set[str] = set()
"""Keys whose next score fails with a bug (the item fails), as a scorer outage would."""


@registry.command()
async def score(call: CommandContext) -> dict[str, Any]:
    """The claim's score, from its amount alone."""
    if call.key in FAILING_ONCE:
        FAILING_ONCE.discard(call.key)
        raise RuntimeError("the scorer is down")
    return {"score": int(call.context["amount"]) % 100}


def claims(threshold: int = 70, version: int = 1) -> Definition:
    """The claims workflow with its auto-approval threshold at ``threshold``."""
    text = CLAIMS_YAML.replace(">= 70", f">= {threshold}").replace(
        "version: 1", f"version: {version}"
    )
    return loads(text, file="claims.yaml", commands=registry.names())


def claim_items(count: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` claims with spread scores and one to three rounds of checks each."""
    return [
        (f"claim-{i}", {"amount": (i * 37) % 100 + 100, "rounds": i % 3 + 1}) for i in range(count)
    ]


def reviewer_outcome(task: Task, context: dict[str, Any]) -> str:
    """The scripted reviewer approves a score of 40 or more, and rejects the rest."""
    return "approve" if context["assess"]["score"] >= 40 else "reject"


Reviewer = Callable[[Task, dict[str, Any]], str | None]
"""Decides a task from its item's context; None leaves it open."""


async def run_for_real(
    url: str,
    definition: Definition,
    items: Sequence[tuple[str, dict[str, Any]]],
    reviewer: Reviewer = reviewer_outcome,
) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """Run ``items`` through ``definition`` on the store at ``url``, reviewer included.

    Returns each item's (state, status, path) once nothing is left to do.
    """
    store = open_store(url)
    try:
        runner = Runner(store, [definition], registry)
        await store.save_workflow(definition, "claims.yaml", [])
        await runner.start(definition, items)
        await runner.run(max_wait=0)
        desk = TaskDesk(runner, registry)
        decided = True
        while decided:  # until the reviewer leaves every open task as it is
            decided = False
            for task in await desk.inbox(REVIEWER, limit=1000):
                item = await store.get_item(task.workflow, task.key)
                outcome = reviewer(task, dict(item.context))
                if outcome is not None:
                    await desk.decide(task.id, REVIEWER, outcome)
                    decided = True
            await runner.run(max_wait=0)
        found = {}
        for key, _ in items:
            item = await store.get_item(definition.name, key)
            rows = await store.history(definition.name, key)
            found[key] = (item.state, str(item.status), path_of(rows))
        return found
    finally:
        await store.close()
