"""The step function: starting items, command results, errors, budgets and waiting states."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from statewise.definition.model import Definition, ErrorKind, EventSpec, Transition
from statewise.engine import (
    MAX_HOPS,
    CancelTimers,
    CommandFailed,
    CommandSucceeded,
    External,
    ItemStatus,
    Outcome,
    RunCommand,
    SetContext,
    Start,
    StartTimer,
    TimerFired,
    start,
    step,
)
from statewise.engine.defects import DEFECT_NOTE
from statewise.errors import InvalidEventError

from .helpers import (
    ESCALATED,
    T0,
    UNHANDLED_NOTE,
    Run,
    assert_defect,
    command,
    commands,
    decide,
    go,
    hop,
    otherwise,
    task,
    wait,
    workflow,
)


def draft_review() -> Run:
    """draft (command) -> review (command) -> published | draft."""
    definition = workflow(
        task("draft", "draft", go("review")),
        task("review", "review", go("published", when="review.ok"), otherwise("draft")),
    )
    return Run(definition, data={"topic": "owls"})


def approval(*extra: Transition, data: dict[str, Any] | None = None) -> Run:
    """An item waiting in ``approval`` for approve / reject."""
    definition = workflow(
        wait(
            "approval",
            go("published", on="approve", when="approve.by != ''"),
            go("draft", on="reject"),
            *extra,
        ),
        task("draft", "draft", go("approval")),
    )
    return Run(definition, data=data or {})


# --- start ----------------------------------------------------------------------------------


def test_start_puts_data_in_context_and_records_a_row_from_nowhere() -> None:
    run = draft_review()
    result = run.last

    assert result.outcome is Outcome.MOVED
    assert result.item.context == {"topic": "owls"}
    assert result.patches == (SetContext(("topic",), "owls"),)
    assert result.item.state == "draft"
    assert result.item.status is ItemStatus.ACTIVE
    assert result.item.visits == {"draft": 1}
    assert result.item.attempt == 1
    assert result.item.seq == 1
    assert (result.item.created_at, result.item.entered_at, result.item.updated_at) == (T0,) * 3
    (row,) = result.history
    assert (row.seq, row.from_state, row.to_state) == (1, None, "draft")
    assert (row.event, row.event_kind, row.actor, row.at) == ("start", "start", "system", T0)
    assert result.effects == (
        RunCommand(command="draft", state="draft", visit=1, attempt=1, timeout=300.0),
    )


def test_start_records_the_actor() -> None:
    result = start(draft_review().definition, "item-2", {}, T0, actor="alice")
    assert result.history[0].actor == "alice"
    assert result.item.key == "item-2"
    assert (result.item.workflow, result.item.version) == ("wf", 1)


def test_decision_states_chain_through_in_one_step_with_a_row_per_hop() -> None:
    definition = workflow(
        decide("triage", go("small", when="n < 10"), otherwise("big")),
        decide("small", go("quick")),
        task("quick", "quick", go("done_")),
        task("big", "big", go("done_")),
    )
    result = Run(definition, data={"n": 3}).last

    assert result.item.state == "quick"
    assert result.item.visits == {"triage": 1, "small": 1, "quick": 1}
    hops = [(r.seq, r.from_state, r.to_state, r.event, r.event_kind) for r in result.history]
    assert hops == [
        (1, None, "triage", "start", "start"),
        (2, "triage", "small", "done", "automatic"),
        (3, "small", "quick", "done", "automatic"),
    ]
    assert (result.history[1].condition, result.history[1].values) == ("n < 10", {"n": 3})
    assert result.history[1].transition == 0
    assert (result.history[2].condition, result.history[2].values) == (None, {})
    assert commands(result) == [RunCommand("quick", "quick", 1, 1, 300.0)]


def test_an_initial_decision_can_finish_the_item_at_once() -> None:
    result = Run(workflow(decide("route", go("nothing_to_do")))).last
    assert result.item.state == "nothing_to_do"
    assert result.item.status is ItemStatus.DONE
    assert result.effects == ()


# --- command results --------------------------------------------------------------------------


def test_success_stores_the_result_and_fires_done() -> None:
    run = draft_review()
    result = run.succeed({"text": "hoot"})

    assert result.outcome is Outcome.MOVED
    assert result.patches == (SetContext(("draft",), {"text": "hoot"}),)
    assert result.item.context == {"topic": "owls", "draft": {"text": "hoot"}}
    assert (result.item.state, result.item.attempt, result.item.seq) == ("review", 1, 2)
    assert result.item.entered_at == run.now
    (row,) = result.history
    assert (row.seq, row.from_state, row.to_state) == (2, "draft", "review")
    assert (row.event, row.event_kind, row.command) == ("done", "command", "draft")
    assert (row.attempt, row.duration, row.error, row.note) == (1, 0.5, None, None)
    assert commands(result) == [RunCommand("review", "review", 1, 1, 300.0)]


@pytest.mark.parametrize(
    ("ok", "target", "condition", "values"),
    [(True, "published", "review.ok", {"review.ok": True}), (False, "draft", "else", {})],
)
def test_conditions_read_the_stored_result(
    ok: bool, target: str, condition: str, values: dict[str, Any]
) -> None:
    run = draft_review()
    run.succeed("text")
    result = run.succeed({"ok": ok})
    assert result.item.state == target
    assert (result.history[0].condition, result.history[0].values) == (condition, values)


@pytest.mark.parametrize(
    "stale",
    [
        pytest.param(CommandSucceeded("review", 1, 1, "x"), id="success-other-state"),
        pytest.param(CommandSucceeded("draft", 2, 1, "x"), id="success-other-visit"),
        pytest.param(CommandSucceeded("draft", 1, 2, "x"), id="success-other-attempt"),
        pytest.param(
            CommandFailed("review", 1, 1, ErrorKind.PERMANENT, "x"), id="failure-other-state"
        ),
        pytest.param(
            CommandFailed("draft", 0, 1, ErrorKind.PERMANENT, "x"), id="failure-other-visit"
        ),
        pytest.param(
            CommandFailed("draft", 1, 7, ErrorKind.PERMANENT, "x"), id="failure-other-attempt"
        ),
        pytest.param(TimerFired("retry", "draft", 2), id="timer-other-visit"),
    ],
)
def test_events_for_another_state_visit_or_attempt_are_ignored(
    stale: CommandSucceeded | CommandFailed | TimerFired,
) -> None:
    run = draft_review()
    before = copy.deepcopy(run.item)
    result = run.deliver(stale)
    assert result.outcome is Outcome.IGNORED
    assert result.item == before
    assert (result.effects, result.patches, result.history) == ((), (), ())


def test_a_late_result_from_an_earlier_visit_is_ignored() -> None:
    run = draft_review()
    run.succeed("v1")
    run.succeed({"ok": False})  # back to draft, visit 2
    assert (run.item.state, run.item.visit) == ("draft", 2)
    late = run.deliver(CommandSucceeded(state="draft", visit=1, attempt=1, result="old"))
    assert late.outcome is Outcome.IGNORED
    assert run.item.context["draft"] == "v1"


def test_an_external_event_can_interrupt_a_running_command() -> None:
    definition = workflow(task("draft", "draft", go("review"), go("cancelled", on="cancel")))
    run = Run(definition)
    result = run.send("cancel", reason="duplicate")
    assert result.item.state == "cancelled"
    assert result.effects == ()
    late = run.deliver(CommandSucceeded("draft", 1, 1, "text"))
    assert late.outcome is Outcome.IGNORED
    assert "draft" not in run.item.context


@pytest.mark.parametrize(
    "event",
    [
        CommandSucceeded("published", 1, 1, "x"),
        CommandFailed("published", 1, 1, ErrorKind.TRANSIENT, "x"),
        TimerFired("retry", "published", 1),
        TimerFired("remind", "review", 1),
    ],
    ids=type,
)
def test_final_items_ignore_internal_events(
    event: CommandSucceeded | CommandFailed | TimerFired,
) -> None:
    run = draft_review()
    run.succeed("text")
    run.succeed({"ok": True})
    assert run.item.status is ItemStatus.DONE
    done = run.item
    result = run.deliver(event)
    assert result.outcome is Outcome.IGNORED
    assert result.item == done
    assert (result.effects, result.history) == ((), ())


@pytest.mark.parametrize("event", [External("approve"), Start({"n": 1})], ids=type)
def test_final_items_reject_external_events(event: External | Start) -> None:
    run = Run(workflow(decide("route", go("closed"))))
    with pytest.raises(InvalidEventError, match=r"is finished .*'closed'"):
        step(run.definition, run.item, event, T0 + 1)


def test_a_started_item_cannot_start_again() -> None:
    run = draft_review()
    with pytest.raises(InvalidEventError, match="already started"):
        step(run.definition, run.item, Start({}), T0 + 1)


# --- errors that are not command failures ---------------------------------------------------


def test_a_condition_reading_a_missing_key_fails_the_item_as_a_defect() -> None:
    run = Run(workflow(decide("check", go("ok", when="score > 5"), otherwise("low"))))

    row = assert_defect(
        run.last, "check", "condition", "`score > 5`", "read `score`, which is not in the context"
    )
    assert (row.event, row.event_kind) == ("done", "automatic")


def test_a_condition_error_is_a_defect_even_when_on_error_could_take_it() -> None:
    definition = workflow(
        task(
            "review",
            "review",
            go("published", when="review.verdict == 'ok'"),
            go("fix", on="error", when="error.kind == 'condition'"),
        )
    )
    result = Run(definition).succeed({"score": 3})

    row = assert_defect(result, "review", "condition", "verdict")
    assert (row.event, row.event_kind, row.command, row.attempt) == ("done", "command", "review", 1)
    assert result.patches[0].value == {"score": 3}  # the result it could not read is kept


def test_an_error_route_whose_own_condition_fails_names_the_error_it_was_routing() -> None:
    definition = workflow(task("work", "work", go("next"), go("fix", on="error", when="nope")))
    result = Run(definition).fail(ErrorKind.PERMANENT, "refused")
    row = assert_defect(result, "work", "condition", "`nope`", "while routing permanent: refused")
    assert row.event == "error"


def test_a_guard_that_is_not_a_bool_is_a_condition_defect() -> None:
    result = Run(workflow(decide("check", go("ok", when="n + 1"))), data={"n": 1}).last
    assert_defect(result, "check", "condition", "not true or false")


def test_done_matching_no_transition_is_a_defect() -> None:
    run = Run(workflow(task("score", "score", go("high", when="score > 5"))))
    result = run.succeed(2)
    row = assert_defect(result, "score", "no_transition")
    assert row.error == {
        "kind": "no_transition",
        "message": "no transition from 'score' matched event 'done'",
    }
    assert (row.event, row.command, row.attempt, row.note) == ("done", "score", 1, DEFECT_NOTE)


def test_no_transition_is_a_defect_even_with_an_error_route() -> None:
    definition = workflow(
        task(
            "score",
            "score",
            go("high", when="score > 5"),
            go("triage", on="error", when="error.kind == 'no_transition'"),
        )
    )
    assert_defect(Run(definition).succeed(2), "score", "no_transition")


@pytest.mark.parametrize("kind", [ErrorKind.INVALID_OUTPUT, ErrorKind.COMMAND_ERROR])
def test_an_unhandled_defective_command_failure_fails_the_item(kind: ErrorKind) -> None:
    run = Run(workflow(task("score", command("score", attempts=1), go("high"))))
    result = run.fail(kind, "TypeError: unsupported operand")
    row = assert_defect(result, "score", str(kind), "TypeError: unsupported operand")
    assert (row.event, row.command, row.attempt) == ("error", "score", 1)


@pytest.mark.parametrize("kind", [ErrorKind.INVALID_OUTPUT, ErrorKind.COMMAND_ERROR])
def test_an_on_error_route_takes_a_defective_command_failure(kind: ErrorKind) -> None:
    state = task("score", command("score", attempts=1), go("high"), go("triage", on="error"))
    result = Run(workflow(state)).fail(kind, "boom")
    assert (result.item.state, result.item.status) == ("triage", ItemStatus.DONE)


@pytest.mark.parametrize("kind", [ErrorKind.TRANSIENT, ErrorKind.PERMANENT])
def test_an_unhandled_business_failure_escalates(kind: ErrorKind) -> None:
    run = Run(workflow(task("score", command("score", attempts=1), go("high"))))
    result = run.fail(kind, "provider down")
    assert result.item.state == ESCALATED
    assert result.history[-1].note == UNHANDLED_NOTE


def test_a_defect_in_a_waiting_state_timer_guard_cancels_its_timers() -> None:
    definition = workflow(wait("hold", go("late", on="nudge", after=60, when="nope > 1")))
    run = Run(definition)
    result = run.timer("nudge")
    assert_defect(result, "hold", "condition", "`nope > 1`")


def test_a_custom_escalation_state_is_used() -> None:
    definition = workflow(task("check", "check", go("ok")), escalation="needs_human")
    run = Run(definition)
    run.fail(ErrorKind.PERMANENT, "refused")
    assert run.item.state == "needs_human"
    assert run.rows[-1].note == "unhandled error; escalated to 'needs_human'"


# --- visit budgets and loops ----------------------------------------------------------------


def revision_loop(on_exhausted: str | None = "manual") -> Run:
    """write (budget 2) -> review -> published | write."""
    definition = workflow(
        task("write", "write", go("review"), max_visits=2, on_exhausted=on_exhausted),
        task("review", "review", go("published", when="review.ok"), otherwise("write")),
    )
    return Run(definition)


def reject_twice(run: Run) -> None:
    for _ in range(2):
        run.succeed("text")
        run.succeed({"ok": False})


def test_a_revision_loop_stops_at_its_visit_budget() -> None:
    run = revision_loop()
    run.succeed("v1")
    run.succeed({"ok": False})
    assert (run.item.state, run.item.visit) == ("write", 2)
    run.succeed("v2")
    result = run.succeed({"ok": False})

    assert result.item.state == "manual"
    assert result.item.visits == {"write": 2, "review": 2, "manual": 1}
    (row,) = result.history
    assert (row.from_state, row.to_state, row.event, row.condition) == (
        "review",
        "manual",
        "done",
        "else",
    )
    assert row.note == "visit budget of 'write' (2) exhausted"


def test_an_exhausted_budget_without_on_exhausted_escalates() -> None:
    run = revision_loop(on_exhausted=None)
    reject_twice(run)
    assert run.item.state == ESCALATED
    assert run.item.visits["write"] == 2
    assert run.rows[-1].note == "visit budget of 'write' (2) exhausted"


def test_budget_redirects_chain_through_exhausted_fallbacks() -> None:
    definition = workflow(
        task("write", "write", go("review"), max_visits=1, on_exhausted="plan_b"),
        task("review", "review", go("write")),
        task("plan_b", "plan_b", go("write"), max_visits=1, on_exhausted="last_resort"),
    )
    run = Run(definition)
    run.succeed("text")
    assert run.succeed("meh").item.state == "plan_b"
    assert run.succeed("b").item.state == "last_resort"
    assert run.rows[-1].note == "visit budget of 'plan_b' (1) exhausted"


def test_an_on_exhausted_cycle_never_exceeds_a_budget() -> None:
    definition = workflow(
        task("a", "a", go("b"), max_visits=1, on_exhausted="b"),
        task("b", "b", go("a"), max_visits=1, on_exhausted="a"),
    )
    run = Run(definition)
    run.succeed(1)
    result = run.succeed(2)
    assert result.item.visits["a"] <= 1
    assert result.item.visits["b"] <= 1
    assert result.item.state == ESCALATED


def test_an_instant_loop_of_decisions_is_stopped_after_max_hops() -> None:
    result = Run(workflow(decide("a", go("b")), decide("b", go("a")))).last

    assert result.item.state == ESCALATED
    assert result.item.status is ItemStatus.DONE
    assert len(result.history) == MAX_HOPS + 1
    assert [r.seq for r in result.history] == list(range(1, MAX_HOPS + 2))
    assert result.item.seq == MAX_HOPS + 1
    assert result.history[MAX_HOPS - 1].to_state in {"a", "b"}
    last = result.history[-1]
    assert last.to_state == ESCALATED
    assert last.error == {"kind": "loop", "message": f"more than {MAX_HOPS} moves in one step"}


def test_a_visit_budget_stops_a_decision_loop_before_max_hops() -> None:
    definition = workflow(decide("a", go("b"), max_visits=3), decide("b", go("a")))
    result = Run(definition).last
    assert result.item.state == ESCALATED
    assert result.item.visits == {"a": 3, "b": 3, ESCALATED: 1}
    assert result.history[-1].note == "visit budget of 'a' (3) exhausted"


# --- waiting states and external events -----------------------------------------------------


def test_entering_a_waiting_state_waits_without_effects() -> None:
    result = approval().last
    assert result.item.status is ItemStatus.WAITING
    assert result.item.attempt == 0
    assert result.effects == ()


def test_an_external_event_stores_its_data_and_routes() -> None:
    run = approval()
    result = run.send("approve", actor="alice", by="alice")

    assert result.outcome is Outcome.MOVED
    assert result.item.state == "published"
    assert result.item.status is ItemStatus.DONE
    assert result.patches == (SetContext(("approve",), {"by": "alice"}),)
    assert result.item.context == {"approve": {"by": "alice"}}
    (row,) = result.history
    assert (*hop(row), row.actor) == ("approval", "published", "approve", "external", "alice")
    assert (row.condition, row.values) == ("approve.by != ''", {"approve.by": "alice"})


def test_conditions_can_read_the_event_itself() -> None:
    definition = workflow(
        wait(
            "inbox",
            go("urgent", on="mail", when="event.data.priority > 3"),
            otherwise("normal", on="mail"),
        )
    )
    assert Run(definition).send("mail", priority=5).item.state == "urgent"
    assert Run(definition).send("mail", priority=1).item.state == "normal"


def test_an_unknown_event_is_rejected_listing_what_is_accepted() -> None:
    run = approval()
    before = copy.deepcopy(run.item)
    with pytest.raises(InvalidEventError) as raised:
        step(run.definition, run.item, External("publish"), T0 + 1)
    message = str(raised.value)
    assert "'approval'" in message
    assert "'publish'" in message
    assert "accepts: approve, reject" in message
    assert run.item == before


@pytest.mark.parametrize("name", ["done", "error", "remind"])
def test_engine_and_timer_events_cannot_be_sent_from_outside(name: str) -> None:
    run = approval(go("reminded", on="remind", after=60))
    with pytest.raises(InvalidEventError, match="accepts: approve, reject"):
        step(run.definition, run.item, External(name), T0 + 1)


def test_a_state_without_external_transitions_accepts_none() -> None:
    run = draft_review()
    with pytest.raises(InvalidEventError, match=r"accepts: none\)"):
        step(run.definition, run.item, External("approve"), T0 + 1)


def test_an_accepted_event_whose_conditions_all_fail_changes_nothing() -> None:
    run = approval()
    before = copy.deepcopy(run.item)
    with pytest.raises(InvalidEventError, match="none of its conditions held"):
        step(run.definition, run.item, External("approve", {"by": ""}), T0 + 1)
    assert run.item == before


PAY_SCHEMA = {
    "type": "object",
    "required": ["amount"],
    "properties": {"amount": {"type": "number"}},
}


def _checkout(**events: EventSpec) -> Definition:
    """A waiting state whose `pay` event is guarded on the event's own data."""
    definition = workflow(
        wait(
            "checkout",
            go("paid", on="pay", when="event.data.amount > 10"),
            otherwise("small", on="pay"),
            go("error_route", on="error"),
        )
    )
    return replace(definition, events=events or None)


