"""Fixtures for people's actions: a human-review workflow on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statewise.contract import CommandContext, CommandRegistry
from statewise.definition import loads
from statewise.definition.model import Definition
from statewise.errors import PermanentError

REVIEW_YAML = """
workflow: review
version: 1
alerts:
  - state: human_review
    max_age: 4h
states:
  intake:
    kind: initial
    command: score
    transitions:
      - to: human_review
        when: intake.value < 90
      - to: approved
        else: true
  human_review:
    kind: human
    task:
      queue: compliance
      title: Check the order
      form:
        type: object
        properties:
          risk: {type: string, enum: [low, high]}
          note: {type: string}
        required: [risk]
      due: 1h
      remind: 30m
      escalate_to: overdue
    transitions:
      - on: approve
        to: ship
      - on: reject
        to: rejected
  ship:
    command: ship
    transitions:
      - to: approved
  overdue: {kind: final}
  approved: {kind: final}
  rejected: {kind: final}
"""

# An event with a data schema (`pay`) and one without (`tip`), both guarded on their data.
PAYMENT_YAML = """
workflow: payment
version: 1
events:
  pay:
    description: the customer paid
    data:
      type: object
      required: [amount]
      properties:
        amount: {type: number}
  tip: a tip, in its short form and with no schema
states:
  intake:
    kind: initial
    command: score
    transitions:
      - to: checkout
  checkout:
    kind: waiting
    transitions:
      - on: pay
        when: event.data.amount > 10
        to: ship
      - on: pay
        else: true
        to: small
      - on: tip
        when: event.data.amount > 10
        to: ship
      - on: tip
        else: true
        to: small
  ship:
    command: ship
    transitions:
      - to: paid
  paid: {kind: final}
  small: {kind: final}
"""

registry = CommandRegistry()


@registry.command()
async def score(call: CommandContext) -> dict[str, Any]:
    """The amount the item was started with, as its score."""
    return {"value": call.context["amount"]}


CARRIER = {"up": True}


@registry.command()
async def ship(call: CommandContext) -> dict[str, Any]:
    """Shipping fails for good while the carrier is down (tests switch ``CARRIER``)."""
    if not CARRIER["up"]:
        raise PermanentError("carrier refused the parcel")
    return {"shipped": True}


@pytest.fixture
def review() -> Definition:
    return loads(REVIEW_YAML, file="review.yaml", commands=registry.names())


@pytest.fixture
def payment() -> Definition:
    return loads(PAYMENT_YAML, file="payment.yaml", commands=registry.names())


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'actions.sqlite'}"
    found: str = request.getfixturevalue("postgres_url")
    return found


@pytest.fixture(autouse=True)
def carrier_up() -> Iterator[None]:
    CARRIER["up"] = True
    yield
    CARRIER["up"] = True
