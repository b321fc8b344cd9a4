"""Parallel states: fan-out, the concurrency limit, joins, branch retries and failures."""

from __future__ import annotations

from typing import Any

import pytest

from statewise.definition.model import ErrorKind, JoinKind, Transition
from statewise.engine import (
    BranchRun,
    BranchStatus,
    CommandSucceeded,
    ItemStatus,
    Outcome,
    RunCommand,
    SetContext,
    StartTimer,
    TimerFired,
)

from .helpers import ESCALATED, Run, assert_defect, command, commands, fan, go, hop, task, workflow

RUNNING, SUCCEEDED, FAILED, PENDING = (
    BranchStatus.RUNNING,
    BranchStatus.SUCCEEDED,
    BranchStatus.FAILED,
    BranchStatus.PENDING,
)


def research(*extra: Transition, join: JoinKind = JoinKind.ALL, n_of: int | None = None) -> Run:
    """Fixed branches web / papers / people, all storing under ``found``."""
    branches = {name: command(name, "found") for name in ("web", "papers", "people")}
    state = fan("research", go("write"), *extra, branches=branches, join=join, n_of=n_of)
    return Run(workflow(state, task("write", "write", go("published"))))


def summarise(
    topics: Any,
    *extra: Transition,
    concurrency: int | None = None,
    join: JoinKind = JoinKind.ALL,
    n_of: int | None = None,
) -> Run:
    """A map over ``topics`` running ``summarise`` per element into ``summaries``."""
    state = fan(
        "summarise",
        go("write"),
        *extra,
        over="topics",
        map_command=command("summarise", "summaries"),
        concurrency=concurrency,
        join=join,
        n_of=n_of,
    )
    return Run(workflow(state), data={"topics": topics})


def statuses(run: Run) -> dict[str, BranchStatus]:
    """Each branch's status by name."""
    return {b.name: b.status for b in run.item.branches}


def launched(run: Run) -> list[str | None]:
    """Branches the last step asked the shell to run."""
    return [c.branch for c in commands(run.last)]


# --- fan-out --------------------------------------------------------------------------------


def test_fixed_branches_all_start_and_clear_their_result_key() -> None:
    result = research().last

    assert result.item.state == "research"
    assert result.item.status is ItemStatus.ACTIVE
    assert result.patches == (SetContext(("found",), {}),)
    assert result.item.context == {"found": {}}
    assert result.item.branches == (
        BranchRun("web", RUNNING, 1),
        BranchRun("papers", RUNNING, 1),
        BranchRun("people", RUNNING, 1),
    )
    assert result.effects == tuple(
        RunCommand(name, "research", 1, 1, 300.0, branch=name)
        for name in ("web", "papers", "people")
    )


def test_map_branches_are_named_by_element_and_get_it_as_input() -> None:
    result = summarise(["owls", "bats"]).last
    assert result.item.branches == (
        BranchRun("owls", RUNNING, 1, "owls"),
        BranchRun("bats", RUNNING, 1, "bats"),
    )
    assert [(c.command, c.branch, c.input) for c in commands(result)] == [
        ("summarise", "owls", "owls"),
        ("summarise", "bats", "bats"),
    ]


@pytest.mark.parametrize(
    "topics",
    [["a", "a"], [{"id": 1}, {"id": 2}], [True, False], ["", "x"], [1, "1"]],
    ids=["duplicates", "dicts", "bools", "empty-string", "int-and-str"],
)
def test_map_branches_fall_back_to_positions(topics: list[Any]) -> None:
    result = summarise(topics).last
    assert [(b.name, b.input) for b in result.item.branches] == [("0", topics[0]), ("1", topics[1])]


def test_an_empty_list_with_join_all_is_done_at_once() -> None:
    result = summarise([]).last
    assert result.item.state == "write"
    assert result.item.branches == ()
    assert commands(result) == []
    row = result.history[-1]
    assert hop(row) == ("summarise", "write", "done", "join")
    assert row.note == "join all met"


@pytest.mark.parametrize("topics", [3, "owls", {"a": 1}, None])
def test_a_map_over_a_non_list_is_a_condition_defect(topics: Any) -> None:
    run = summarise(topics)
    row = assert_defect(run.last, "summarise", "condition", "map over `topics` gave", "not a list")
    assert (row.event, row.event_kind) == ("enter", "parallel")


def test_a_map_whose_expression_fails_is_a_defect_even_with_an_error_route() -> None:
    state = fan(
        "summarise",
        go("write"),
        go("fix", on="error", when="error.kind == 'condition'"),
        over="topics",
        map_command=command("summarise"),
    )
    run = Run(workflow(state))
    assert_defect(run.last, "summarise", "condition", "`topics`")
    assert commands(run.last) == []


# --- results and joins ----------------------------------------------------------------------


