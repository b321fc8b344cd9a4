"""Sync commands on threads: a thread outliving its timeout never runs beside the next attempt.

Executed one attempt at a time with a real executor, then through the real runner on a real
SQLite file: the issue's case of a sync command with a timeout and three attempts, whose side
effect used to be performed three times at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from statewise.contract import CommandContext, CommandRegistry
from statewise.definition.model import ErrorKind
from statewise.engine import CommandFailed, CommandSucceeded, RunCommand
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner
from statewise.worker.commands import CommandExecutor

from .workflows import cmd, flow, run, to

Event = CommandSucceeded | CommandFailed


@dataclass(frozen=True)
class Effect:
    """One side effect a command performed: which attempt, from when to when."""

    key: str
    attempt: int
    began: float
    ended: float


class SideEffects:
    """A sync command that takes ``seconds[attempt]`` to perform its side effect, logged here."""

    def __init__(self, seconds: dict[int, float]) -> None:
        self.seconds = seconds
        self.done: list[Effect] = []
        self._lock = threading.Lock()

    def __call__(self, call: CommandContext) -> dict[str, int]:
        began = time.monotonic()
        time.sleep(self.seconds.get(call.attempt, 0.0))
        with self._lock:
            self.done.append(Effect(call.key, call.attempt, began, time.monotonic()))
        return {"attempt": call.attempt}

    def overlapping(self) -> list[tuple[Effect, Effect]]:
        """Pairs of side effects of one item that were being performed at the same time."""
        return [
            (a, b)
            for a in self.done
            for b in self.done
            if a is not b and a.key == b.key and a.began < b.began < a.ended
        ]


def attempt(number: int, timeout: float | None, **fields: Any) -> RunCommand:
    return RunCommand("charge", "pay", 1, number, timeout, **fields)


def execute_in_turn(command: SideEffects, *effects: RunCommand, key: str = "k1") -> list[Event]:
    """Execute the attempts one after the other, as the engine issues them."""

    async def main() -> list[Event]:
        registry = CommandRegistry()
        registry.register("charge", command)
        executor = CommandExecutor(registry, threads=4)
        try:
            return [await executor.execute(e, "wf", key, {}) for e in effects]
        finally:
            executor.close()

    return asyncio.run(main())


def test_the_next_attempt_waits_for_the_thread_of_the_one_that_timed_out() -> None:
    command = SideEffects({1: 0.4})

    first, second = execute_in_turn(command, attempt(1, 0.1), attempt(2, 1.0))

    assert isinstance(first, CommandFailed)
    assert "its thread is still running" in first.message
    assert isinstance(second, CommandSucceeded)
    assert second.note is not None
    assert second.note.startswith("waited 0.")
    assert second.note.endswith(
        "s for attempt 1, still running in its thread after its timeout, to end"
    )
    assert [e.attempt for e in command.done] == [1, 2]
    assert command.overlapping() == []
    assert command.done[1].began >= command.done[0].ended


def test_the_wait_is_bounded_by_the_next_attempts_own_timeout() -> None:
    command = SideEffects({1: 0.8})

    first, second, third = execute_in_turn(
        command, attempt(1, 0.05), attempt(2, 0.1), attempt(3, 2.0)
    )

    assert isinstance(first, CommandFailed)
    assert isinstance(second, CommandFailed)
    assert second.error_kind is ErrorKind.TRANSIENT
    assert second.message.startswith(
        "attempt 2 of command 'charge' did not start: attempt 1 is still running in its thread "
        "after its timeout, 0.1s later (a thread cannot be stopped)"
    )
    assert isinstance(third, CommandSucceeded)
    assert third.note is not None and "for attempt 1, still running" in third.note
    assert [e.attempt for e in command.done] == [1, 3], "attempt 2 never started"
    assert command.overlapping() == []


def test_other_items_and_other_branches_do_not_wait() -> None:
    command = SideEffects({1: 0.4})

    async def main() -> list[Event]:
        registry = CommandRegistry()
        registry.register("charge", command)
        executor = CommandExecutor(registry, threads=4)
        try:
            await executor.execute(attempt(1, 0.05, branch="de"), "wf", "k1", {})
            return [
                await executor.execute(attempt(2, 1.0, branch="fr"), "wf", "k1", {}),
                await executor.execute(attempt(2, 1.0, branch="de"), "wf", "k2", {}),
            ]
        finally:
            executor.close()

    began = time.monotonic()
    events = asyncio.run(main())

    assert [e.note for e in events] == [None, None]
    assert time.monotonic() - began < 0.3


def test_closing_the_executor_lets_its_idle_threads_end() -> None:
    def pool_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("statewise-command")]

    assert execute_in_turn(SideEffects({}), attempt(1, 1.0), attempt(2, 1.0))
    deadline = time.monotonic() + 2
    while pool_threads() and time.monotonic() < deadline:
        time.sleep(0.01)

    assert pool_threads() == []


# --- through the runner ---------------------------------------------------------------------


def run_charges(store: SQLiteStore, command: SideEffects, *keys: str) -> None:
    """Items ``keys`` through ``pay`` (sync command ``charge``: timeout 0.2s, 3 attempts)."""
    commands = CommandRegistry()
    commands.register("charge", command)
    definition = flow("payment", run("pay", cmd("charge", timeout=0.2), to("paid")))
    runner = Runner(store, [definition], commands, concurrency=8)

    async def main() -> None:
        await runner.start(definition, [(key, {}) for key in keys])
        await runner.run(max_wait=1.0)

    asyncio.run(main())


def test_a_sync_commands_retries_never_perform_its_side_effect_at_the_same_time(
    store: SQLiteStore,
) -> None:
    command = SideEffects({1: 0.35, 2: 0.35})

    run_charges(store, command, "a", "b")

    assert command.overlapping() == []
    assert sorted((e.key, e.attempt) for e in command.done) == [
        ("a", 1),
        ("a", 2),
        ("a", 3),
        ("b", 1),
        ("b", 2),
        ("b", 3),
    ]
    for key in ("a", "b"):
        item = asyncio.run(store.get_item(None, key))
        assert (item.state, item.context["charge"]) == ("paid", {"attempt": 3})
        failures = [r.error for r in asyncio.run(store.history(None, key)) if r.error]
        assert [f["message"] for f in failures] == [
            "command 'charge' timed out after 0.2s; its thread is still running (a thread "
            "cannot be stopped), so the next attempt waits for it to end"
        ] * 2
    assert asyncio.run(store.stuck_items()) == []


def test_the_audit_trail_says_how_long_a_retry_waited_for_the_earlier_thread(
    store: SQLiteStore,
) -> None:
    command = SideEffects({1: 0.35})

    run_charges(store, command, "a")

    done = asyncio.run(store.history(None, "a"))[-1]
    assert (done.event, done.attempt) == ("done", 2)
    assert done.note is not None
    assert "for attempt 1, still running in its thread after its timeout, to end" in done.note
