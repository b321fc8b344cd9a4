"""The event loop watchdog: an async command that blocks the loop is reported by name."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import pytest

from statewise.contract import CommandContext, CommandRegistry
from statewise.engine import CommandFailed, CommandSucceeded, RunCommand
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner
from statewise.worker.commands import CommandExecutor
from statewise.worker.watchdog import LoopWatchdog

from .workflows import cmd, flow, run, to

THRESHOLD = 0.2
BLOCKED = re.compile(r"blocked the event loop for (\d+\.\d)s")


async def blocking(call: CommandContext) -> str:
    time.sleep(0.6)  # the mistake: a blocking call in an async command
    return "done"


async def polite(call: CommandContext) -> str:
    await asyncio.sleep(0.6)
    return "done"


def execute(function: Any, effect: RunCommand) -> CommandSucceeded | CommandFailed:
    async def main() -> CommandSucceeded | CommandFailed:
        registry = CommandRegistry()
        registry.register(effect.command, function)
        executor = CommandExecutor(registry, threads=2, block_threshold=THRESHOLD)
        try:
            return await executor.execute(effect, "wf", "k1", {})
        finally:
            executor.close()

    return asyncio.run(main())


def blocked_for(note: str | None) -> float:
    found = BLOCKED.search(note or "")
    assert found is not None, note
    return float(found[1])


def test_a_command_blocking_the_loop_is_named_in_a_warning_and_its_note(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "statewise.worker")

    event = execute(blocking, RunCommand("sync_io", "enrich", 2, 1, 5.0, branch="de"))

    assert isinstance(event, CommandSucceeded)
    assert 0.3 <= blocked_for(event.note) <= 1.0
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(
        "command 'sync_io' for item wf/k1 (state enrich#2/de, attempt 1) has blocked the event "
        "loop for 0."
    )
    assert "make it a plain function so that it runs in a thread" in warning


def test_a_command_that_awaits_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "statewise.worker")

    event = execute(polite, RunCommand("cmd", "enrich", 2, 1, 5.0))

    assert isinstance(event, CommandSucceeded)
    assert event.note is None
    assert caplog.records == []


def test_a_loop_busy_with_many_short_steps_blames_no_single_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "statewise.worker")

    async def short_steps() -> None:
        for _ in range(8):
            time.sleep(0.01)  # each step is short; together they keep the loop busy
            await asyncio.sleep(0)

    async def main() -> None:
        watchdog = LoopWatchdog(THRESHOLD)
        watchdog.watch(asyncio.get_running_loop())
        try:
            await asyncio.gather(*(short_steps() for _ in range(60)))
        finally:
            watchdog.stop()

    began = time.monotonic()
    asyncio.run(main())

    assert time.monotonic() - began > 2 * THRESHOLD, "the loop answered late"
    assert caplog.records == []


def test_a_block_outside_any_task_is_reported_as_such(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "statewise.worker")

    async def main() -> None:
        watchdog = LoopWatchdog(THRESHOLD)
        watchdog.watch(asyncio.get_running_loop())
        try:
            asyncio.get_running_loop().call_soon(time.sleep, 0.5)
            await asyncio.sleep(0.7)
        finally:
            watchdog.stop()

    asyncio.run(main())

    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith("the event loop has not answered for 0.")
    assert warning.endswith("outside any task: a callback blocks it")


def test_the_audit_trail_says_which_attempt_blocked_the_loop(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "statewise.worker")
    commands = CommandRegistry()
    commands.register("blocking", blocking)
    definition = flow("stalls", run("work", cmd("blocking"), to("done")))
    runner = Runner(store, [definition], commands, block_threshold=THRESHOLD)

    async def main() -> None:
        await runner.start(definition, [("a", {})])
        await runner.run(max_wait=0.0)

    asyncio.run(main())

    assert any("command 'blocking' for item stalls/a" in r.getMessage() for r in caplog.records)
    done = asyncio.run(store.history(None, "a"))[-1]
    assert (done.event, done.to_state) == ("done", "done")
    assert 0.3 <= blocked_for(done.note) <= 1.0
