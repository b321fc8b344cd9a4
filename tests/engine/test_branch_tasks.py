"""People's tasks and short sequences as branches of a parallel state.

Two reviews at once (the brief's senior and legal review), a sequence of a command and a
sign-off, the join rules over them, cancelled tasks once a join is settled, and the tasks'
reminders and due times.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import pytest

from statewise.definition import loads, to_yaml
from statewise.engine import (
    BranchStatus,
    ItemStatus,
    Outcome,
    RunCommand,
    StartTimer,
    TaskDecided,
)
from statewise.engine.effects import CloseTask, OpenTask, RemindTask
from statewise.engine.events import TASK_DUE_TIMER, TASK_REMINDER_TIMER
from statewise.engine.migration import migrate
from statewise.errors import DefinitionError, InvalidEventError
from statewise.replay.fold import fold
from statewise.replay.record import read_inputs

from .helpers import Run

T = TypeVar("T")

REVIEWS = """
workflow: reviews
states:
  start:
    kind: initial
    transitions: [{to: review}]
  review:
    kind: parallel
    join: JOIN
    branches:
      senior:
        task: {queue: senior, title: Senior review, remind: 1h, due: 1d}
        outcomes: [approve, reject]
      legal:
        steps:
          - {step: scan, command: scan_text}
          - step: sign_off
            task: {queue: legal, due: 2d, escalate_to: lead}
            outcomes: [approve, reject]
    transitions:
      - {to: decided}
      - {on: error, to: failed}
  lead:
    kind: human
    task: {queue: lead}
    transitions: [{on: approve, to: decided}]
  decided: {kind: final}
  failed: {kind: final}
"""


def reviews(join: str = "all") -> Run:
    return Run(loads(REVIEWS.replace("JOIN", join)))


def decide(run: Run, branch: str, outcome: str = "approve", actor: str = "ann") -> None:
    item = run.item
    run.deliver(TaskDecided(item.state, item.visit, outcome, actor, "ok", {}, 7, branch))


def effects(run: Run, kind: type[T]) -> list[T]:
    return [e for e in run.last.effects if isinstance(e, kind)]


def test_both_reviews_open_at_once_and_the_join_waits_for_both() -> None:
    run = reviews()
    opened = effects(run, OpenTask)
    assert [(t.branch, t.queue) for t in opened] == [("senior", "senior")]
    assert [c.branch for c in effects(run, RunCommand)] == ["legal.scan"]
    assert [(t.name, t.branch) for t in effects(run, StartTimer)] == [
        ("task_reminder", "senior"),
        ("task_due", "senior"),
    ]
    assert run.item.status is ItemStatus.ACTIVE  # the scan runs

    run.succeed({"clean": True}, branch="legal.scan")
    assert [(t.branch, t.queue) for t in effects(run, OpenTask)] == [("legal.sign_off", "legal")]
    assert run.item.status is ItemStatus.WAITING  # only people are left
    assert [b.status for b in run.item.branches] == [BranchStatus.WAITING] * 2

    decide(run, "senior", "reject")
    assert run.item.state == "review"
    assert run.item.context["review"]["senior"]["outcome"] == "reject"
    assert effects(run, CloseTask) == [
        CloseTask("review", 1, "decided", "ann", "reject", "ok", {}, "senior")
    ]

    decide(run, "legal.sign_off", actor="bob")
    assert run.item.state == "decided"
    legal = run.item.context["review"]["legal"]
    assert legal["scan"] == {"clean": True}
    assert legal["sign_off"]["by"] == "bob"
    decision = next(r for r in run.rows if r.event == "approve")
    assert (decision.branch, decision.actor, decision.decision["task_id"]) == (
        "legal.sign_off",
        "bob",
        7,
    )


def test_join_any_cancels_the_other_task_and_refuses_its_late_decision() -> None:
    run = reviews("any")
    decide(run, "senior")

    assert run.item.state == "decided"
    cancelled = effects(run, CloseTask)
    assert [(c.branch, c.status) for c in cancelled] == [
        ("senior", "decided"),
    ]  # the legal branch was still scanning: no task of it was open
    with pytest.raises(InvalidEventError, match="accepts no more events"):
        decide(run, "senior")


def test_an_open_task_is_cancelled_with_an_audit_row_when_the_join_is_met() -> None:
    run = reviews("any")
    run.succeed({"clean": True}, branch="legal.scan")
    decide(run, "legal.sign_off")

    closes = effects(run, CloseTask)
    assert [(c.branch, c.status) for c in closes] == [
        ("legal.sign_off", "decided"),
        ("senior", "cancelled"),
    ]
    assert closes[1].comment == "cancelled: join any of 'review' was met without it"
    row = next(r for r in run.last.history if r.event == "task_cancelled")
    assert (row.branch, row.from_state, row.to_state) == ("senior", "review", "review")


def test_a_decision_needs_an_open_branch_task_and_one_of_its_outcomes() -> None:
    run = reviews()
    with pytest.raises(InvalidEventError, match=r"'aprove' is not an outcome .*'approve'\?"):
        decide(run, "senior", "aprove")
    with pytest.raises(InvalidEventError, match="not waiting for a decision"):
        decide(run, "legal.sign_off")  # the scan has not finished
    with pytest.raises(InvalidEventError, match="not waiting for a decision"):
        decide(run, "nobody")
    assert run.item.state == "review"


def test_reminder_marks_and_due_time_fails_the_branch_or_escalates() -> None:
    run = reviews()
    run.timer(TASK_REMINDER_TIMER, branch="senior")
    assert effects(run, RemindTask) == [RemindTask("review", 1, "senior")]

    run.timer(TASK_DUE_TIMER, branch="senior")  # no escalate_to: the branch fails
    assert run.item.state == "failed"  # join all can no longer be met
    assert [(c.branch, c.status) for c in effects(run, CloseTask)] == [("senior", "expired")]
    assert run.timer(TASK_DUE_TIMER, branch="senior").outcome is Outcome.IGNORED

    run = reviews()
    run.succeed({"clean": True}, branch="legal.scan")
    run.timer(TASK_DUE_TIMER, branch="legal.sign_off")  # escalate_to: lead
    assert (run.item.state, run.item.status) == ("lead", ItemStatus.WAITING)
    closes = [(c.branch, c.status) for c in effects(run, CloseTask)]
    assert closes == [("legal.sign_off", "expired"), ("senior", "cancelled")]


def test_a_timer_of_a_decided_task_is_ignored() -> None:
    run = reviews()
    decide(run, "senior")
    assert run.timer(TASK_DUE_TIMER, branch="senior").outcome is Outcome.IGNORED


def test_branch_tasks_round_trip_through_yaml() -> None:
    definition = loads(REVIEWS.replace("JOIN", "any"))
    assert loads(to_yaml(definition)) == definition


@pytest.mark.parametrize(
    ("branch", "message"),
    [
        ("a%/?", "`a%/?` is not a valid name"),
        ("rév", "`rév` is not a valid name"),
        ('ok: {task: {queue: "q\\u0000%"}, outcomes: [go]}', "is not a valid name"),
        ("ok: {task: {queue: q}}", "opens a `task` but offers no `outcomes`"),
        ("ok: {task: {queue: q}, outcomes: [go], name: x}", "drop `name`"),
        ("ok: {steps: [{step: s, command: c, task: {queue: q}}]}", "exactly one of"),
        ("ok: {steps: []}", "`steps` is empty"),
        ("ok: {steps: [{step: s, command: c}, {step: s, command: d}]}", "named twice"),
        ("ok: {outcomes: [go], name: c}", "`outcomes` belong to a `task`"),
        ("ok: {task: {queue: q, escalate_to: nowhere}, outcomes: [go]}", "unknown state `nowhere`"),
        (
            "ok: {task: {queue: q, reviews: {state: start, agree: [nope]}}, outcomes: [go]}",
            "`reviews.agree` lists `nope`, which is not an outcome of task `ok`",
        ),
    ],
)
def test_hostile_or_broken_branches_are_refused_clearly(branch: str, message: str) -> None:
    body = branch if ":" in branch else f"'{branch}': cmd"
    text = f"""
