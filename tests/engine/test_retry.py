"""Retry budgets and backoff, alone and as the engine applies them to failed commands."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statewise.definition.model import ErrorKind, RetryPolicy, Transition
from statewise.engine import (
    CommandFailed,
    CommandSucceeded,
    Outcome,
    RunCommand,
    StartTimer,
    TimerFired,
)
from statewise.engine.retry import backoff_delay, should_retry

from .helpers import (
    ESCALATED,
    EXACT_RETRY,
    UNHANDLED_NOTE,
    Run,
    assert_defect,
    command,
    commands,
    go,
    hop,
    task,
    timers,
    workflow,
)


def flaky(*extra: Transition, **policy: Any) -> Run:
    """An item running ``call`` (3 attempts, exact 1s/2s/4s backoff unless overridden)."""
    return Run(workflow(task("call", command("call", **policy), go("ok"), *extra)))


def exhaust(run: Run, attempts: int = EXACT_RETRY.attempts) -> None:
    """Fail all ``attempts`` of the current command, firing the retry timer in between."""
    for _ in range(attempts - 1):
        run.fail()
        run.timer("retry")
    run.fail(ErrorKind.TRANSIENT, "still down")


# --- policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "attempt", "expected"),
    [
        (ErrorKind.TRANSIENT, 1, True),
        (ErrorKind.TRANSIENT, 2, True),
        (ErrorKind.TRANSIENT, 3, False),
        (ErrorKind.INVALID_OUTPUT, 1, True),
        (ErrorKind.PERMANENT, 1, False),
    ],
)
def test_should_retry_while_attempts_remain_for_retryable_kinds(
    kind: ErrorKind, attempt: int, expected: bool
) -> None:
    assert should_retry(RetryPolicy(attempts=3), kind, attempt) is expected


def test_should_retry_honours_retry_on() -> None:
    policy = RetryPolicy(retry_on=frozenset({ErrorKind.PERMANENT}))
    assert should_retry(policy, ErrorKind.PERMANENT, 1)
    assert not should_retry(policy, ErrorKind.TRANSIENT, 1)


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(backoff=1.5, multiplier=2.0, max_backoff=10.0, jitter=0.0)
    delays = [backoff_delay(policy, attempt, "id") for attempt in range(1, 7)]
    assert delays == [1.5, 3.0, 6.0, 10.0, 10.0, 10.0]


def test_backoff_is_deterministic_per_identity() -> None:
    policy = RetryPolicy(jitter=0.5)
    assert backoff_delay(policy, 2, "item:a:1:None") == backoff_delay(policy, 2, "item:a:1:None")
    spread = {backoff_delay(policy, 2, f"item-{i}:a:1:None") for i in range(20)}
    assert len(spread) > 1, "jitter should spread items that fail together"


@settings(max_examples=200, deadline=None)
@given(
    backoff=st.floats(0.01, 100),
    multiplier=st.floats(1.0, 4.0),
    max_backoff=st.floats(0.01, 1000),
    jitter=st.floats(0.0, 1.0),
    attempt=st.integers(1, 12),
    identity=st.text(max_size=20),
)
def test_backoff_stays_within_its_jitter_bounds(
    backoff: float,
    multiplier: float,
    max_backoff: float,
    jitter: float,
    attempt: int,
    identity: str,
) -> None:
    policy = RetryPolicy(
        backoff=backoff, multiplier=multiplier, max_backoff=max_backoff, jitter=jitter
    )
    base = min(max_backoff, backoff * multiplier ** (attempt - 1))
    delay = backoff_delay(policy, attempt, identity)
    assert base * (1 - jitter) <= delay <= base
    assert delay <= max_backoff
    assert delay == backoff_delay(policy, attempt, identity)


# --- the engine retrying a command ----------------------------------------------------------


def test_a_transient_failure_schedules_a_retry_timer() -> None:
    run = flaky()
    result = run.fail(ErrorKind.TRANSIENT, "rate limited")

    assert result.outcome is Outcome.STAYED
    assert (result.item.state, result.item.attempt, result.item.visit) == ("call", 1, 1)
    assert result.effects == (StartTimer("retry", run.now + 1.0, "call", 1),)
    assert result.item.seq == 2
    (row,) = result.history
    assert (row.seq, *hop(row)) == (2, "call", "call", "failed", "command")
    assert (row.command, row.attempt, row.duration) == ("call", 1, 0.5)
    assert row.error == {"kind": "transient", "message": "rate limited"}
    assert row.note == "attempt 1 failed; retry in 1.00s"


def test_a_retry_waits_at_least_as_long_as_the_failure_asked() -> None:
    run = flaky()
    usage = {"model": "openai:gpt-4.1-mini", "input_tokens": 30}
    result = run.fail(ErrorKind.TRANSIENT, "429", retry_after=30.0, usage=usage)

    assert result.effects == (StartTimer("retry", run.now + 30.0, "call", 1),)
    (row,) = result.history
    assert row.usage == usage
    assert row.note == "attempt 1 failed; retry in 30.00s"


def test_the_retry_timer_runs_the_next_attempt() -> None:
    run = flaky()
    run.fail()
    result = run.timer("retry")

    assert result.outcome is Outcome.STAYED
    assert result.item.attempt == 2
    assert result.effects == (RunCommand("call", "call", 1, 2, 300.0),)
    (row,) = result.history
    assert hop(row) == ("call", "call", "retry", "timer")
    assert (row.command, row.attempt) == ("call", 2)


def test_backoff_doubles_between_attempts() -> None:
    run = flaky(attempts=4)
    due = []
    for _ in range(3):
        (timer,) = timers(run.fail(ErrorKind.INVALID_OUTPUT))
        due.append(timer.due_at - run.now)
        run.timer("retry")
    assert due == [1.0, 2.0, 4.0]
    assert run.item.attempt == 4


def test_jittered_retries_are_the_same_on_replay() -> None:
    first, second = flaky(jitter=0.9), flaky(jitter=0.9)
    assert first.fail().effects == second.fail().effects
    (timer,) = timers(first.last)
    assert 0.1 <= timer.due_at - first.now <= 1.0


def test_a_success_after_a_retry_records_its_attempt() -> None:
    run = flaky()
    run.fail()
    run.timer("retry")
    result = run.succeed("finally")
    assert result.item.state == "ok"
    assert result.item.context == {"call": "finally"}
    assert result.history[0].attempt == 2


def test_results_of_an_earlier_attempt_are_ignored() -> None:
    run = flaky()
    run.fail()
    run.timer("retry")
    late = run.deliver(CommandSucceeded("call", 1, 1, "late"))
    assert late.outcome is Outcome.IGNORED
    late_failure = run.deliver(CommandFailed("call", 1, 1, ErrorKind.PERMANENT, "late"))
    assert late_failure.outcome is Outcome.IGNORED
    assert run.item.attempt == 2


def test_after_the_last_attempt_the_error_escalates() -> None:
    run = flaky()
    exhaust(run)
    assert run.item.state == ESCALATED
    row = run.rows[-1]
    assert hop(row) == ("call", ESCALATED, "error", "command")
    assert (row.command, row.attempt, row.note) == ("call", 3, UNHANDLED_NOTE)
    assert row.error == {"kind": "transient", "message": "still down"}
    assert [r.event for r in run.rows] == ["start", "failed", "retry", "failed", "retry", "error"]
    assert [r.seq for r in run.rows] == [1, 2, 3, 4, 5, 6]


def test_after_the_last_attempt_the_error_routes_on_error() -> None:
    run = flaky(
        go("give_up", on="error", when="error.kind == 'transient' && attempts == 3"),
    )
    exhaust(run)
    assert run.item.state == "give_up"
    row = run.rows[-1]
    assert row.condition == "error.kind == 'transient' && attempts == 3"
    assert row.values == {"error.kind": "transient", "attempts": 3}
    assert row.note is None


def test_a_permanent_error_is_not_retried() -> None:
    run = flaky(go("rejected", on="error"))
    result = run.fail(ErrorKind.PERMANENT, "bad request")
    assert result.item.state == "rejected"
    assert timers(result) == []
    assert result.history[0].attempt == 1
    assert result.history[0].error == {"kind": "permanent", "message": "bad request"}


def test_kinds_outside_retry_on_are_not_retried() -> None:
    run = flaky(retry_on=frozenset({ErrorKind.TRANSIENT}))
    result = run.fail(ErrorKind.PERMANENT)
    assert result.item.state == ESCALATED
    assert timers(result) == []


def test_invalid_output_outside_retry_on_fails_the_item_at_once() -> None:
    run = flaky(retry_on=frozenset({ErrorKind.TRANSIENT}))
    result = run.fail(ErrorKind.INVALID_OUTPUT, "not JSON")
    assert_defect(result, "call", "invalid_output", "not JSON")
    assert timers(result) == []


def test_a_single_attempt_policy_never_retries() -> None:
    result = flaky(attempts=1).fail(ErrorKind.TRANSIENT)
    assert result.item.state == ESCALATED
    assert result.history[0].attempt == 1


def test_the_command_timeout_is_passed_to_the_shell() -> None:
    run = flaky(timeout=12.5)
    assert [c.timeout for c in commands(run.last)] == [12.5]


def test_a_retry_timer_of_an_earlier_visit_is_ignored() -> None:
    state = task("call", command("call"), go("call", when="visits.call < 2"), go("ok"))
    run = Run(workflow(state))
    run.fail()
    run.timer("retry")
    run.succeed("x")
    assert (run.item.state, run.item.visit) == ("call", 2)
    stale = run.deliver(TimerFired("retry", "call", 1))
    assert stale.outcome is Outcome.IGNORED
    assert run.item.attempt == 1


def test_a_duplicate_retry_timer_does_not_run_extra_attempts() -> None:
    run = flaky()
    run.fail()
    run.timer("retry")
    duplicate = run.timer("retry")
    assert duplicate.outcome is Outcome.IGNORED
    assert run.item.attempt == 2


def test_a_duplicate_failure_does_not_schedule_a_second_retry() -> None:
    run = flaky()
    run.fail()
    duplicate = run.deliver(CommandFailed("call", 1, 1, ErrorKind.TRANSIENT, "boom"))
    assert duplicate.outcome is Outcome.IGNORED
