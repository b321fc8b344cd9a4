"""A fraud hold that reviews an agent, for the agent quality tests of every entry point.

The scorer agent is a plain registered command named ``agent:scorer`` (the runner finds it by
name, as it finds a real agent's), so its scores are exact: an item's start data ``amount``,
plus 0.1 on a rescore.
"""

from __future__ import annotations

from typing import Any

from statewise.contract import CommandContext, CommandRegistry
from statewise.definition import loads
from statewise.definition.model import Definition

SCREENING_YAML = """
workflow: screening
version: 1
input: [amount]
agents:
  scorer:
    instructions: Score the order's fraud risk from 0 to 1.
    output:
      type: object
      properties:
        risk: {type: number, minimum: 0, maximum: 1}
      required: [risk]
states:
  scoring:
    kind: initial
    agent: scorer
    max_visits: 3
    on_exhausted: cancelled
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
"""

registry = CommandRegistry()


@registry.command("agent:scorer")
async def scorer(call: CommandContext) -> dict[str, Any]:
    """The start data's amount as the risk; a rescore adds 0.1."""
    again = 0.1 if "scoring" in call.context else 0.0
    return {"risk": round(call.context["amount"] + again, 6)}


def screening() -> Definition:
    return loads(SCREENING_YAML, file="screening.yaml", commands=registry.names())