@pytest.mark.parametrize("data", [{"amount": "abc"}, {}, {"amount": None}, {"amount": [1]}])
def test_an_event_whose_guard_cannot_be_evaluated_is_refused_and_changes_nothing(
    data: dict[str, Any],
) -> None:
    run = Run(_checkout())
    before = copy.deepcopy(run.item)
    with pytest.raises(InvalidEventError) as raised:
        step(run.definition, run.item, External("pay", data), T0 + 1)
    message = str(raised.value)
    assert "'pay'" in message and "'item-1'" in message and "`event.data.amount > 10`" in message
    assert message.endswith("nothing changed")
    assert run.item == before


@pytest.mark.parametrize(
    ("data", "field"), [({"amount": "20"}, "amount"), ({}, "data"), ({"amount": True}, "amount")]
)
def test_an_event_whose_data_breaks_its_schema_is_refused_before_any_guard_runs(
    data: dict[str, Any], field: str
) -> None:
    # "20" and true would make the guard fail, or hold by accident on another guard: the
    # schema decides first, naming the field, whatever the guards are.
    run = Run(_checkout(pay=EventSpec("pay", data=PAY_SCHEMA)))
    before = copy.deepcopy(run.item)
    with pytest.raises(InvalidEventError) as raised:
        step(run.definition, run.item, External("pay", data), T0 + 1)
    assert f"its data does not fit the event's schema ({field}: " in str(raised.value)
    assert run.item == before
    assert run.send("pay", amount=12.5).item.state == "paid"


