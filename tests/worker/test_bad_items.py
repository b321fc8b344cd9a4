"""One bad item stays one bad item: each of these once crashed the runner on every restart.

Each scenario puts a broken item beside healthy ones on a real SQLite file. The broken item
ends ``failed`` (quarantined) with the reason in its audit trail, or takes its declared error
path; every healthy item still finishes; and the invariant holds afterwards.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from statewise.contract import CommandContext, CommandRegistry
from statewise.definition.model import Definition, RetryPolicy
from statewise.engine import ItemStatus, StepResult, start
from statewise.errors import InvalidInputError
from statewise.store.base import StepCommit
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner

from .workflows import choose, cmd, flow, registry, review_flow, run, to

HEALTHY = [(f"ok-{n}", {"score": 90}) for n in range(5)]


def drive(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def assert_invariant(store: SQLiteStore) -> None:
    assert await store.stuck_items() == []


def healthy_flow() -> Definition:
    return flow("healthy", run("fetch", "fetch", to("done")))


def test_an_item_of_a_version_nobody_holds_is_quarantined_and_the_others_go_on(
    store: SQLiteStore,
) -> None:
    current = healthy_flow()
    unknown = replace(current, version=99)

    async def scenario() -> None:
        await store.save_workflow(current, "healthy.yaml", [])
        started = start(unknown, "ghost", {"score": 1}, 1.0)
        await store.commit([StepCommit(started, None)])
        runner = Runner(store, [current], registry)
        await runner.start(current, HEALTHY)
        await runner.run(max_wait=0.5)
        await assert_invariant(store)

    drive(scenario())
    ghost = drive(store.get_item("healthy", "ghost"))
    assert ghost.status is ItemStatus.FAILED
    last = drive(store.history("healthy", "ghost"))[-1]
    assert last.event == "quarantined"
    assert last.error is not None and last.error["kind"] == "unknown_version"
    assert "healthy@99 is not stored" in last.error["message"]
    assert drive(store.pending_commands()) == 0
    states = {i.key: i.state for i in drive(store.list_items(workflow="healthy"))}
    assert all(states[key] == "done" for key, _ in HEALTHY)


def test_work_of_a_stored_version_this_runner_lacks_is_left_for_a_worker_that_has_it(
    store: SQLiteStore,
) -> None:
    v1 = healthy_flow()
    v2 = replace(v1, version=2, source="workflow: healthy\nversion: 2\n")

    async def scenario() -> None:
        await store.save_workflow(v2, "healthy-v2.yaml", [])
        await Runner(store, [v2], registry).start(v2, [("later", {"score": 5})])
        await Runner(store, [v1], registry).run(max_wait=0.2)  # holds v1 only

    drive(scenario())
    later = drive(store.get_item("healthy", "later"))
    assert (later.status, later.state) == (ItemStatus.ACTIVE, "fetch")
    assert drive(store.pending_commands()) == 1  # still queued, untouched
    drive(Runner(store, [v2], registry).run(max_wait=0.2))
    assert drive(store.get_item("healthy", "later")).state == "done"


def test_a_retry_budget_long_enough_to_overflow_the_backoff_still_ends(
    store: SQLiteStore,
) -> None:
    # multiplier ** (attempt - 1) leaves the float range from the third attempt on, as x10 does
    # past attempt 300; each retry waits for the runner's timer poll, so few attempts keep it quick
    endless = RetryPolicy(attempts=6, backoff=1e-4, multiplier=1e300, max_backoff=1e-3, jitter=0.0)
    commands = CommandRegistry()

    @commands.command()
    async def always_busy(call: CommandContext) -> None:
        raise ConnectionError("busy")

    definition = flow("stubborn", run("call", cmd("always_busy", **vars_of(endless)), to("done")))

    async def scenario() -> None:
        runner = Runner(store, [definition], commands)
        await runner.start(definition, [("item", {})])
        await runner.run(max_wait=1.0)
        await assert_invariant(store)

    drive(scenario())
    item = drive(store.get_item("stubborn", "item"))
    assert (item.state, item.status) == ("escalated", ItemStatus.DONE)
    rows = drive(store.history("stubborn", "item"))
    assert max(r.attempt or 0 for r in rows) == endless.attempts


def vars_of(policy: RetryPolicy) -> dict[str, Any]:
    return {
        name: getattr(policy, name)
        for name in ("attempts", "backoff", "multiplier", "max_backoff", "jitter")
    }


def test_an_escalation_state_that_loops_fails_its_item_alone(store: SQLiteStore) -> None:
    looping = flow(
        "looping",
        run("fetch", "fetch", to("a")),
        choose("a", to("b")),
        choose("b", to("a")),
        choose("escalated", to("a")),
    )
    healthy = review_flow()

    async def scenario() -> None:
        runner = Runner(store, [looping, healthy], registry)
        await runner.start(looping, [("loop", {"score": 1})])
        await runner.start(healthy, [("fine", {"score": 10})])
        await runner.run(max_wait=0.5)
        await assert_invariant(store)

    drive(scenario())
    loop = drive(store.get_item("looping", "loop"))
    assert loop.status is ItemStatus.FAILED
    last = drive(store.history("looping", "loop"))[-1]
    assert last.error is not None and "leads back into a loop" in last.error["message"]
    assert drive(store.get_item("review", "fine")).state == "rejected"


def test_an_item_that_loops_from_its_very_first_step_is_created_failed(
    store: SQLiteStore,
) -> None:
    looping = flow(
        "instant", choose("a", to("b")), choose("b", to("a")), choose("escalated", to("a"))
    )

    async def scenario() -> None:
        report = await Runner(store, [looping], registry).start(looping, [("loop", {"why": 1})])
        assert report.created == 1

    drive(scenario())
    item = drive(store.get_item("instant", "loop"))
    assert item.status is ItemStatus.FAILED and item.context == {"why": 1}


def test_start_data_that_cannot_be_stored_is_refused_before_anything_starts(
    store: SQLiteStore,
) -> None:
    """A start call is checked whole: a bad item is named, and no item of the call starts."""
    definition = healthy_flow()
    runner = Runner(store, [definition], registry)
    with pytest.raises(InvalidInputError, match="item 'bad'"):
        drive(runner.start(definition, [("bad", {"score": {1, 2}}), *HEALTHY]))
    assert drive(store.list_items()) == []
    report = drive(runner.start(definition, HEALTHY))
    assert report.created == len(HEALTHY)
    assert len(drive(store.list_items())) == len(HEALTHY)


def test_a_state_the_definition_lacks_fails_the_item_not_the_runner(store: SQLiteStore) -> None:
    definition = healthy_flow()

    async def scenario() -> None:
        runner = Runner(store, [definition], registry)
        await runner.start(definition, HEALTHY)
        # an item row that names a state its definition does not have (a hand-edited row)
        odd: StepResult = start(definition, "odd", {"score": 1}, 1.0)
        renamed = replace(odd, item=replace(odd.item, state="vanished", visits={"vanished": 1}))
        moved = replace(renamed, effects=tuple(replace(e, state="vanished") for e in odd.effects))
        await store.commit([StepCommit(moved, None)])
        await runner.run(max_wait=0.5)
        await assert_invariant(store)

    drive(scenario())
    assert drive(store.get_item("healthy", "odd")).status is ItemStatus.FAILED
    last = drive(store.history("healthy", "odd"))[-1]
    assert last.error is not None and "vanished" in last.error["message"]
    assert {i.state for i in drive(store.list_items()) if i.key.startswith("ok-")} == {"done"}