workflow: bad
states:
  start:
    kind: initial
    transitions: [{{to: fan}}]
  fan:
    kind: parallel
    branches:
      {body}
    transitions: [{{to: done}}]
  done: {{kind: final}}
"""
    with pytest.raises(DefinitionError) as caught:
        loads(text)
    assert message in str(caught.value)


def test_a_replay_folds_the_recorded_decisions_back_through_the_branches() -> None:
    """What-if replay: the same inputs, each delivered to its own branch, give the same path."""
    run = reviews()
    run.timer(TASK_REMINDER_TIMER, branch="senior")
    run.succeed({"clean": True}, branch="legal.scan")
    decide(run, "legal.sign_off", "reject", actor="bob")
    decide(run, "senior")

    inputs = read_inputs(run.item.key, run.rows)
    assert inputs is not None
    folded = fold(run.definition, inputs)
    assert (folded.item.state, folded.item.context) == (run.item.state, run.item.context)
    assert [(r.to_state, r.event, r.branch) for r in folded.history] == [
        (r.to_state, r.event, r.branch) for r in run.rows
    ]


def test_migrating_an_item_closes_its_branch_tasks_on_the_old_version() -> None:
    run = reviews()
    run.succeed({"clean": True}, branch="legal.scan")
    new = replace(run.definition, version=2)

    moved = migrate(run.definition, new, run.item, "lead", "ops", "reviews by the lead", run.now)

    assert [(c.branch, c.status) for c in moved.effects if isinstance(c, CloseTask)] == [
        ("senior", "cancelled"),
        ("legal.sign_off", "cancelled"),
    ]
    assert (moved.item.state, moved.item.branches) == ("lead", ())