def test_data_too_deep_for_a_recursive_schema_is_refused_not_raised() -> None:
    # A RecursionError escaping the step would quarantine the item instead of refusing.
    tree = {"type": "object", "properties": {"amount": {"type": "number"}, "next": {"$ref": "#"}}}
    run = Run(_checkout(pay=EventSpec("pay", data=tree)))
    deep: dict[str, Any] = {"amount": 20}
    for _ in range(2000):
        deep = {"next": deep}
    with pytest.raises(InvalidEventError, match=r"\(data: nested too deeply to be checked"):
        step(run.definition, run.item, External("pay", deep), T0 + 1)


def test_a_reference_the_schema_cannot_resolve_refuses_the_event() -> None:
    broken = {"type": "object", "properties": {"amount": {"$ref": "#/$defs/money"}}}
    run = Run(_checkout(pay=EventSpec("pay", data=broken)))
    unresolved = r"\(data: the schema refers to .*money.*, which cannot be resolved\)"
    with pytest.raises(InvalidEventError, match=unresolved):
        step(run.definition, run.item, External("pay", {"amount": 20}), T0 + 1)


def test_an_event_without_a_schema_fires_as_before() -> None:
    definition = _checkout(pay=EventSpec("pay", "the customer paid"))
    assert Run(definition).send("pay", amount=3).item.state == "small"


