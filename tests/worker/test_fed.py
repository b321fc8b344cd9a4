"""The runner fed while it runs: items admitted through ``Runner.start`` as others finish.

That is how a service feeds its in-process runner. Each scenario runs on a real SQLite file
inside one ``asyncio.run``; the commands are real async commands, driven by events the test
sets, so every interleaving below is forced, not hoped for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from statewise.contract import CommandContext, CommandRegistry
from statewise.definition.model import Definition
from statewise.engine import ItemStatus, StepResult
from statewise.engine.events import Operate, Operation
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner, StartReport
from statewise.worker import runner as runner_module
from statewise.worker.writer import ItemWriter

from .workflows import cmd, fan_map, flow, registry, stages_flow, stages_items, to


async def _until(
    condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 10.0
) -> None:
    """Wait for ``condition()`` to hold; fail naming ``what`` if it never does."""
    try:
        async with asyncio.timeout(seconds):
            while not await condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"never happened within {seconds} s: {what}") from None


def test_a_command_still_winding_down_keeps_its_work_row_id_to_itself(
    store: SQLiteStore,
) -> None:
    """A cancelled command may take a while to stop; no other command may get its id.

    The crash of fed runs (``KeyError`` in ``_cancel_superseded``): SQLite handed out the id
    of a deleted outbox row again, so a newly started item's command got the id of a command
    still running. When the old one ended, its bookkeeping removal took the new command's
    entries with it, and the new item's next commit found its running command gone. Here an
    operator cancels item ``a`` (its work row is deleted) while its command winds down, and
    item ``b`` is admitted meanwhile, as a service feeding its runner does.
    """
    began: dict[str, asyncio.Event] = {}
    release: dict[str, asyncio.Event] = {}
    commands = CommandRegistry()

    @commands.command()
    async def branch(call: CommandContext) -> str:
        name = str(call.input)
        began[name].set()
        try:
            await release[name].wait()
        except asyncio.CancelledError:
            await release[name].wait()  # winding down: the cancellation arrived mid-call
            raise
        return name

    definition = flow("race", fan_map("fan", "parts", cmd("branch"), 2, to("done")))
    began.update({name: asyncio.Event() for name in ("slow", "p", "q")})
    release.update({name: asyncio.Event() for name in ("slow", "p", "q")})

    async def scenario() -> dict[str, str]:
        runner = Runner(store, [definition], commands, concurrency=8)
        stop = asyncio.Event()
        worker = asyncio.create_task(runner.run(stop=stop))
        await runner.start(definition, [("a", {"parts": ["slow"]})])
        await _until(began["slow"].wait, "a's command began")
        cancel = Operate(Operation.CANCEL, "not needed", "operator")
        await runner.apply("race", "a", cancel, "cancel")
        await runner.start(definition, [("b", {"parts": ["p", "q"]})])
        await _until(began["p"].wait, "b's first branch began")
        await _until(began["q"].wait, "b's second branch began")
        for name in ("slow", "q", "p"):  # a's command stops, then b's commit for q, then p
            release[name].set()
            await asyncio.sleep(0.05)

        async def b_done() -> bool:
            return worker.done() or (await store.get_item("race", "b")).state == "done"

        await _until(b_done, "item b finished")
        stop.set()
        await worker
        assert await store.stuck_items() == []
        return {i.key: i.status.value for i in await store.list_items()}

    assert asyncio.run(scenario()) == {"a": "cancelled", "b": "done"}


async def _feed(
    store: SQLiteStore,
    definition: Definition,
    items: list[tuple[str, dict[str, Any]]],
    *,
    window: int,
    concurrency: int,
) -> dict[str, str]:
    """Run ``items`` with at most ``window`` admitted at a time; the items' states at the end.

    The first ``window`` are started up front; each time one finishes, the next is admitted
    through ``Runner.start`` while the runner runs, as a service feeding it does.
    """
    finished: asyncio.Queue[str] = asyncio.Queue()

    def on_commit(results: Sequence[StepResult]) -> None:
        for result in results:
            if result.item.status is ItemStatus.DONE:
                finished.put_nowait(result.item.key)

    runner = Runner(store, [definition], registry, concurrency=concurrency, on_commit=on_commit)
    await runner.start(definition, items[:window])
    stop = asyncio.Event()
    worker = asyncio.create_task(runner.run(stop=stop))
    for item in items[window:]:
        await finished.get()
        await runner.start(definition, [item])
    for _ in range(window):
        await finished.get()
    stop.set()
    await worker
    assert await store.stuck_items() == []
    return {i.key: i.state for i in await store.list_items(limit=len(items))}


@pytest.mark.parametrize(
    ("definition", "window", "concurrency"),
    [
        pytest.param(stages_flow(), 8, 32, id="stages-with-room-for-each-start"),
        pytest.param(
            flow("wide", fan_map("fan", "parts", cmd("work"), 3, to("done"))),
            1,
            2,
            id="one-at-a-time-each-start-wider-than-the-slots",
        ),
    ],
)
def test_items_admitted_while_the_runner_runs_start_without_waiting_for_the_outbox_poll(
    store: SQLiteStore,
    monkeypatch: pytest.MonkeyPatch,
    definition: Definition,
    window: int,
    concurrency: int,
) -> None:
    """With the outbox poll a minute apart, a fed run still finishes in seconds.

    A start by another task of the runner's process queues work the runner must take up at
    once: no poll interval stands between an admitted item and its first command, whether
    the start's commands fit in the free slots or wait in the outbox for one. (Before, each
    admission waited for the next poll: this run hung for a minute per item.)
    """
    monkeypatch.setattr(runner_module, "_OUTBOX_POLL", 60.0)
    items = stages_items(60)

    async def scenario() -> dict[str, str]:
        async with asyncio.timeout(20.0):
            return await _feed(store, definition, items, window=window, concurrency=concurrency)

    assert asyncio.run(scenario()) == {key: "done" for key, _ in items}


def test_starts_racing_a_running_then_stopping_runner_are_each_committed_once(
    store: SQLiteStore, db_path: Path
) -> None:
    """Concurrent starts, some of the same keys, from the runner's process and from a second
    writer, while the runner runs and while it stops: every item is created once, each
    caller hears what became of its start, and a later runner finishes them all."""
    definition = stages_flow()
    items = stages_items(40)
    other = SQLiteStore(db_path)

    async def scenario() -> tuple[list[StartReport], dict[str, str]]:
        runner = Runner(store, [definition], registry, concurrency=8)
        stop = asyncio.Event()
        worker = asyncio.create_task(runner.run(stop=stop))

        async def admit(n: int) -> StartReport:  # one caller per request, each key twice
            await asyncio.sleep(0.002 * n)
            return await runner.start(definition, [items[n % 30]])

        starts = [asyncio.create_task(admit(n)) for n in range(60)]
        elsewhere = ItemWriter(other, [definition])
        await elsewhere.start(definition, items[30:])  # a second writer, another connection
        await asyncio.sleep(0.06)
        stop.set()  # the runner stops while the starts go on
        reports = await asyncio.gather(*starts)
        await worker
        await Runner(store, [definition], registry, concurrency=8).run(max_wait=1.0)
        assert await store.stuck_items() == []
        return reports, {i.key: i.state for i in await store.list_items(limit=100)}

    try:
        reports, states = asyncio.run(scenario())
    finally:
        asyncio.run(other.close())
    assert sum(r.created for r in reports) == 30
    assert sum(r.existing for r in reports) == 30
    assert states == {key: "done" for key, _ in items}


def test_items_started_in_on_ready_run_before_the_loop_takes_starts_along(
    store: SQLiteStore,
) -> None:
    """``statewise run`` starts its items in ``on_ready``, before the loop commits any starts."""
    definition = stages_flow()
    items = stages_items(5)

    async def scenario() -> dict[str, str]:
        runner = Runner(store, [definition], registry)

        async def start() -> None:
            await runner.start(definition, items)

        async with asyncio.timeout(20.0):
            await runner.run(max_wait=1.0, on_ready=start)
        assert await store.stuck_items() == []
        return {i.key: i.state for i in await store.list_items()}

    assert asyncio.run(scenario()) == {key: "done" for key, _ in items}


def test_a_command_whose_lease_lapsed_while_it_ran_is_not_started_again_here(
    store: SQLiteStore,
) -> None:
    """After a clock jump (a host resumed from sleep), the runner may claim its own running
    commands' rows again, their leases lapsed; it must not run them a second time."""
    runs: list[str] = []
    release = asyncio.Event()
    commands = CommandRegistry()

    @commands.command()
    async def work(call: CommandContext) -> str:
        runs.append(call.key)
        await release.wait()
        return "ok"

    definition = flow("lapse", fan_map("fan", "parts", cmd("work"), 1, to("done")))
    now = [1_000_000.0]

    async def scenario() -> dict[str, str]:
        runner = Runner(store, [definition], commands, clock=lambda: now[0])
        await runner.start(definition, [("a", {"parts": ["x"]})])
        stop = asyncio.Event()
        worker = asyncio.create_task(runner.run(stop=stop))

        async def began() -> bool:
            return bool(runs)

        await _until(began, "the command began")
        now[0] += 3600.0  # every lease has lapsed; the outbox poll is due
        started = list(runs)
        await asyncio.sleep(1.0)  # two outbox polls: a claim would take the lapsed row now
        release.set()

        async def done() -> bool:
            return worker.done() or (await store.get_item("lapse", "a")).state == "done"

        await _until(done, "item a finished")
        stop.set()
        await worker
        assert runs == started == ["a"]
        assert await store.stuck_items() == []
        return {i.key: i.state for i in await store.list_items()}

    assert asyncio.run(scenario()) == {"a": "done"}
