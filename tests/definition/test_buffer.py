"""``buffer:`` of a declared event: its one shape, its checks, and its round trip to YAML."""

from __future__ import annotations

import textwrap

import pytest

from statewise.definition import Workflow, loads, to_yaml
from statewise.errors import DefinitionError

WORKFLOW = """
workflow: order
events:
  paid:
    description: the customer paid
    buffer: {ttl: %s}
  approve: a manager approves
states:
  intake:
    kind: initial
    command: check
    transitions: [{to: approval}]
  approval:
    kind: %s
    transitions: [{on: approve, to: checkout}]
  checkout:
    kind: waiting
    transitions: [{on: paid, to: done}]
  done: {kind: final}
"""


def only(text: str) -> tuple[str, int, int]:
    with pytest.raises(DefinitionError) as info:
        loads(textwrap.dedent(text), file="wf.yaml")
    (problem,) = info.value.problems
    return problem.message, problem.line, problem.column


def test_a_buffered_event_keeps_its_time_to_live_in_seconds() -> None:
    definition = loads(WORKFLOW % ("1d12h", "waiting"))
    assert definition.events is not None
    assert definition.events["paid"].buffer_ttl == 36 * 3600
    assert definition.events["approve"].buffer_ttl is None


@pytest.mark.parametrize(
    ("buffer", "message", "column"),
    [
        ("true", "`buffer` needs a time-to-live: write `buffer: {ttl: 24h}`", 13),
        ("{ttl: 0}", "`ttl` must be a positive duration such as 24h, not 0 seconds", 19),
        ("{ttl: -5m}", "`-5m` is not a duration; write it like 500ms", 19),
        ("{ttl: 24h, size: 3}", "unknown key `size`; expected one of: ttl", 24),
    ],
)
def test_a_buffer_without_a_usable_ttl_is_refused_where_it_is_written(
    buffer: str, message: str, column: int
) -> None:
    text = WORKFLOW.replace("buffer: {ttl: %s}", f"buffer: {buffer}") % "waiting"
    found, line, at = only(text)
    assert found.startswith(message) and (line, at) == (6, column), (found, line, at)


def test_an_event_only_human_states_accept_cannot_be_buffered() -> None:
    human = """
workflow: review
events:
  approve:
    description: a reviewer approves
    buffer: {ttl: 1h}
states:
  start:
    kind: initial
    transitions: [{to: check}]
  check:
    kind: human
    task: {queue: q}
    transitions: [{on: approve, to: done}]
  done: {kind: final}
"""
    assert only(human) == (
        "event `approve` is buffered, but only human states accept it, and a human task is "
        "decided, not sent; drop `buffer` or accept `approve` in a waiting state",
        6,
        5,
    )


def test_a_buffer_round_trips_through_yaml_and_the_python_builder() -> None:
    loaded = loads(WORKFLOW % ("24h", "waiting"), commands=frozenset({"check"}))
    assert loads(to_yaml(loaded)) == loaded
    assert "buffer:\n      ttl: 1d" in to_yaml(loaded)

    built = Workflow(
        "order",
        events={
            "paid": {"description": "the customer paid", "buffer": {"ttl": "24h"}},
            "approve": "a manager approves",
        },
    )
    built.initial("intake", command="check").to("approval")
    built.waiting("approval").on("approve", "checkout")
    built.waiting("checkout").on("paid", "done")
    built.final("done")
    assert built.build() == loaded


def test_a_transition_cannot_take_the_name_of_the_buffer_timer() -> None:
    timer = "{on: paid, to: done}, {after: 1h, on: buffer_expiry, to: done}"
    text = WORKFLOW.replace("{on: paid, to: done}", timer)
    message, line, column = only(text % ("1h", "waiting"))
    assert message.startswith("event `buffer_expiry` is the name of statewise's own timer")
    assert (line, column) == (18, 57)
