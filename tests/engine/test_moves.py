"""``moves.enter`` and ``moves.fire``: the entry points that migration, buffered events and
operator actions call on a step's builder, tested directly on a builder.

They must behave as a step does: one audit row per move, the old state's waiting dropped,
the new state's work started, and a new item's first row coming from nowhere.
"""

from __future__ import annotations

from statewise.engine import CancelTimers, ItemStatus, RunCommand, StartTimer, start
from statewise.engine.builder import StepBuilder
from statewise.engine.moves import enter, fire
from statewise.engine.result import Hop
from statewise.engine.step import new_item

from .helpers import T0, go, task, wait, workflow

FLOW = workflow(
    wait("inbox", go("review", on="submit"), go("reminded", on="nudge", after=3600.0)),
    task("review", "check", go("filed")),
)


def _waiting_in_inbox() -> StepBuilder:
    item = start(FLOW, "K-1", {}, T0).item
    assert (item.state, item.status) == ("inbox", ItemStatus.WAITING)
    return StepBuilder(FLOW, item, T0 + 10.0)


def test_enter_leaves_the_state_records_the_move_and_starts_the_new_state() -> None:
    builder = _waiting_in_inbox()
    enter(builder, "review", Hop(event="moved", kind="operator", actor="ops", note="why"))
    result = builder.result()
    (row,) = result.history
    assert (row.from_state, row.to_state, row.actor, row.note) == ("inbox", "review", "ops", "why")
    assert row.dwell == 10.0
    assert result.effects[0] == CancelTimers()  # inbox's `after` timer goes
    (run,) = [e for e in result.effects if isinstance(e, RunCommand)]
    assert (run.command, run.state, run.visit, run.attempt) == ("check", "review", 1, 1)
    assert (result.item.state, result.item.status, result.item.attempt) == (
        "review",
        ItemStatus.ACTIVE,
        1,
    )


def test_enter_of_a_new_item_leaves_no_state() -> None:
    builder = StepBuilder(FLOW, new_item(FLOW, "K-2", T0), T0)
    enter(builder, "inbox", Hop(event="start", kind="start", creates_item=True))
    result = builder.result()
    (row,) = result.history
    assert (row.from_state, row.to_state, row.dwell) == (None, "inbox", None)
    assert result.effects == (StartTimer("nudge", T0 + 3600.0, "inbox", 1),)


def test_fire_takes_a_matching_transition_and_says_when_none_matched() -> None:
    builder = _waiting_in_inbox()
    assert not fire(builder, "unknown", Hop(event="unknown", kind="external"))
    assert builder.result().history == ()
    assert fire(builder, "submit", Hop(event="submit", kind="external", actor="ann"))
    result = builder.result()
    assert [(r.from_state, r.to_state, r.event) for r in result.history] == [
        ("inbox", "review", "submit")
    ]
    assert result.history[0].transition == 0
    assert result.item.state == "review"
