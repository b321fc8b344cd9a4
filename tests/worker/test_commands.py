"""Running one command attempt: whatever the command does becomes a success or failure event."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from statewise.definition.model import ErrorKind
from statewise.engine import CommandFailed, CommandSucceeded, RunCommand
from statewise.errors import InvalidOutputError, PermanentError, TransientError
from statewise.worker import CommandContext, CommandRegistry
from statewise.worker.commands import execute
from statewise.worker.registry import CommandResult


def attempt(number: int = 1, *, timeout: float | None = 1.0, **fields: Any) -> RunCommand:
    """Attempt ``number`` of command ``cmd`` in visit 2 of state ``enrich``."""
    return RunCommand("cmd", "enrich", 2, number, timeout, **fields)


def perform(
    function: Any, effect: RunCommand | None = None, context: dict[str, Any] | None = None
) -> CommandSucceeded | CommandFailed:
    """Register ``function`` as ``cmd`` and execute one attempt of it for item ``k1``."""
    registry = CommandRegistry()
    registry.register("cmd", function)
    return asyncio.run(execute(registry, effect or attempt(), "wf", "k1", context or {}))


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


async def _sleep_async(call: CommandContext) -> None:
    await asyncio.sleep(5)


def _sleep_sync(call: CommandContext) -> None:
    time.sleep(0.3)


@pytest.mark.parametrize("function", [_sleep_async, _sleep_sync])
def test_a_command_past_its_timeout_is_a_transient_failure(function: Any) -> None:
    began = time.perf_counter()
    kind, message = failure(function, attempt(timeout=0.05))

    assert (kind, message) == (ErrorKind.TRANSIENT, "command 'cmd' timed out after 0.05s")
    assert time.perf_counter() - began < 1


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (TransientError("rate limited"), ErrorKind.TRANSIENT, "rate limited"),
        (ConnectionError("connection refused"), ErrorKind.TRANSIENT, "connection refused"),
        (ConnectionResetError(), ErrorKind.TRANSIENT, "ConnectionResetError"),
        (InvalidOutputError("missing field 'score'"), ErrorKind.INVALID_OUTPUT, "missing field"),
        (PermanentError("card declined"), ErrorKind.PERMANENT, "card declined"),
        (ValueError("bad input"), ErrorKind.PERMANENT, "ValueError: bad input"),
        (KeyError("score"), ErrorKind.PERMANENT, "KeyError: 'score'"),
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
