"""What-if replay of the changes an operator makes: thresholds, branches, budgets, loops.

Each test runs real items through the runner on a store (the record), simulates a changed
copy of the workflow from that record, and checks the report against what the change must do.
Where the new path reaches a command that never ran, the item needs it: nothing is guessed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from statewise.actions import redrive
from statewise.actions.simulation import Selection, report_json, simulate
from statewise.definition import loads
from statewise.definition.model import Definition
from statewise.replay.report import Report
from statewise.store import open_store
from statewise.store.base import Task
from statewise.worker.runner import Runner

from .records import (
    CLAIMS_YAML,
    FAILING_ONCE,
    SCREENING_YAML,
    claim_items,
    claims,
    registry,
    run_for_real,
    screener,
    screening,
    screening_items,
)


def _simulate(url: str, changed: Definition, **selection: Any) -> tuple[Report, dict[str, Any]]:
    async def main() -> tuple[Report, dict[str, Any]]:
        store = open_store(url)
        try:
            report, advice = await simulate(store, changed, Selection(**selection), time.time())
            return report, report_json(report, advice)
        finally:
            await store.close()

    return asyncio.run(main())


def _record_screening(url: str) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    return asyncio.run(run_for_real(url, screening(), screening_items(), screener))


def _changed(text: str, old: str, new: str) -> Definition:
    assert old in text
    return screening(text.replace(old, new))


def test_a_higher_threshold_saves_reviews_and_names_the_overridden_ones(url: str) -> None:
    _record_screening(url)
    report, found = _simulate(url, _changed(SCREENING_YAML, ">= 0.5", ">= 0.7"))

    # Holds at 0.50-0.65 now clear on their own; 0.50 and 0.55 were overridden (approved).
    assert found["advice"] == [
        {
            "agent": "scorer",
            "reviews": 14,  # ten held orders, four of them twice (0.80+ asked a rescore first)
            "agreed": 8,
            "overridden": 2,
            "saved": 4,
            "overridden_saved": 2,
            "added": 0,
            "overridden_keys": ["order-10", "order-11"],
        }
    ]
    endings = {(e["state"], e["status"]): (e["before"], e["after"]) for e in found["endings"]}
    assert endings == {
        ("cleared", "done"): (12, 14),  # 0.00-0.45 clear, and 0.50, 0.55 approved by people
        ("cancelled", "done"): (8, 6),  # 0.60-0.95 rejected; 0.60 and 0.65 now clear
    }
    assert found["queues"] == [{"queue": "fraud", "before": 14, "after": 10}]
    changed = {c["key"]: c for c in found["changed"]}
    assert set(changed) == {"order-10", "order-11", "order-12", "order-13"}
    first = changed["order-12"]["first_difference"]
    assert first == {
        "step": 3,
        "since": "scoring",
        "before": "hold [scoring.risk >= 0.5: scoring.risk=0.6]",
        "after": "cleared [else, not scoring.risk >= 0.7: scoring.risk=0.6]",
        "text": "after scoring: was hold [scoring.risk >= 0.5: scoring.risk=0.6], "
        "now cleared [else, not scoring.risk >= 0.7: scoring.risk=0.6]",
    }
    assert found["cost"]["difference"] == 0 and found["needs"] == []
    assert report.cost_before.tokens == 24 * 1200  # twenty calls and four rescores


def test_a_lower_threshold_adds_reviews_that_wait_for_a_person(url: str) -> None:
    _record_screening(url)
    _, found = _simulate(url, _changed(SCREENING_YAML, ">= 0.5", ">= 0.4"))

    (advice,) = found["advice"]
    assert (advice["saved"], advice["added"]) == (0, 2)  # 0.40 and 0.45 now need a review
    endings = {(e["state"], e["status"]): (e["before"], e["after"]) for e in found["endings"]}
    assert endings[("hold", "waiting")] == (0, 2)
    assert found["needs"] == []  # a task nobody decided is a wait, not a need


def test_a_branch_that_never_ran_is_needed_and_never_guessed(url: str) -> None:
    _record_screening(url)
    text = SCREENING_YAML.replace(
        "branches: {credit: credit, identity: identity}",
        "branches: {credit: credit, identity: identity, sanctions: sanctions}",
    )
    assert text != SCREENING_YAML
    changed = loads(text, file="screening.yaml")
    report, found = _simulate(url, changed)

    assert len(found["needs"]) == 20
    assert {(n["state"], n["command"], n["branch"], n["visit"]) for n in found["needs"]} == {
        ("gather", "sanctions", "sanctions", 1)
    }
    assert "no result was ever recorded" in found["needs"][0]["message"]
    assert {i.after for i in report.items} == {("gather", "needs")}
    assert report.cost_after.tokens == 0  # the scorer is never reached, so never paid for


def test_a_join_on_any_branch_takes_the_first_recorded_result(url: str) -> None:
    before = _record_screening(url)
    report, found = _simulate(url, _changed(SCREENING_YAML, "join: all", "join: any"))

    assert found["needs"] == [] and found["changed"] == []
    assert {i.key: (*i.after, i.after_path) for i in report.items} == before


def test_a_stage_budget_sends_the_second_call_elsewhere(url: str) -> None:
    _record_screening(url)
    changed = _changed(
        SCREENING_YAML,
        "    on_exhausted: over_budget\n",
        "    on_exhausted: over_budget\n    budget: {tokens: 1200, on_exceeded: over_budget}\n",
    )
    report, found = _simulate(url, changed)

    # 0.80-0.95 asked a rescore: the second call is past the budget, so they go over_budget.
    rescored = {f"order-{i}" for i in range(16, 20)}
    assert {c["key"] for c in found["changed"]} == rescored
    assert {i.after for i in report.items if i.key in rescored} == {("over_budget", "done")}
    assert report.cost_before.tokens - report.cost_after.tokens == 4 * 1200
    assert found["needs"] == []


def test_a_budget_below_a_recorded_run_needs_that_run_again(url: str) -> None:
    _record_screening(url)
    changed = _changed(
        SCREENING_YAML,
        "    on_exhausted: over_budget\n",
        "    on_exhausted: over_budget\n    budget: {tokens: 1000, on_exceeded: over_budget}\n",
    )
    _, found = _simulate(url, changed)

    assert len(found["needs"]) == 20
    assert (
        "used 1200 tokens, more than the 1000 the new budget leaves" in found["needs"][0]["message"]
    )


def test_loop_rounds_are_matched_by_their_visit_of_the_state(url: str) -> None:
    items = claim_items(12)
    before = asyncio.run(run_for_real(url, claims(), items))

    # A decision state between two rounds: other states' visits move, check's ordinals do not.
    between = CLAIMS_YAML.replace(
        "      - to: check\n        when: check.round < rounds",
        "      - to: between\n        when: check.round < rounds",
    ).replace(
        "  assess:\n",
        "  between:\n    transitions:\n      - to: check\n  assess:\n",
    )
    report, found = _simulate(url, loads(between, file="claims.yaml", commands=registry.names()))
    assert found["needs"] == []
    assert {i.key: i.after for i in report.items} == {
        k: (s, st) for k, (s, st, _) in before.items()
    }
    assert all(
        tuple(s for s in i.after_path if s != "between") == i.before_path for i in report.items
    )
    assert any(i.difference is not None for i in report.items)  # the paths did change

    # Two rounds for every claim: three-round claims stop early, one-round claims need a second.
    two = CLAIMS_YAML.replace("when: check.round < rounds", "when: check.round < 2")
    report, found = _simulate(url, loads(two, file="claims.yaml", commands=registry.names()))
    needing = {n["key"] for n in found["needs"]}
    assert needing == {k for k, data in items if data["rounds"] == 1}
    assert {(n["state"], n["command"], n["visit"]) for n in found["needs"]} == {
        ("check", "tally", 2)
    }
    three = [i for i in report.items if dict(items)[i.key]["rounds"] == 3]
    assert three and all(i.after_path.count("check") == 2 for i in three)
    assert all(i.before_path.count("check") == 3 for i in three)


def test_a_review_still_open_in_the_record_is_neither_saved_nor_added(url: str) -> None:
    def busy(task: Task, context: dict[str, Any]) -> str | None:
        """Leaves the holds from 0.9 open, as a backed-up queue would."""
        return None if context["scoring"]["risk"] >= 0.9 else screener(task, context)

    asyncio.run(run_for_real(url, screening(), screening_items(), busy))
    report, found = _simulate(url, _changed(SCREENING_YAML, ">= 0.5", ">= 0.7"))

    (advice,) = found["advice"]
    assert (advice["saved"], advice["added"]) == (4, 0)
    waiting = [i for i in report.items if i.before == ("hold", "waiting")]
    assert len(waiting) == 2 and all(i.after == i.before for i in waiting)


def test_a_changed_agent_or_a_swapped_command_is_needed_not_reused(url: str) -> None:
    _record_screening(url)
    told = SCREENING_YAML.replace("from 0 to 1.", "from 0 to 1, strictly.")
    assert told != SCREENING_YAML
    report, found = _simulate(url, screening(told))
    assert {(n["state"], n["command"]) for n in found["needs"]} == {("scoring", "agent:scorer")}
    assert (
        len(found["needs"]) == 20 and "told or equipped differently" in found["needs"][0]["message"]
    )
    assert report.cost_after.tokens == 0

    # The same retry policy or a new threshold leaves the agent as it was: nothing is needed.
    _, found = _simulate(url, _changed(SCREENING_YAML, ">= 0.5", ">= 0.6"))
    assert found["needs"] == []

    swapped = _changed(SCREENING_YAML, "identity: identity}", "identity: credit}")
    _, found = _simulate(url, swapped)
    assert {(n["branch"], n["command"]) for n in found["needs"]} == {("identity", "credit")}
    assert "is 'identity''s, a command it no longer runs" in found["needs"][0]["message"]


def test_an_item_whose_command_is_still_running_waits_for_it_and_needs_nothing(url: str) -> None:
    async def started_only() -> None:
        store = open_store(url)
        try:
            definition = claims()
            await store.save_workflow(definition, "claims.yaml", [])
            await Runner(store, [definition], registry).start(definition, claim_items(3))
        finally:
            await store.close()

    asyncio.run(started_only())  # started, but no worker has run their first command yet
    report, found = _simulate(url, claims(60, version=2))
    assert {i.after for i in report.items} == {("check", "active")}
    assert [i.after for i in report.items] == [i.before for i in report.items]
    assert found["needs"] == [] and found["changed"] == []


def test_an_operators_redrive_of_a_failed_item_is_replayed_where_it_happened(url: str) -> None:
    items = claim_items(6)

    async def record() -> None:
        FAILING_ONCE.update({"claim-1", "claim-2"})
        before = await run_for_real(url, claims(), items)
        assert before["claim-1"][1] == "failed" and before["claim-2"][1] == "failed"
        store = open_store(url)
        try:
            runner = Runner(store, [claims()], registry)
            for key in ("claim-1", "claim-2"):
                await redrive(runner, "claims", key, reason="scorer back", actor="ops")
            await runner.run(max_wait=0)
        finally:
            await store.close()
        await run_for_real(url, claims(), [])  # the reviewer decides what the redrive sent on

    asyncio.run(record())
    report, found = _simulate(url, claims())
    assert found["needs"] == [] and found["changed"] == []
    redriven = [i for i in report.items if i.key in ("claim-1", "claim-2")]
    assert all(i.after[1] == "done" and i.after_path.count("assess") == 2 for i in redriven)


ORDERS_YAML = """
workflow: orders
version: 1
states:
  intake:
    kind: initial
    command: tally
    transitions:
      - to: awaiting
  awaiting:
    kind: waiting
    transitions:
      - on: pay
        when: event.data.amount >= 50
        to: paid
      - on: pay
        else: true
        to: short
      - on: cancel
        to: cancelled
  paid: {kind: final}
  short: {kind: final}
  cancelled: {kind: final}
