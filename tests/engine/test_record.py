"""The record a step keeps: what each row consumed, and the guards an ``else`` passed over.

A row's ``output`` is what its step consumed (a result, an event's data, a task decision, the
start data); only that row carries it, keyed by its state's visit, branch and attempt, so a
loop's rounds stay apart. ``rejected`` lists the guards tried and found false before the
transition taken, each with the values it read.
"""

from __future__ import annotations

from .helpers import (
    Run,
    assert_defect,
    command,
    decide,
    fan,
    go,
    otherwise,
    task,
    wait,
    workflow,
)

LOOP = workflow(
    task(
        "score",
        "score",
        go("done", when="visits.score >= 2"),
        otherwise("revise"),
    ),
    decide("revise", go("score")),
)


def test_each_round_of_a_loop_keeps_its_own_output_on_the_row_that_consumed_it() -> None:
    run = Run(LOOP, data={"title": "draft"})
    first = run.succeed({"value": 40, "reason": "off-brand"})
    second = run.succeed({"value": 85})

    start, (leaving, back) = run.rows[0], first.history
    assert (start.output, start.visit) == ({"title": "draft"}, None)
    assert (leaving.from_state, leaving.output, leaving.visit, leaving.attempt) == (
        "score", {"value": 40, "reason": "off-brand"}, 1, 1
    )  # fmt: skip
    # The step went on through revise into score again: that row consumed nothing.
    assert (back.from_state, back.to_state, back.output, back.visit) == (
        "revise",
        "score",
        None,
        None,
    )
    (done,) = second.history
    assert (done.to_state, done.output, done.visit) == ("done", {"value": 85}, 2)


def test_an_else_row_lists_the_guards_found_false_with_the_values_they_read() -> None:
    run = Run(LOOP)
    (leaving, *_) = run.succeed({"value": 1}).history
    assert leaving.condition == "else"
    assert leaving.rejected == [{"condition": "visits.score >= 2", "values": {"visits.score": 1}}]
    (done,) = run.succeed({"value": 2}).history
    assert done.condition == "visits.score >= 2" and done.rejected is None


def test_a_guard_that_fires_after_false_ones_records_them_all() -> None:
    tiers = workflow(
        task(
            "rate",
            "rate",
            go("gold", when="rate.points > 100"),
            go("silver", when="rate.points > 50 && rate.tier != 'none'"),
            go("bronze", when="rate.points > 10"),
            otherwise("none"),
        )
    )
    (row,) = Run(tiers).succeed({"points": 70, "tier": "none"}).history
    assert (row.to_state, row.condition, row.values) == (
        "bronze", "rate.points > 10", {"rate.points": 70}
    )  # fmt: skip
    assert row.rejected == [
        {"condition": "rate.points > 100", "values": {"rate.points": 70}},
        {
            "condition": "rate.points > 50 && rate.tier != 'none'",
            "values": {"rate.points": 70, "rate.tier": "none"},
        },
    ]


def test_when_no_guard_holds_the_defect_row_lists_every_guard_with_its_values() -> None:
    gaps = workflow(task("rate", "rate", go("high", when="rate.points > 50")))
    result = Run(gaps).succeed({"points": 7})
    row = assert_defect(result, "rate", "no_transition")
    assert row.rejected == [{"condition": "rate.points > 50", "values": {"rate.points": 7}}]


def test_an_events_data_and_each_branchs_result_are_kept_on_their_rows() -> None:
    definition = workflow(
        wait(
            "inbox",
            go("split", on="reply", when="event.data.urgent"),
            otherwise("closed", on="reply"),
        ),
        fan("split", go("joined"), branches={"a": command("work_a"), "b": command("work_b")}),
    )
    run = Run(definition)
    (refused,) = run.send("reply", urgent=False, text="naïve \x00 ✓").history
    assert (refused.to_state, refused.output) == (
        "closed",
        {"urgent": False, "text": "naïve \x00 ✓"},
    )
    assert refused.rejected == [
        {"condition": "event.data.urgent", "values": {"event.data.urgent": False}}
    ]

    run = Run(definition)
    run.send("reply", urgent=True)
    (a_done,) = run.succeed({"a": 1}, branch="a").history
    b_done, joined = run.succeed([2, "b"], branch="b").history
    assert [(r.branch, r.output, r.visit) for r in (a_done, b_done)] == [
        ("a", {"a": 1}, 1),
        ("b", [2, "b"], 1),
    ]
    assert (joined.event, joined.output) == ("done", None)