# --- timers ---------------------------------------------------------------------------------


def test_entering_a_state_with_after_starts_its_timer() -> None:
    run = approval(go("reminded", on="remind", after=3600))
    assert run.last.effects == (StartTimer("remind", T0 + 3600, "approval", 1),)


def test_leaving_a_state_with_timers_cancels_them() -> None:
    run = approval(go("reminded", on="remind", after=3600))
    result = run.send("approve", by="bob")
    assert result.effects == (CancelTimers(),)


def test_a_timer_moves_the_item_and_cancels_the_other_timers() -> None:
    run = approval(go("reminded", on="remind", after=60), go("expired", on="expire", after=600))
    assert [t.name for t in run.last.effects if isinstance(t, StartTimer)] == ["remind", "expire"]
    result = run.timer("remind", advance=60)
    assert result.item.state == "reminded"
    assert result.effects == (CancelTimers(),)
    (row,) = result.history
    assert hop(row) == ("approval", "reminded", "remind", "timer")


def test_re_entering_a_timed_state_cancels_then_restarts_its_timer() -> None:
    run = approval(go("approval", on="remind", after=60))
    result = run.timer("remind", advance=60)
    assert result.item.visit == 2
    assert result.effects == (CancelTimers(), StartTimer("remind", run.now + 60, "approval", 2))


