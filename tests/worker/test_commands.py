"""Running one command attempt: whatever the command does becomes a success or failure event.

Most tests execute single attempts with a real executor; the last ones run items through the
real runner on a real SQLite file, to show what the conditions and the store end up seeing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from statewise.contract import CommandContext, CommandRegistry, CommandResult
from statewise.definition.model import ErrorKind
from statewise.engine import CommandFailed, CommandSucceeded, ItemStatus, RunCommand
from statewise.errors import CommandError, InvalidOutputError, PermanentError, TransientError
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner
from statewise.worker.commands import JOIN_MET, CommandExecutor, cancel_attempt

from .workflows import choose, cmd, flow, orelse, run, to

Event = CommandSucceeded | CommandFailed


def attempt(number: int = 1, *, timeout: float | None = 1.0, **fields: Any) -> RunCommand:
    """Attempt ``number`` of command ``cmd`` in visit 2 of state ``enrich``."""
    return RunCommand("cmd", "enrich", 2, number, timeout, **fields)


def executor_for(function: Any, **options: Any) -> CommandExecutor:
    """An executor whose registry holds ``function`` as ``cmd``."""
    registry = CommandRegistry()
    registry.register("cmd", function)
    options.setdefault("threads", 4)
    return CommandExecutor(registry, **options)


def perform(
    function: Any, effect: RunCommand | None = None, context: dict[str, Any] | None = None
) -> Event:
    """Execute one attempt of ``function`` (as ``cmd``) for item ``k1``."""

    async def main() -> Event:
        executor = executor_for(function)
        try:
            return await executor.execute(effect or attempt(), "wf", "k1", context or {})
        finally:
            executor.close()

    return asyncio.run(main())


def test_a_command_is_told_the_time_by_the_runners_clock_not_the_wall() -> None:
    seen: list[float] = []

    def dated(call: CommandContext) -> dict[str, float]:
        seen.append(call.now)
        return {"at": call.now}

    async def main() -> Event:
        executor = executor_for(dated, clock=lambda: 1_800_000_000.0)
        try:
            return await executor.execute(attempt(), "wf", "k1", {})
        finally:
            executor.close()

    event = asyncio.run(main())
    assert isinstance(event, CommandSucceeded) and event.result == {"at": 1_800_000_000.0}
    assert seen == [1_800_000_000.0]


def failure(function: Any, effect: RunCommand | None = None) -> tuple[ErrorKind, str]:
    event = perform(function, effect)
    assert isinstance(event, CommandFailed), event
    return event.error_kind, event.message


def test_sync_and_async_commands_receive_the_item_and_the_attempt() -> None:
    seen: list[CommandContext] = []

    def sync_command(call: CommandContext) -> dict[str, int]:
        seen.append(call)
        return {"n": 1}

    async def async_command(call: CommandContext) -> dict[str, int]:
        seen.append(call)
        return {"n": 2}

    effect = attempt(3, branch="de", input={"lang": "de"})
    results = [perform(f, effect, {"a": [1]}) for f in (sync_command, async_command)]

    assert [r.result for r in results if isinstance(r, CommandSucceeded)] == [{"n": 1}, {"n": 2}]
    assert (
        seen[0]
        == seen[1]
        == CommandContext(
            workflow="wf",
            key="k1",
            state="enrich",
            attempt=3,
            idempotency_key="k1:enrich#2/de:3",
            context={"a": [1]},
            branch="de",
            input={"lang": "de"},
            visit=2,
        )
    )
    assert (results[0].state, results[0].visit, results[0].attempt, results[0].branch) == (
        "enrich",
        2,
        3,
        "de",
    )
    assert results[0].duration > 0
    remaining = seen[0].remaining()
    assert remaining is not None and 0 < remaining <= 1.0, "the attempt's 1 s timeout"


def test_the_idempotency_key_is_stable_per_attempt_and_changes_with_the_next_one() -> None:
    keys: list[str] = []

    def remember(call: CommandContext) -> None:
        keys.append(call.idempotency_key)

    for number in (1, 1, 2):
        perform(remember, attempt(number))

    assert keys[0] == keys[1] == "k1:enrich#2:1"
    assert keys[2] == "k1:enrich#2:2"


def test_a_sync_command_may_return_an_awaitable() -> None:
    async def later() -> str:
        return "done"

    event = perform(lambda call: later())

    assert isinstance(event, CommandSucceeded)
    assert event.result == "done"


def test_an_async_command_past_its_timeout_is_cancelled() -> None:
    reached: list[str] = []

    async def slow(call: CommandContext) -> None:
        await asyncio.sleep(5)
        reached.append("after the await")

    began = time.perf_counter()
    kind, message = failure(slow, attempt(timeout=0.05))

    assert (kind, message) == (ErrorKind.TRANSIENT, "command 'cmd' timed out after 0.05s")
    assert time.perf_counter() - began < 1
    assert reached == [], "the code after the await never runs"


def test_a_sync_command_past_its_timeout_fails_saying_its_thread_runs_on() -> None:
    ended = threading.Event()

    def slow(call: CommandContext) -> None:
        time.sleep(0.3)
        ended.set()

    began = time.perf_counter()
    kind, message = failure(slow, attempt(timeout=0.05))

    assert kind is ErrorKind.TRANSIENT
    assert message == (
        "command 'cmd' timed out after 0.05s; its thread is still running (a thread cannot be "
        "stopped), so the next attempt waits for it to end"
    )
    assert time.perf_counter() - began < 0.25, "the failure does not wait for the thread"
    assert ended.wait(2)


def test_a_command_that_swallows_its_cancellation_still_times_out() -> None:
    async def stubborn(call: CommandContext) -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "late"
        return "never"

    assert failure(stubborn, attempt(timeout=0.05)) == (
        ErrorKind.TRANSIENT,
        "command 'cmd' timed out after 0.05s",
    )


def test_a_timeout_the_command_raises_itself_keeps_its_own_message() -> None:
    def calls_out(call: CommandContext) -> None:
        raise TimeoutError("the payment API did not answer")

    assert failure(calls_out) == (ErrorKind.TRANSIENT, "the payment API did not answer")


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (TransientError("rate limited"), ErrorKind.TRANSIENT, "rate limited"),
        (ConnectionError("connection refused"), ErrorKind.TRANSIENT, "connection refused"),
        (ConnectionResetError(), ErrorKind.TRANSIENT, "ConnectionResetError"),
        (InvalidOutputError("missing field 'score'"), ErrorKind.INVALID_OUTPUT, "missing field"),
        (PermanentError("card declined"), ErrorKind.PERMANENT, "card declined"),
        (CommandError("over the credit limit"), ErrorKind.PERMANENT, "over the credit limit"),
        (ValueError("bad input"), ErrorKind.COMMAND_ERROR, "ValueError: bad input"),
        (KeyError("score"), ErrorKind.COMMAND_ERROR, "KeyError: 'score'"),
        (TypeError("unsupported operand"), ErrorKind.COMMAND_ERROR, "TypeError: unsupported"),
    ],
)
def test_raised_errors_are_classified(error: Exception, kind: ErrorKind, message: str) -> None:
    def raising(call: CommandContext) -> None:
        raise error

    assert failure(raising)[0] is kind
    assert failure(raising)[1].startswith(message)


def test_an_unregistered_command_fails_permanently_with_a_suggestion() -> None:
    kind, message = failure(lambda call: None, RunCommand("cnd", "enrich", 2, 1, 1.0))

    assert kind is ErrorKind.PERMANENT
    assert message == "command 'cnd' is not registered; did you mean 'cmd'?"


@pytest.mark.parametrize("result", [{1, 2}, float("nan"), {"when": object()}, [float("inf")]])
def test_a_result_that_is_not_json_is_invalid_output(result: Any) -> None:
    kind, message = failure(lambda call: result)

    assert kind is ErrorKind.INVALID_OUTPUT
    assert message.startswith("command 'cmd' returned a result that is not JSON")


class Review(BaseModel):
    score: int
    at: datetime
    tags: tuple[str, ...] = ()


def test_pydantic_models_and_tuples_become_plain_json() -> None:
    review = Review(score=91, at=datetime(2025, 1, 2, 3, 4, tzinfo=UTC), tags=("ok",))

    model = perform(lambda call: review)
    pair = perform(lambda call: ("a", 1))

    assert isinstance(model, CommandSucceeded)
    assert model.result == {"score": 91, "at": "2025-01-02T03:04:00Z", "tags": ["ok"]}
    assert isinstance(pair, CommandSucceeded)
    assert pair.result == ["a", 1]


def test_a_reported_result_carries_its_usage_into_the_event() -> None:
    async def agentic(call: CommandContext) -> CommandResult:
        return CommandResult({"label": "billing"}, {"model": "m", "input_tokens": 12})

    event = perform(agentic)
    assert isinstance(event, CommandSucceeded)
    assert (event.result, event.usage) == ({"label": "billing"}, {"model": "m", "input_tokens": 12})


def test_a_failure_carries_retry_after_and_usage_into_the_event() -> None:
    async def limited(call: CommandContext) -> None:
        raise TransientError("rate limited", retry_after=7.5, usage={"model": "m"})

    event = perform(limited)
    assert isinstance(event, CommandFailed)
    assert (event.error_kind, event.retry_after, event.usage) == (
        ErrorKind.TRANSIENT,
        7.5,
        {"model": "m"},
    )


# --- the command's own copy of the context --------------------------------------------------


def test_a_command_changes_only_its_own_copy_of_the_context_and_input() -> None:
    def meddle(call: CommandContext) -> dict[str, Any]:
        context: Any = call.context
        context["order"]["lines"].append({"sku": "extra"})
        context["order"]["total"] = 0
        context["new"] = True
        call.input["lang"] = "xx"
        return {"seen": len(context["order"]["lines"])}

    async def meddle_async(call: CommandContext) -> dict[str, Any]:
        return meddle(call)

    for function in (meddle, meddle_async):
        context = {"order": {"lines": [{"sku": "a"}], "total": 10}, "tags": ["x"]}
        effect = attempt(input={"lang": "de"})
        event = perform(function, effect, context)

        assert isinstance(event, CommandSucceeded)
        assert event.result == {"seen": 2}
        assert context == {"order": {"lines": [{"sku": "a"}], "total": 10}, "tags": ["x"]}
        assert effect.input == {"lang": "de"}


def test_the_result_is_a_copy_the_command_cannot_change_afterwards() -> None:
    kept: dict[str, Any] = {"items": [1, 2]}

    event = perform(lambda call: kept)
    kept["items"].append(3)

    assert isinstance(event, CommandSucceeded)
    assert event.result == {"items": [1, 2]}


# --- usage and conversations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "problem"),
    [
        ("lots", "not a JSON object but a str: 'lots'"),
        ([{"tokens": 1}], "not a JSON object but a list"),
        # Why the json module refuses the next three is in its own words, after statewise's.
        ({"cost": float("nan")}, "not a JSON object: "),
        ({"when": object()}, "not a JSON object: "),
        ({("a", 1): 2}, "not a JSON object: "),
    ],
)
def test_usage_that_is_not_a_json_object_fails_the_attempt_as_invalid_output(
    usage: Any, problem: str
) -> None:
    async def reporting(call: CommandContext) -> CommandResult:
        return CommandResult({"ok": True}, usage)

    async def failing(call: CommandContext) -> None:
        raise TransientError("rate limited", usage=usage)

    succeeded = perform(reporting)
    failed = perform(failing)

    assert isinstance(succeeded, CommandFailed)
    assert succeeded.error_kind is ErrorKind.INVALID_OUTPUT
    assert succeeded.message.startswith(f"command 'cmd' reported usage that is {problem}")
    assert succeeded.usage is None
    assert isinstance(failed, CommandFailed)
    assert failed.error_kind is ErrorKind.INVALID_OUTPUT
    assert failed.message.startswith(f"command 'cmd' reported usage that is {problem}")
    assert failed.message.endswith("; it failed: rate limited")
    assert failed.usage is None


def test_a_proposed_conversation_travels_with_the_success() -> None:
    async def agentic(call: CommandContext) -> CommandResult:
        return CommandResult("hello", {"model": "m"}, {"writer": '[{"kind": "request"}]'})

    event = perform(agentic)

    assert isinstance(event, CommandSucceeded)
    assert event.conversation == {"writer": '[{"kind": "request"}]'}
    plain = perform(lambda call: CommandResult("plain"))
    assert isinstance(plain, CommandSucceeded)
    assert plain.conversation is None


def test_a_conversation_that_is_not_messages_by_agent_is_invalid_output() -> None:
    bad: Any = {"writer": [{"kind": "request"}]}

    kind, message = failure(lambda call: CommandResult("hello", {}, bad))

    assert kind is ErrorKind.INVALID_OUTPUT
    assert message.startswith("command 'cmd' proposed a conversation that is not serialised")


def test_an_object_with_an_async_call_runs_on_the_event_loop() -> None:
    class Agentish:
        async def __call__(self, call: CommandContext) -> str:
            return threading.current_thread().name

    event = perform(Agentish())

    assert isinstance(event, CommandSucceeded)
    assert event.result == threading.main_thread().name


# --- stopping an attempt from outside -------------------------------------------------------


def probing(started: asyncio.Event, spent: dict[str, Any]) -> Any:
    """An async command that registers a usage probe over ``spent``, then waits forever."""

    async def command(call: CommandContext) -> None:
        call.track_usage(lambda outcome: {**spent, "outcome": outcome})
        spent["input_tokens"] = 40
        started.set()
        await asyncio.sleep(60)

    return command


def test_an_attempt_cancelled_because_its_join_was_met_reports_what_it_spent() -> None:
    async def main() -> Any:
        started = asyncio.Event()
        executor = executor_for(probing(started, {"model": "m"}))
        task = asyncio.create_task(executor.execute(attempt(branch="fr"), "wf", "k1", {}))
        await started.wait()
        assert cancel_attempt(task)
        try:
            return await task, task.cancelling()
        finally:
            executor.close()

    event, cancelling = asyncio.run(main())

    assert isinstance(event, CommandFailed)
    assert (event.error_kind, event.message, event.branch) == (ErrorKind.PERMANENT, JOIN_MET, "fr")
    assert event.usage == {"model": "m", "input_tokens": 40, "outcome": "permanent"}
    assert cancelling == 0, "the cancellation was consumed: the task ended normally"


def test_an_attempt_cancelled_by_a_shutdown_produces_no_event() -> None:
    async def main() -> None:
        started = asyncio.Event()
        executor = executor_for(probing(started, {"model": "m"}))
        task = asyncio.create_task(executor.execute(attempt(), "wf", "k1", {}))
        await started.wait()
        task.cancel()
        try:
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            executor.close()

    asyncio.run(main())


def test_an_attempt_cut_off_by_its_timeout_reports_what_its_probe_says_it_spent() -> None:
    async def slow(call: CommandContext) -> None:
        call.track_usage(lambda outcome: {"model": "m", "requests": 1, "outcome": outcome})
        await asyncio.sleep(5)

    event = perform(slow, attempt(timeout=0.05))

    assert isinstance(event, CommandFailed)
    assert event.error_kind is ErrorKind.TRANSIENT
    assert event.usage == {"model": "m", "requests": 1, "outcome": "transient"}


def test_a_probe_that_fails_makes_the_attempt_an_invalid_output() -> None:
    def broken(outcome: str) -> dict[str, Any]:
        raise KeyError("tokens")

    async def slow(call: CommandContext) -> None:
        call.track_usage(broken)
        await asyncio.sleep(5)

    kind, message = failure(slow, attempt(timeout=0.05))

    assert kind is ErrorKind.INVALID_OUTPUT
    assert message == (
        "command 'cmd' reported usage that is not a JSON object: its usage probe raised "
        "KeyError: 'tokens'; it failed: command 'cmd' timed out after 0.05s"
    )


# --- sync commands on the runner's threads --------------------------------------------------


def test_sync_commands_run_on_a_pool_as_large_as_the_runners_concurrency() -> None:
    size = 10  # more than asyncio's default executor has on a small machine
    together = threading.Barrier(size, timeout=5)

    def meet(call: CommandContext) -> str:
        together.wait()  # returns only once all of them run at the same time
        return threading.current_thread().name

    async def main() -> list[Event]:
        executor = executor_for(meet, threads=size)
        try:
            return await asyncio.gather(
                *(executor.execute(attempt(n + 1), "wf", f"k{n}", {}) for n in range(size))
            )
        finally:
            executor.close()

    events = asyncio.run(main())

    assert all(isinstance(e, CommandSucceeded) for e in events), events
    names = {e.result for e in events if isinstance(e, CommandSucceeded)}
    assert len(names) == size
    assert all(name.startswith("statewise-command") for name in names)


# --- through the runner, on a real SQLite store ---------------------------------------------


def test_a_command_changing_its_context_changes_nothing_the_conditions_or_store_see(
    store: SQLiteStore,
) -> None:
    commands = CommandRegistry()

    @commands.command()
    def meddle(call: CommandContext) -> dict[str, bool]:
        context: Any = call.context
        context["order"]["total"] = 0
        context["order"]["lines"].clear()
        context["injected"] = True
        return {"ok": True}

    definition = flow(
        "orders",
        run("check", cmd("meddle"), to("route")),
        choose("route", to("big", "order.total > 100"), orelse("small")),
    )
    runner = Runner(store, [definition], commands)

    async def main() -> None:
        await runner.start(definition, [("a", {"order": {"total": 500, "lines": [1, 2]}})])
        await runner.run(max_wait=0.0)

    asyncio.run(main())

    item = asyncio.run(store.get_item(None, "a"))
    assert item.state == "big"
    assert item.context == {"order": {"total": 500, "lines": [1, 2]}, "meddle": {"ok": True}}
    routed = asyncio.run(store.history(None, "a"))[-1]
    assert routed.values == {"order.total": 500}
    assert asyncio.run(store.stuck_items()) == []


def test_usage_that_is_not_json_fails_that_item_alone_and_never_reaches_the_store(
    store: SQLiteStore,
) -> None:
    commands = CommandRegistry()
    commands.register("bad", lambda call: CommandResult({"ok": True}, {"cost": float("nan")}))
    commands.register("fine", lambda call: CommandResult({"ok": True}, {"cost": 0.5}))
    definitions = [
        flow("broken", run("work", cmd("bad", attempts=2), to("done"))),
        flow("healthy", run("work", cmd("fine"), to("done"))),
    ]
    runner = Runner(store, definitions, commands)

    async def main() -> None:
        for definition in definitions:
            await runner.start(definition, [(definition.name, {})])
        await runner.run(max_wait=1.0)

    asyncio.run(main())

    broken = asyncio.run(store.history(None, "broken"))
    assert (broken[-1].to_state, broken[-1].attempt) == ("work", 2)  # failed: a defect
    assert asyncio.run(store.get_item(None, "broken")).status is ItemStatus.FAILED
    assert broken[-1].error is not None
    assert broken[-1].error["kind"] == "invalid_output"
    assert (
        broken[-1]
        .error["message"]
        .startswith(
            "command 'bad' reported usage that is not a JSON object: Out of range float values"
        )
    )
    assert [r.usage for r in broken] == [None] * len(broken)
    healthy = asyncio.run(store.history(None, "healthy"))
    assert (healthy[-1].to_state, healthy[-1].usage) == ("done", {"cost": 0.5})
