"""The runner: starting items, driving them through commands, retries, parallel maps and timers.

Every scenario runs on a real SQLite file inside one ``asyncio.run`` (a runner belongs to the
event loop it was created in).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from statewise.contract import CommandContext, CommandRegistry
from statewise.definition.model import Definition
from statewise.engine import HistoryRecord, Item, ItemStatus, StepResult
from statewise.errors import InvalidEventError, NotFoundError, TransientError
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner, StartReport

from .workflows import (
    choose,
    cmd,
    deadline_flow,
    fan_map,
    flow,
    orelse,
    registry,
    review_flow,
    run,
    to,
)

T = TypeVar("T")
REVIEW = review_flow()


def drive(scenario: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await scenario()

    return asyncio.run(main())


def runner_for(store: SQLiteStore, *definitions: Definition, **options: Any) -> Runner:
    """A runner over ``definitions`` with the shared commands unless ``commands`` is given."""
    commands = options.pop("commands", registry)
    return Runner(store, definitions or (REVIEW,), commands, **options)


async def finish(
    runner: Runner, definition: Definition, *items: tuple[str, dict[str, Any]]
) -> None:
    """Start ``items`` and run until idle (retry backoffs are short: wait for them)."""
    await runner.start(definition, items)
    await runner.run(max_wait=1.0)


async def states(store: SQLiteStore, workflow: str | None = None) -> dict[str, str]:
    return {i.key: i.state for i in await store.list_items(workflow=workflow)}


def failing(times: int, error: Exception) -> tuple[CommandRegistry, Counter[str]]:
    """A registry whose command ``flaky`` raises ``error`` on its first ``times`` calls."""
    calls: Counter[str] = Counter()
    commands = CommandRegistry()

    @commands.command()
    def flaky(call: CommandContext) -> dict[str, int]:
        calls[call.key] += 1
        if calls[call.key] <= times:
            raise error
        return {"calls": calls[call.key]}

    return commands, calls


def events(rows: list[HistoryRecord]) -> list[tuple[str, str, int | None]]:
    return [(r.event, r.to_state, r.attempt) for r in rows]


# --- starting -------------------------------------------------------------------------------


def test_start_is_idempotent_per_business_key(store: SQLiteStore) -> None:
    committed: list[StepResult] = []
    runner = runner_for(store, batch_size=2, on_commit=committed.extend)

    async def scenario() -> tuple[StartReport, StartReport]:
        first = await runner.start(REVIEW, [("a", {"score": 80}), ("b", {"score": 10})])
        again = [("a", {"score": 1}), ("b", {}), ("c", {"score": 60})]
        return first, await runner.start(REVIEW, again)

    assert drive(scenario) == (StartReport(created=2, existing=0), StartReport(1, 2))
    assert [r.item.key for r in committed] == ["a", "b", "c"]
    assert drive(lambda: store.get_item("review", "a")).context == {"score": 80}
    assert len(drive(lambda: store.history(None, "a"))) == 1
    assert drive(store.pending_commands) == 3


# --- running, waiting, sending --------------------------------------------------------------


def test_run_stops_at_waiting_states_and_send_resumes_the_item(store: SQLiteStore) -> None:
    runner = runner_for(store)

    async def scenario() -> tuple[dict[str, str], Item, dict[str, str]]:
        await finish(runner, REVIEW, ("high", {"score": 80}), ("low", {"score": 10}))
        paused = await states(store)
        sent = await runner.send(None, "high", "approve", {"by": "alice"}, actor="alice")
        await runner.run(max_wait=0.0)
        return paused, sent, await states(store)

    paused, sent, after = drive(scenario)

    assert paused == {"high": "review", "low": "rejected"}
    assert (sent.state, sent.status) == ("publish", ItemStatus.ACTIVE)
    assert after == {"high": "published", "low": "rejected"}
    item = drive(lambda: store.get_item(None, "high"))
    assert item.status is ItemStatus.DONE
    assert item.context == {
        "score": 80,
        "fetch": {"score": 80},
        "approve": {"by": "alice"},
        "publish": {"approved_by": "alice"},
    }
    assert drive(store.pending_commands) == 0


def test_an_event_the_item_cannot_take_raises_and_changes_nothing(store: SQLiteStore) -> None:
    runner = runner_for(store)

    async def scenario() -> tuple[Item, list[HistoryRecord]]:
        await finish(runner, REVIEW, ("a", {"score": 80}), ("done", {"score": 1}))
        before = await store.get_item(None, "a"), await store.history(None, "a")
        with pytest.raises(
            InvalidEventError,
            match=r"state 'review', which does not accept event 'ship' "
            r"\(it accepts: approve, reject\)",
        ):
            await runner.send("review", "a", "ship", {}, actor="bob")
        with pytest.raises(InvalidEventError, match="is finished"):
            await runner.send(None, "done", "approve", {}, actor="bob")
        with pytest.raises(NotFoundError, match="no item with key 'nope'"):
            await runner.send(None, "nope", "approve", {}, actor="bob")
        return before

    item, history = drive(scenario)

    assert drive(lambda: store.get_item(None, "a")) == item
    assert drive(lambda: store.history(None, "a")) == history


def test_the_audit_trail_is_contiguous_and_says_why_each_move_happened(
    store: SQLiteStore,
) -> None:
    runner = runner_for(store)

    async def scenario() -> list[HistoryRecord]:
        await finish(runner, REVIEW, ("a", {"score": 80}))
        await runner.send(None, "a", "approve", {"by": "alice"}, actor="alice")
        await runner.run(max_wait=0.0)
        return await store.history("review", "a")

    rows = drive(scenario)

    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert [(r.from_state, r.to_state, r.event, r.event_kind) for r in rows] == [
        (None, "fetch", "start", "start"),
        ("fetch", "route", "done", "command"),
        ("route", "review", "done", "automatic"),
        ("review", "publish", "approve", "external"),
        ("publish", "published", "done", "command"),
    ]
    fetched, routed, approved = rows[1], rows[2], rows[3]
    assert (fetched.command, fetched.attempt, fetched.error) == ("fetch", 1, None)
    assert fetched.duration is not None and 0 < fetched.duration < 1
    assert (routed.condition, routed.values, routed.transition) == (
        "fetch.score > 50",
        {"fetch.score": 80},
        0,
    )
    assert (approved.actor, rows[0].actor) == ("alice", "system")
    assert all(a.at <= b.at for a, b in itertools.pairwise(rows))


# --- retries and failures -------------------------------------------------------------------


def test_a_flaky_command_is_retried_after_its_backoff_until_it_succeeds(store: SQLiteStore) -> None:
    commands, calls = failing(2, TransientError("busy"))
    definition = flow("retrying", run("call", cmd("flaky"), to("ok"), to("gave_up", on="error")))

    drive(lambda: finish(runner_for(store, definition, commands=commands), definition, ("a", {})))

    rows = drive(lambda: store.history(None, "a"))
    assert calls["a"] == 3
    assert events(rows) == [
        ("start", "call", None),
        ("failed", "call", 1),
        ("retry", "call", 2),
        ("failed", "call", 2),
        ("retry", "call", 3),
        ("done", "ok", 3),
    ]
    assert rows[1].error == {"kind": "transient", "message": "busy"}
    assert rows[1].note == "attempt 1 failed; retry in 0.01s"
    # the retried attempt runs as soon as its timer fires, not at the next poll of the outbox
    assert rows[3].at - rows[2].at < 0.25
    assert rows[5].at - rows[4].at < 0.25
    assert drive(lambda: store.get_item(None, "a")).context == {"flaky": {"calls": 3}}


@pytest.mark.parametrize(
    ("on_error", "final", "note"),
    [
        ((to("gave_up", "error.kind == 'transient'", on="error"),), "gave_up", None),
        ((), "escalated", "unhandled error; escalated to 'escalated'"),
    ],
)
def test_after_the_last_attempt_the_error_is_routed_or_escalated(
    store: SQLiteStore, on_error: tuple[Any, ...], final: str, note: str | None
) -> None:
    commands, calls = failing(99, ConnectionError("refused"))
    definition = flow("retrying", run("call", cmd("flaky"), to("ok"), *on_error))

    drive(lambda: finish(runner_for(store, definition, commands=commands), definition, ("a", {})))

    last = drive(lambda: store.history(None, "a"))[-1]
    assert calls["a"] == 3
    assert (last.event, last.to_state, last.attempt, last.note) == ("error", final, 3, note)
    assert last.error == {"kind": "transient", "message": "refused"}


def _crash(call: object) -> None:
    # Its own words: the interpreter's wording of its built-in errors changes between versions.
    raise ZeroDivisionError("the test divides by zero")


def test_failures_become_recorded_error_events_and_the_runner_carries_on(
    store: SQLiteStore,
) -> None:
    commands = CommandRegistry()
    commands.register("crash", _crash)
    commands.register("odd", lambda call: {"tags": {"a", "b"}})
    commands.register("fine", lambda call: {"ok": True})
    definitions = [
        flow("raises", run("work", cmd("crash"), to("done"))),
        flow("not_json", run("work", cmd("odd", attempts=2), to("done"))),
        flow(
            "missing_key",
            run("work", cmd("fine"), to("route")),
            choose("route", to("high", "missing.value > 1"), orelse("low")),
        ),
        flow("healthy", run("work", cmd("fine"), to("done"))),
    ]
    runner = runner_for(store, *definitions, commands=commands)

    async def scenario() -> None:
        for definition in definitions:
            await runner.start(definition, [(definition.name, {})])
        await runner.run(max_wait=1.0)

    drive(scenario)

    errors = {d.name: drive(lambda d=d: store.history(d.name, d.name))[-1] for d in definitions}
    assert drive(lambda: states(store)) == {  # defects: each failed where it stood
        "raises": "work",
        "not_json": "work",
        "missing_key": "route",
        "healthy": "done",
    }
    for name in ("raises", "not_json", "missing_key"):
        assert drive(lambda name=name: store.get_item(name, name)).status is ItemStatus.FAILED
    assert errors["raises"].error == {
        "kind": "command_error",
        "message": "ZeroDivisionError: the test divides by zero",
    }
    assert errors["not_json"].error is not None
    assert errors["not_json"].error["kind"] == "invalid_output"
    assert "not JSON" in errors["not_json"].error["message"]
    assert errors["not_json"].attempt == 2
    assert errors["missing_key"].error is not None
    assert errors["missing_key"].error["kind"] == "condition"
    assert "condition `missing.value > 1`" in errors["missing_key"].error["message"]
    assert errors["healthy"].error is None


# --- parallel states ------------------------------------------------------------------------


def test_a_parallel_map_never_runs_more_branches_of_one_item_than_its_limit(
    store: SQLiteStore,
) -> None:
    running: Counter[str] = Counter()
    peaks: Counter[str] = Counter()
    commands = CommandRegistry()

    @commands.command()
    async def translate(call: CommandContext) -> str:
        running[call.key] += 1
        running["all"] += 1
        peaks[call.key] = max(peaks[call.key], running[call.key])
        peaks["all"] = max(peaks["all"], running["all"])
        await asyncio.sleep(0.02)
        running[call.key] -= 1
        running["all"] -= 1
        return f"{call.input}!"

    definition = flow("translate", fan_map("translate", "langs", cmd("translate"), 2, to("done")))
    langs = ["de", "fr", "es", "it", "nl", "pl"]
    runner = runner_for(store, definition, commands=commands, concurrency=3)

    drive(lambda: finish(runner, definition, ("a", {"langs": langs}), ("b", {"langs": langs})))

    assert max(peaks["a"], peaks["b"]) == 2, "each item may run at most its limit of 2"
    assert peaks["all"] == 3, "the runner fills all 3 slots across items"
    item = drive(lambda: store.get_item(None, "a"))
    assert item.state == "done"
    assert item.context["translate"] == {lang: f"{lang}!" for lang in langs}
    rows = drive(lambda: store.history(None, "a"))
    assert sorted(r.branch for r in rows if r.event == "branch_done") == sorted(langs)


# --- timers ---------------------------------------------------------------------------------


def test_an_after_transition_fires_once_its_deadline_passes(store: SQLiteStore) -> None:
    definition = deadline_flow(0.2)
    runner = runner_for(store, definition)

    async def scenario() -> tuple[dict[str, str], float]:
        await runner.start(definition, [("late", {}), ("quick", {})])
        await runner.send(None, "quick", "answer", {}, actor="bob")
        began = time.monotonic()
        await runner.run(max_wait=0.05)  # the deadline is further off: run returns at once
        early = await states(store)
        await runner.run(max_wait=2.0)
        return early, time.monotonic() - began

    early, took = drive(scenario)

    assert early == {"late": "waiting", "quick": "answered"}
    assert drive(lambda: states(store)) == {"late": "expired", "quick": "answered"}
    assert 0.15 < took < 1.5
    timed_out = drive(lambda: store.history(None, "late"))
    assert events(timed_out) == [("start", "waiting", None), ("timeout", "expired", None)]
    assert timed_out[-1].event_kind == "timer"
    assert drive(store.next_timer_due) is None


def test_a_long_lived_runner_picks_up_items_started_while_it_runs(store: SQLiteStore) -> None:
    runner = runner_for(store)

    async def scenario() -> dict[str, str]:
        stop = asyncio.Event()
        worker = asyncio.create_task(runner.run(stop=stop))
        await runner.start(REVIEW, [("a", {"score": 90})])
        for _ in range(100):
            await asyncio.sleep(0.02)
            if (await store.get_item(None, "a")).state == "review":
                break
        stop.set()
        await worker
        return await states(store)

    assert drive(scenario) == {"a": "review"}


def test_a_state_limit_caps_its_commands_below_the_runners_concurrency(store: SQLiteStore) -> None:
    from statewise.worker.limits import ConcurrencyLimits

    running = 0
    most = 0
    commands = CommandRegistry()

    @commands.command()
    async def translate(call: CommandContext) -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1
        return f"{call.input}!"

    definition = flow(
        "limited", fan_map("translate", "languages", cmd("translate", "texts"), 10, to("done"))
    )
    items = [(f"doc-{n}", {"languages": ["de", "fr", "it", "es", "nl"]}) for n in range(6)]

    async def scenario() -> None:
        limits = ConcurrencyLimits(states={"translate": 3})
        runner = runner_for(store, definition, commands=commands, limits=limits, concurrency=30)
        await finish(runner, definition, *items)

    drive(scenario)
    assert most == 3
    assert set(drive(lambda: states(store, "limited")).values()) == {"done"}
