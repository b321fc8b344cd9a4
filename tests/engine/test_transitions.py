"""Choosing a transition: written order, ``else``, the facts conditions read, and their audit."""

from __future__ import annotations

import pytest

from statewise.definition.model import ErrorKind
from statewise.engine import Item, ItemStatus, Outcome
from statewise.engine.transitions import accepted_events, condition_facts, select_transition
from statewise.errors import ConditionError

from .helpers import ESCALATED, T0, Run, assert_defect, decide, go, otherwise, task, wait, workflow


def router(n: int) -> Run:
    """A decision ``route`` with three ordered guards over ``n``."""
    definition = workflow(
        decide(
            "route",
            go("big", when="n > 10"),
            go("positive", when="n > 0"),
            otherwise("other"),
            go("never", when="n > -1000"),
        )
    )
    return Run(definition, data={"n": n})


@pytest.mark.parametrize(
    ("n", "target", "index", "condition", "values"),
    [
        (50, "big", 0, "n > 10", {"n": 50}),
        (5, "positive", 1, "n > 0", {"n": 5}),
        (0, "other", 2, "else", {}),
    ],
)
def test_the_first_matching_transition_in_written_order_wins(
    n: int, target: str, index: int, condition: str, values: dict[str, int]
) -> None:
    row = router(n).rows[-1]
    assert (row.to_state, row.transition, row.condition, row.values) == (
        target,
        index,
        condition,
        values,
    )


def test_an_else_written_first_shadows_later_guards() -> None:
    definition = workflow(decide("route", otherwise("fallback"), go("special", when="n > 0")))
    row = Run(definition, data={"n": 5}).rows[-1]
    assert (row.to_state, row.transition, row.condition) == ("fallback", 0, "else")


def test_transitions_on_other_events_are_skipped() -> None:
    definition = workflow(
        task("work", "work", go("cancelled", on="cancel"), go("next", when="work > 0"))
    )
    row = Run(definition).succeed(3).history[0]
    assert (row.to_state, row.transition) == ("next", 1)


def test_only_the_paths_a_condition_reads_are_recorded() -> None:
    definition = workflow(
        decide("route", go("tagged", when="n > 1 && size(tags) > 0 && item.key == 'item-1'"))
    )
    run = Run(definition, data={"n": 2, "tags": ["a"], "unrelated": "secret"})
    row = run.rows[-1]
    assert row.to_state == "tagged"
    assert row.values == {"n": 2, "tags": ["a"], "item.key": "item-1"}


def test_conditions_read_visits_and_attempts() -> None:
    definition = workflow(
        task(
            "work",
            "work",
            go("again", when="visits.work < 2 && attempts == 1 && visits.again == 0"),
            otherwise("stop"),
        ),
        decide("again", go("work")),
    )
    run = Run(definition)
    assert run.succeed(1).item.state == "work"
    assert run.succeed(2).item.state == "stop"
    assert run.rows[-1].condition == "else"


def test_conditions_read_the_error_of_a_failed_command() -> None:
    definition = workflow(
        task(
            "call",
            "call",
            go("ok"),
            go("fix_input", on="error", when="error.kind == 'permanent'"),
            otherwise("retry_later", on="error"),
        )
    )
    result = Run(definition).fail(ErrorKind.PERMANENT, "bad input")
    assert result.item.state == "fix_input"
    assert result.history[0].values == {"error.kind": "permanent"}


def test_condition_facts_expose_context_and_engine_facts() -> None:
    definition = workflow(task("work", "work", go("next")), decide("unused", go("work")))
    item = Item(
        key="k",
        workflow="wf",
        version=1,
        state="work",
        status=ItemStatus.ACTIVE,
        entered_at=T0,
        visits={"work": 2},
        attempt=3,
    )
    facts = condition_facts(
        definition,
        item,
        {"n": 1},
        "approve",
        {"by": "ann"},
        {"kind": "transient", "message": "x"},
    )
    assert facts == {
        "n": 1,
        "visits": {"work": 2, "unused": 0, "next": 0, ESCALATED: 0},
        "attempts": 3,
        "item": {"key": "k", "workflow": "wf", "version": 1, "state": "work"},
        "event": {"name": "approve", "data": {"by": "ann"}},
        "error": {"kind": "transient", "message": "x"},
    }
    plain = condition_facts(definition, item, {}, "done")
    assert (plain["event"], plain["error"]) == ({"name": "done", "data": {}}, None)


def test_select_transition_returns_none_when_nothing_matches() -> None:
    state = decide("route", go("big", when="n > 10"), go("other", on="poke"))
    assert select_transition(state, "done", {"n": 1}) is None
    selection = select_transition(state, "poke", {"n": 1})
    assert selection is not None
    assert (selection.transition.target, selection.index, selection.condition) == (
        "other",
        1,
        None,
    )


def test_select_transition_raises_condition_errors_for_the_caller() -> None:
    state = decide("route", go("big", when="n > 10"))
    with pytest.raises(ConditionError, match=r"`n > 10`"):
        select_transition(state, "done", {})
    with pytest.raises(ConditionError, match="not true or false"):
        select_transition(decide("route", go("x", when="n")), "done", {"n": 3})


def test_accepted_events_are_listed_once_in_written_order() -> None:
    state = wait(
        "inbox",
        go("a", on="reply", when="reply.ok"),
        go("b", on="cancel"),
        otherwise("c", on="reply"),
    )
    assert accepted_events(state) == ["reply", "cancel"]


def test_a_guard_that_never_evaluates_does_not_stop_an_earlier_match() -> None:
    definition = workflow(decide("route", go("first", when="n > 0"), go("second", when="nope")))
    run = Run(definition, data={"n": 1})
    assert run.item.state == "first"


def test_a_guard_error_after_failed_guards_is_reported_not_skipped() -> None:
    definition = workflow(decide("route", go("first", when="n > 5"), go("second", when="nope > 1")))
    run = Run(definition, data={"n": 1})
    assert_defect(run.last, "route", "condition", "`nope > 1`")


@pytest.mark.parametrize("source", ["n / 0 > 1", "n % 0 == 1", "n + 9223372036854775807 > 0"])
def test_arithmetic_failures_in_a_condition_are_condition_defects(source: str) -> None:
    result = Run(workflow(decide("route", go("next", when=source))), data={"n": 5}).last
    assert result.outcome is Outcome.MOVED
    assert_defect(result, "route", "condition")


def test_mixing_int_and_double_in_a_condition_is_a_condition_defect() -> None:
    # CEL has no implicit numeric conversion: `int * double` cannot be evaluated
    result = Run(workflow(decide("route", go("next", when="n * 1.5 > 2"))), data={"n": 5}).last
    assert_defect(result, "route", "condition", "`n * 1.5 > 2`")


def test_an_index_out_of_range_in_a_condition_is_a_condition_defect() -> None:
    result = Run(workflow(decide("route", go("next", when="xs[3] == 1"))), data={"xs": [1]}).last
    assert_defect(result, "route", "condition")
