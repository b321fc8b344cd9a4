"""A decided task that reviews an agent stage grades that stage's latest visit in its audit row."""

from __future__ import annotations

from typing import Any

import pytest

from statewise.definition import loads
from statewise.definition.model import ErrorKind
from statewise.engine import CommandFailed, CommandSucceeded, Item, start, step
from statewise.engine.events import TaskDecided

from .helpers import T0

# `triage` may send an item straight to the review, before the scorer ever ran.
WORKFLOW = """
workflow: screening
agents:
  scorer:
    instructions: Score it.
states:
  triage:
    kind: initial
    command: triage
    transitions:
      - to: hold
        when: triage.urgent
      - to: scoring
        else: true
  scoring:
    agent: scorer
    max_visits: 3
    transitions: [{to: hold}, {on: error, to: hold}]
  hold:
    kind: human
    task:
      queue: fraud
      reviews: {state: scoring, agree: [reject], override: [approve], score: scoring.risk}
    transitions:
      - on: approve
        to: done
      - on: reject
        to: done
      - on: rescore
        to: scoring
  done: {kind: final}
"""
DEFINITION = loads(WORKFLOW)


def _answer(item: Item, result: Any) -> Item:
    """The command the item waits for returns ``result``."""
    return step(DEFINITION, item, CommandSucceeded(item.state, item.visit, 1, result), T0).item


def _held(*, urgent: bool = False, risk: Any = None) -> Item:
    """An item in the review: sent there by triage, or scored ``risk`` by the agent first."""
    item = _answer(start(DEFINITION, "k", {}, T0).item, {"urgent": urgent})
    return item if urgent else _answer(item, {"risk": risk})


def _decide(item: Item, outcome: str) -> tuple[Item, dict[str, Any]]:
    result = step(DEFINITION, item, TaskDecided("hold", item.visit, outcome, "token:ana"), T0 + 1)
    (row,) = [r for r in result.history if r.decision is not None]
    assert row.decision is not None
    return result.item, row.decision


def test_each_decision_grades_the_visit_of_the_agent_it_reviews() -> None:
    item, first = _decide(_held(risk=0.55), "rescore")
    assert first["review"] == {
        "agent": "scorer", "state": "scoring", "visit": 1, "verdict": "neither", "score": 0.55
    }  # fmt: skip
    assert (item.state, item.visit) == ("scoring", 2)
    _, second = _decide(_answer(item, {"risk": 0.75}), "approve")
    assert second["review"]["visit"] == 2 and second["review"]["verdict"] == "override"
    assert second["review"]["score"] == 0.75  # the score that routed this round, not the first


def test_a_task_reached_before_the_agent_ran_or_when_it_failed_grades_nothing() -> None:
    urgent = _held(urgent=True)
    scoring = _answer(start(DEFINITION, "k", {}, T0).item, {"urgent": False})
    failure = CommandFailed("scoring", 1, 1, ErrorKind.PERMANENT, "the model refused")
    failed = step(DEFINITION, scoring, failure, T0).item
    for item in (urgent, failed):
        assert item.state == "hold"
        _, decision = _decide(item, "approve")
        assert "review" not in decision and decision["outcome"] == "approve"


@pytest.mark.parametrize("risk", ["high", True, None, [0.5]])
def test_a_score_that_is_not_a_number_is_left_out(risk: Any) -> None:
    _, decision = _decide(_held(risk=risk), "reject")
    assert decision["review"]["verdict"] == "agree" and "score" not in decision["review"]