"""
PAYMENTS = {"o-0": 10, "o-1": 30, "o-2": 45, "o-3": 60, "o-4": None}  # o-4 never pays


def test_recorded_events_are_delivered_again_to_a_state_that_takes_them(url: str) -> None:
    orders = loads(ORDERS_YAML, file="orders.yaml", commands=registry.names())

    async def record() -> None:
        store = open_store(url)
        try:
            runner = Runner(store, [orders], registry)
            await store.save_workflow(orders, "orders.yaml", [])
            await runner.start(orders, [(key, {}) for key in [*PAYMENTS, "o-5"]])
            await runner.run(max_wait=0)
            for key, amount in PAYMENTS.items():
                if amount is not None:
                    await runner.send("orders", key, "pay", {"amount": amount}, "shop")
            await runner.send("orders", "o-5", "cancel", {}, "customer")
        finally:
            await store.close()

    asyncio.run(record())
    lower = loads(ORDERS_YAML.replace(">= 50", ">= 25"), file="orders.yaml")
    report, found = _simulate(url, lower)

    after = {i.key: i.after for i in report.items}
    assert after == {
        "o-0": ("short", "done"),
        "o-1": ("paid", "done"),  # 30 and 45 are enough now
        "o-2": ("paid", "done"),
        "o-3": ("paid", "done"),
        "o-4": ("awaiting", "waiting"),  # nothing recorded to deliver: it waits, as it does
        "o-5": ("cancelled", "done"),
    }
    assert {c["key"] for c in found["changed"]} == {"o-1", "o-2"} and found["needs"] == []


def test_events_kept_early_are_replayed_as_what_their_senders_sent(url: str) -> None:
    """A payment sent while the order was still in intake was kept, then delivered in awaiting."""
    kept_yaml = ORDERS_YAML.replace(
        "states:\n", "events:\n  pay:\n    buffer: {ttl: 24h}\n  cancel: {}\nstates:\n", 1
    )
    orders = loads(kept_yaml, file="orders.yaml", commands=registry.names())

    async def record() -> None:
        store = open_store(url)
        try:
            runner = Runner(store, [orders], registry)
            await store.save_workflow(orders, "orders.yaml", [])
            await runner.start(orders, [("o-0", {}), ("o-1", {})])
            await runner.send("orders", "o-0", "pay", {"amount": 30}, "shop")  # still in intake
            await runner.send("orders", "o-1", "pay", {"amount": 10}, "shop")
            await runner.run(max_wait=0)
            kinds = [r.event_kind for r in await store.history("orders", "o-0")]
            assert "buffered" in kinds and "buffer_delivered" in kinds, kinds
        finally:
            await store.close()

    asyncio.run(record())
    report, found = _simulate(url, loads(kept_yaml.replace(">= 50", ">= 25"), file="orders.yaml"))

    after = {i.key: i.after for i in report.items}
    assert after == {"o-0": ("paid", "done"), "o-1": ("short", "done")}
    assert {c["key"] for c in found["changed"]} == {"o-0"} and found["needs"] == []
