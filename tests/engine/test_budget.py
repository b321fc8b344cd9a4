"""Budgets per item in the pure step: spend is charged from usage, checked before agent calls."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from statewise.definition.model import Budget, ErrorKind, agent_command
from statewise.engine import CommandFailed, CommandSucceeded, Operate, Operation, RunCommand
from statewise.engine.budget import BUDGET_EVENT, Spend, budget_use

from .helpers import ESCALATED, Run, command, decide, fan, go, otherwise, task, wait, workflow

WRITER = command(agent_command("writer"), result="draft")
CHECKER = command(agent_command("checker"), result="check")


def usage(tokens: int, cost: float | None = 0.001, model: str = "openai:gpt-4o-mini") -> Any:
    """An agent run's usage record, as ``statewise.ai.usage.usage_record`` writes it."""
    return {"model": model, "input_tokens": tokens - 20, "output_tokens": 20, "cost": cost}


def spend(run: Run, tokens: int, cost: float | None = 0.001, result: Any = None, **kw: Any) -> None:
    """The command the item waits for succeeded, having used ``tokens`` and ``cost``."""
    item = run.item
    run.deliver(
        CommandSucceeded(
            item.state, item.visit, item.attempt, result or {}, usage=usage(tokens, cost, **kw)
        )
    )


def commands(run: Run) -> list[RunCommand]:
    return [e for e in run.last.effects if isinstance(e, RunCommand)]


def two_agents(**budget: Any) -> Run:
    """Two agent states in a row, then done, under a workflow budget; people wait in review."""
    definition = workflow(
        task("write", WRITER, go("check")),
        task("check", CHECKER, go("done")),
        wait("review", go("done", on="approve")),
    )
    return Run(replace(definition, budget=Budget(**budget)))


def test_a_spent_workflow_budget_routes_before_the_next_agent_call() -> None:
    run = two_agents(tokens=100)
    assert commands(run)[0].tokens_left == 100  # the first call is told what it may use
    spend(run, 120)

    assert run.item.state == ESCALATED  # the default on_exceeded
    assert commands(run) == []  # the checker never ran
    row = run.rows[-1]
    assert (row.from_state, row.to_state, row.event) == ("check", ESCALATED, BUDGET_EVENT)
    assert row.budget == {
        "scope": "workflow", "state": "check", "measure": "tokens", "spent": 120, "limit": 100
    }  # fmt: skip
    assert "120 tokens of 100 tokens" in (row.note or "")
    assert run.item.spent.of("write") == Spend(120, 0.001)
    assert run.item.spent.total.tokens == 120


def test_a_cost_budget_counts_priced_calls_and_an_unpriced_model_only_its_tokens() -> None:
    run = two_agents(cost=0.01, tokens=1000, on_exceeded="done")
    spend(run, 120, cost=None, model="openai:house-model")  # no known price
    assert run.item.state == "check"  # the cost limit does not see it
    assert commands(run)[0].tokens_left == 880  # the token limit does
    [use] = [u for u in budget_use(run.definition, run.item.spent) if u.state is None]
    assert use.warning is not None and "openai:house-model has no known price" in use.warning

    spend(run, 100, cost=0.02)
    assert run.item.state == "done"  # nothing ran after; the cost was 0.02 of 0.01


def test_a_stage_budget_counts_every_visit_and_a_plain_command_is_never_refused() -> None:
    definition = workflow(
        task(
            "write",
            WRITER,
            go("write", when="draft.again"),
            otherwise("publish"),
            max_visits=5,
            budget=Budget(tokens=240, on_exceeded="editor"),
        ),
        wait("editor", go("publish", on="approve")),
        task("publish", "publish", go("done")),
    )
    run = Run(replace(definition, budget=Budget(tokens=240)))
    spend(run, 120, result={"again": True})
    assert commands(run)[0].tokens_left == 120
    spend(run, 120, result={"again": True})

    assert run.item.state == "editor"  # the stage's own target, checked before the workflow's
    assert run.rows[-1].budget == {
        "scope": "state", "state": "write", "measure": "tokens", "spent": 240, "limit": 240
    }  # fmt: skip
    run.send("approve")  # the workflow budget is spent too, but publish runs no agent
    assert run.item.state == "publish" and commands(run)[0].tokens_left is None


def test_a_run_cut_short_goes_to_on_exceeded_without_a_retry() -> None:
    run = two_agents(tokens=100, on_exceeded="review")
    item = run.item
    run.deliver(
        CommandFailed(
            item.state, item.visit, 1, ErrorKind.BUDGET, "stopped at 100 tokens", usage=usage(130)
        )
    )

    assert run.item.state == "review" and commands(run) == []
    row = run.rows[-1]
    assert row.event == BUDGET_EVENT and row.error == {
        "kind": "budget", "message": "stopped at 100 tokens"
    }  # fmt: skip
    assert row.budget is not None and row.budget["spent"] == 130
    assert (row.note or "").startswith("the run was cut short: workflow tokens budget spent")
    assert run.item.spent.total.tokens == 130


def test_parallel_branches_each_start_within_the_budget_and_a_late_result_is_charged() -> None:
    definition = workflow(
        fan("translate", go("done"), branches={"fr": WRITER, "de": WRITER}, concurrency=1),
        wait("review", go("done", on="approve")),
    )
    run = Run(replace(definition, budget=Budget(tokens=100, on_exceeded="review")))
    [first] = commands(run)
    assert first.branch == "fr" and first.tokens_left == 100
    spend_branch = CommandSucceeded("translate", 1, 1, {}, branch="fr", usage=usage(150))
    run.deliver(spend_branch)
    assert run.item.state == "review"  # the second branch was refused at its launch
    assert run.rows[-1].budget is not None

    run.deliver(replace(spend_branch, branch="de"))  # a result nobody waits for any more
    assert run.rows[-1].event == "result_ignored"
    assert run.item.spent.of("translate").tokens == 300  # still charged to its state


@pytest.mark.parametrize("operation", [Operation.MOVE, Operation.RETRY])
def test_an_operator_sending_a_spent_item_back_to_an_agent_is_routed_again(
    operation: Operation,
) -> None:
    run = two_agents(tokens=100)
    spend(run, 120)
    run.deliver(Operate(operation, "try again", "ops", "write"))
    assert run.item.state == ESCALATED and run.rows[-1].event == BUDGET_EVENT


def test_decision_states_and_plain_commands_spend_nothing() -> None:
    run = Run(workflow(decide("route", go("work")), task("work", "work", go("done"))))
    run.succeed({"x": 1})
    assert run.item.state == "done" and not run.item.spent
