"""Bad items stay bad items: quarantine, loops past every budget, late results and their cost."""

from __future__ import annotations

from dataclasses import replace

import pytest

from statewise.definition.model import ErrorKind, JoinKind, RetryPolicy
from statewise.engine import (
    CancelCommands,
    CancelTimers,
    CloseTask,
    CommandFailed,
    CommandSucceeded,
    External,
    ItemStatus,
    Outcome,
    SaveConversation,
    fail_item,
    step,
)
from statewise.engine.retry import backoff_delay
from statewise.errors import InvalidEventError, ItemFailure

from .helpers import Run, command, decide, fan, final, go, task, wait, workflow

USAGE = {"agent": "writer", "model": "openai:gpt-4.1-mini", "input_tokens": 40, "cost": 0.01}


def test_fail_item_stops_the_item_where_it_stands_and_drops_its_work() -> None:
    run = Run(workflow(task("work", "work", go("done"))))
    result = fail_item(run.item, "workflow wf@9 is not stored", 2_000.0)
    assert result.item.status is ItemStatus.FAILED
    assert result.item.state == "work"
    assert result.item.seq == run.item.seq + 1
    (row,) = result.history
    assert (row.seq, row.event, row.from_state, row.to_state) == (
        result.item.seq,
        "quarantined",
        "work",
        "work",
    )
    assert row.error == {"kind": "item_failure", "message": "workflow wf@9 is not stored"}
    assert {type(e) for e in result.effects} == {CancelTimers, CancelCommands, CloseTask}


def test_a_failed_item_refuses_external_events_and_ignores_late_results() -> None:
    run = Run(workflow(task("work", "work", go("done"), go("done", on="approve"))))
    failed = fail_item(run.item, "broken", 2_000.0).item
    with pytest.raises(InvalidEventError, match=r"failed in state .work. .* until it is redriven"):
        step(run.definition, failed, External("approve"), 2_001.0)
    late = CommandSucceeded(state="work", visit=1, attempt=1, result={})
    assert step(run.definition, failed, late, 2_001.0).outcome is Outcome.IGNORED


def test_an_escalation_state_that_loops_back_fails_the_item_instead_of_recursing() -> None:
    # `escalated` is not final and leads straight back into the budget-less cycle.
    definition = workflow(
        decide("a", go("b")),
        decide("b", go("a")),
        decide("escalated", go("a")),
    )
    with pytest.raises(ItemFailure, match="escalation state 'escalated' leads back into a loop"):
        Run(definition)


def test_backoff_past_float_range_is_the_cap_not_an_overflow() -> None:
    policy = RetryPolicy(
        attempts=1_000_000, backoff=1.0, multiplier=2.0, max_backoff=300.0, jitter=0.0
    )
    assert backoff_delay(policy, 5_000, "item") == 300.0
    assert backoff_delay(policy, 999_999, "item") == 300.0
    integer_growth = replace(policy, multiplier=10)
    assert backoff_delay(integer_growth, 400, "item") == 300.0


def test_an_accepted_result_saves_its_conversation_in_the_step() -> None:
    run = Run(workflow(task("write", "write", go("done"))))
    result = run.deliver(
        CommandSucceeded(
            state="write",
            visit=1,
            attempt=1,
            result={"text": "hi"},
            conversation={"writer": '[{"kind":"request"}]'},
        )
    )
    assert SaveConversation("writer", '[{"kind":"request"}]') in result.effects


def test_a_late_result_changes_nothing_but_records_what_it_spent() -> None:
    run = Run(workflow(task("write", "write", go("done"), go("done", on="skip"))))
    run.send("skip")
    late = CommandSucceeded(
        state="write",
        visit=1,
        attempt=1,
        result={"text": "late"},
        usage=USAGE,
        conversation={"writer": "[]"},
    )
    result = run.deliver(late)
    assert result.outcome is Outcome.STAYED
    assert result.item.state == "done" and "write" not in result.item.context
    (row,) = result.history
    assert (row.event, row.from_state, row.to_state, row.usage) == (
        "result_ignored",
        "write",
        "done",
        USAGE,
    )
    assert row.command == "write"
    assert not any(isinstance(e, SaveConversation) for e in result.effects)


def test_a_late_result_without_usage_is_simply_ignored() -> None:
    run = Run(workflow(task("write", "write", go("done"), go("done", on="skip"))))
    run.send("skip")
    result = run.deliver(CommandSucceeded(state="write", visit=1, attempt=1, result={}))
    assert result.outcome is Outcome.IGNORED and not result.history


def test_the_losing_branch_of_an_any_join_reports_its_cost_after_the_join() -> None:
    definition = workflow(
        fan(
            "ask",
            go("done"),
            branches={"fast": command("fast"), "slow": command("slow")},
            join=JoinKind.ANY,
        )
    )
    run = Run(definition)
    run.succeed({"answer": 1}, branch="fast")
    assert run.item.state == "done"
    cancelled = CommandFailed(
        state="ask",
        visit=1,
        attempt=1,
        error_kind=ErrorKind.PERMANENT,
        message="cancelled: the join was met",
        branch="slow",
        usage=USAGE,
    )
    result = run.deliver(cancelled)
    (row,) = result.history
    assert (row.event, row.branch, row.command, row.from_state) == (
        "result_ignored",
        "slow",
        "slow",
        "ask",
    )
    assert row.usage == USAGE


def test_a_superseded_attempt_reports_its_cost_too() -> None:
    run = Run(workflow(task("call", command("call"), go("done"))))
    run.fail(ErrorKind.TRANSIENT)  # attempt 1 failed; a retry timer is pending
    duplicate = CommandFailed(
        state="call",
        visit=1,
        attempt=1,
        error_kind=ErrorKind.TRANSIENT,
        message="again",
        usage=USAGE,
    )
    result = run.deliver(duplicate)
    assert result.item.retrying and [r.event for r in result.history] == ["result_ignored"]


def test_notes_of_an_attempt_reach_its_audit_row() -> None:
    run = Run(workflow(task("call", "call", go("done"))))
    result = run.deliver(
        CommandSucceeded(
            state="call", visit=1, attempt=1, result=1, note="waited 1.0s for attempt 0"
        )
    )
    assert result.history[0].note == "waited 1.0s for attempt 0"


def test_waiting_and_final_states_need_no_pending_work() -> None:
    run = Run(workflow(wait("hold", go("done", on="approve")), final("done")))
    assert run.item.status is ItemStatus.WAITING