def test_a_timer_from_an_earlier_visit_is_ignored() -> None:
    run = approval(go("approval", on="remind", after=60))
    run.timer("remind")
    result = run.deliver(TimerFired("remind", "approval", 1))
    assert result.outcome is Outcome.IGNORED
    assert run.item.visit == 2


def test_a_timer_whose_conditions_all_fail_records_a_stay() -> None:
    run = approval(go("escalate_late", on="nudge", after=60, when="n > 100"), data={"n": 1})
    before = run.item
    result = run.timer("nudge")

    assert result.outcome is Outcome.STAYED
    assert result.item.state == "approval"
    assert result.item.status is ItemStatus.WAITING
    assert result.item.visits == before.visits
    assert result.item.seq == before.seq + 1
    assert result.effects == ()
    (row,) = result.history
    assert hop(row) == ("approval", "approval", "nudge", "timer")
    assert row.note == "timer fired but no transition's condition held"


def test_a_timeout_on_a_command_state_makes_the_late_result_stale() -> None:
    definition = workflow(
        task("call", command("call"), go("ok"), go("too_slow", on="timeout", after=30))
    )
    run = Run(definition)
    assert run.last.effects == (
        StartTimer("timeout", T0 + 30, "call", 1),
        RunCommand("call", "call", 1, 1, 300.0),
    )
    assert run.timer("timeout", advance=30).item.state == "too_slow"
    late = run.deliver(CommandSucceeded("call", 1, 1, "finally"))
    assert late.outcome is Outcome.IGNORED


def test_only_a_patch_over_a_non_empty_object_asks_the_store_to_prune_below_it() -> None:
    run = approval()
    first = run.send("reject", by="bob")
    run.succeed({"text": "v2"})
    again = run.send("reject", by="carol")

    assert [p.prune for p in first.patches] == [False]  # nothing stored there yet
    assert [p.prune for p in again.patches] == [True]  # {"by": "bob"} may have rows below