def test_branch_results_are_gathered_under_the_result_key() -> None:
    run = research()
    first = run.succeed(["w1"], branch="web")

    assert first.outcome is Outcome.STAYED
    assert first.patches == (SetContext(("found", "web"), ["w1"]),)
    assert statuses(run) == {"web": SUCCEEDED, "papers": RUNNING, "people": RUNNING}
    (row,) = first.history
    assert hop(row) == ("research", "research", "branch_done", "command")
    assert (row.command, row.branch, row.attempt, row.duration) == ("web", "web", 1, 0.5)

    run.succeed(["p1"], branch="papers")
    done = run.succeed([], branch="people")
    assert done.outcome is Outcome.MOVED
    assert done.item.state == "write"
    assert done.item.branches == ()
    assert done.item.context == {"found": {"web": ["w1"], "papers": ["p1"], "people": []}}
    assert [(r.event, r.to_state, r.note) for r in done.history] == [
        ("branch_done", "research", None),
        ("done", "write", "join all met"),
    ]


def test_fixed_branches_may_store_under_different_keys() -> None:
    branches = {"a": command("a", "left"), "b": command("b", "right")}
    run = Run(workflow(fan("split", go("joined"), branches=branches)))
    assert run.item.context == {"left": {}, "right": {}}
    run.succeed(1, branch="a")
    run.succeed(2, branch="b")
    assert run.item.context == {"left": {"a": 1}, "right": {"b": 2}}


def test_join_any_moves_on_the_first_success_and_ignores_the_rest() -> None:
    run = research(join=JoinKind.ANY)
    result = run.succeed("hit", branch="papers")
    assert result.item.state == "write"
    assert result.history[-1].note == "join any met"
    late = run.deliver(CommandSucceeded("research", 1, 1, "late", branch="web"))
    assert late.outcome is Outcome.IGNORED
    assert run.item.context["found"] == {"papers": "hit"}


def test_join_n_of_waits_for_n_successes() -> None:
    run = research(join=JoinKind.N_OF, n_of=2)
    assert run.succeed(1, branch="web").item.state == "research"
    result = run.succeed(2, branch="people")
    assert result.item.state == "write"
    assert result.history[-1].note == "join n_of met"


def test_join_n_of_tolerates_failures_it_can_afford() -> None:
    run = research(join=JoinKind.N_OF, n_of=2)
    failed = run.fail(ErrorKind.PERMANENT, "404", branch="web")
    assert failed.outcome is Outcome.STAYED
    assert statuses(run)["web"] is FAILED
    (row,) = failed.history
    assert (row.event, row.branch, row.to_state) == ("branch_failed", "web", "research")
    assert row.error == {"kind": "permanent", "message": "404"}
    run.succeed(1, branch="papers")
    assert run.succeed(2, branch="people").item.state == "write"


def test_a_failure_that_makes_the_join_impossible_is_an_error() -> None:
    run = research(join=JoinKind.N_OF, n_of=2)
    run.fail(ErrorKind.PERMANENT, branch="web")
    result = run.fail(ErrorKind.PERMANENT, branch="people")

    assert result.item.state == ESCALATED
    assert [(r.event, r.event_kind, r.to_state) for r in result.history] == [
        ("branch_failed", "command", "research"),
        ("error", "parallel", ESCALATED),
    ]
    error = result.history[-1].error
    assert error == {
        "kind": "join",
        "message": "join n_of cannot be met; failed branches: ['web', 'people']",
    }


def test_a_branch_that_raises_a_bug_and_breaks_the_join_fails_the_item() -> None:
    run = research()
    result = run.fail(ErrorKind.COMMAND_ERROR, "KeyError: 'url'", branch="papers")
    row = assert_defect(result, "research", "command_error", "cannot be met", "KeyError: 'url'")
    assert (row.event, row.event_kind) == ("error", "parallel")


def test_a_failed_branch_under_join_all_routes_on_error() -> None:
    run = research(go("partial", on="error", when="error.kind == 'join'"))
    result = run.fail(ErrorKind.PERMANENT, "gone", branch="papers")
    assert result.item.state == "partial"
    late = run.deliver(CommandSucceeded("research", 1, 1, "late", branch="web"))
    assert late.outcome is Outcome.IGNORED


def test_join_any_fails_only_when_every_branch_failed() -> None:
    run = research(join=JoinKind.ANY)
    for name in ("web", "papers"):
        assert run.fail(ErrorKind.PERMANENT, branch=name).item.state == "research"
    assert run.fail(ErrorKind.PERMANENT, branch="people").item.state == ESCALATED


def test_n_of_more_than_the_branches_fails_at_once() -> None:
    run = summarise(["a"], join=JoinKind.N_OF, n_of=2)
    assert run.item.state == ESCALATED
    assert commands(run.last) == []


# --- concurrency ----------------------------------------------------------------------------


def test_the_concurrency_limit_launches_the_next_branch_as_each_completes() -> None:
    run = summarise(["a", "b", "c", "d"], concurrency=2, join=JoinKind.N_OF, n_of=3)
    assert launched(run) == ["a", "b"]
    assert statuses(run) == {"a": RUNNING, "b": RUNNING, "c": PENDING, "d": PENDING}

    run.succeed("A", branch="b")
    assert launched(run) == ["c"]
    assert [c.input for c in commands(run.last)] == ["c"]
    assert statuses(run) == {"a": RUNNING, "b": SUCCEEDED, "c": RUNNING, "d": PENDING}

    run.fail(ErrorKind.PERMANENT, branch="a")
    assert launched(run) == ["d"]
    assert run.item.state == "summarise"
    assert statuses(run) == {"a": FAILED, "b": SUCCEEDED, "c": RUNNING, "d": RUNNING}


def test_an_empty_map_still_resets_its_result_key() -> None:
    state = fan(
        "summarise",
        go("summarise", when="visits.summarise < 2"),
        go("write"),
        over="visits.summarise == 1 ? ['a'] : []",
        map_command=command("summarise", "summaries"),
    )
    run = Run(workflow(state))
    result = run.succeed("A", branch="a")
    assert [r.to_state for r in result.history] == ["summarise", "summarise", "write"]
    assert result.item.context["summaries"] == {}, "the second visit summarised nothing"


def test_concurrency_one_runs_the_branches_one_by_one() -> None:
    run = summarise(["a", "b", "c"], concurrency=1, join=JoinKind.N_OF, n_of=2)
    order = []
    while run.item.state == "summarise":
        (cmd,) = commands(run.last)
        order.append(cmd.branch)
        run.succeed(cmd.input.upper(), branch=cmd.branch)
    assert order == ["a", "b"]
    assert run.item.context["summaries"] == {"a": "A", "b": "B"}
    assert run.item.state == "write"


# --- branch retries and stale branch events -------------------------------------------------


def test_a_branch_is_retried_within_its_budget() -> None:
    run = summarise(["a", "b"])
    failed = run.fail(ErrorKind.TRANSIENT, "slow", branch="a")

    assert failed.outcome is Outcome.STAYED
    assert failed.effects == (StartTimer("retry", run.now + 1.0, "summarise", 1, "a"),)
    (row,) = failed.history
    assert (row.event, row.branch, row.attempt, row.note) == (
        "failed",
        "a",
        1,
        "attempt 1 failed; retry in 1.00s",
    )
    assert statuses(run)["a"] is BranchStatus.RETRYING

    retried = run.timer("retry", branch="a")
    assert retried.effects == (
        RunCommand("summarise", "summarise", 1, 2, 300.0, branch="a", input="a"),
    )
    assert retried.item.branches[0] == BranchRun("a", RUNNING, 2, "a")
    assert (retried.history[0].event, retried.history[0].attempt) == ("retry", 2)
    assert retried.item.attempt == 0, "branch attempts live on the branch, not the item"

    stale = run.deliver(CommandSucceeded("summarise", 1, 1, "old", branch="a"))
    assert stale.outcome is Outcome.IGNORED
    run.succeed("A2", branch="a")
    assert run.item.context["summaries"] == {"a": "A2"}


def test_a_branch_out_of_attempts_fails() -> None:
    run = summarise(["a"])
    for _ in range(2):
        run.fail(ErrorKind.TRANSIENT, branch="a")
        run.timer("retry", branch="a")
    result = run.fail(ErrorKind.TRANSIENT, "down", branch="a")
    assert result.item.state == ESCALATED
    assert result.history[0].attempt == 3
    assert result.history[-1].error is not None
    assert result.history[-1].error["message"] == "join all cannot be met; failed branches: ['a']"


@pytest.mark.parametrize(
    "event",
    [
        CommandSucceeded("summarise", 1, 1, "x", branch="nope"),
        CommandSucceeded("summarise", 1, 2, "x", branch="a"),
        CommandSucceeded("summarise", 2, 1, "x", branch="a"),
        TimerFired("retry", "summarise", 1, branch="nope"),
    ],
    ids=["unknown-branch", "wrong-attempt", "wrong-visit", "retry-unknown-branch"],
)
def test_branch_events_that_match_no_running_branch_are_ignored(
    event: CommandSucceeded | TimerFired,
) -> None:
    run = summarise(["a", "b"])
    before = run.item
    result = run.deliver(event)
    assert result.outcome is Outcome.IGNORED
    assert result.item == before


def test_a_finished_branch_ignores_a_duplicate_result() -> None:
    run = summarise(["a", "b"])
    run.succeed("A", branch="a")
    duplicate = run.deliver(CommandSucceeded("summarise", 1, 1, "again", branch="a"))
    assert duplicate.outcome is Outcome.IGNORED
    assert run.item.context["summaries"] == {"a": "A"}


def test_re_entering_a_parallel_state_starts_afresh() -> None:
    state = fan(
        "poll",
        go("poll", when="visits.poll < 2"),
        go("finished"),
        branches={"x": command("x", "seen")},
    )
    run = Run(workflow(state))
    result = run.succeed("first", branch="x")
    assert (result.item.state, result.item.visit) == ("poll", 2)
    assert result.item.context == {"seen": {}}
    assert result.item.branches == (BranchRun("x", RUNNING, 1),)
    assert commands(result) == [RunCommand("x", "poll", 2, 1, 300.0, branch="x")]
