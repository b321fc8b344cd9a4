"""Running one command attempt and turning whatever happens into an engine event.

This is the boundary where foreign exceptions become classified errors: nothing a command does
(raise, hang, return a set) can crash the runner; it becomes a recorded ``CommandFailed``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from statewise.definition.model import ErrorKind
from statewise.engine.effects import RunCommand
from statewise.engine.events import CommandFailed, CommandSucceeded
from statewise.errors import (
    CommandError,
    InvalidOutputError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from statewise.worker.registry import CommandContext, CommandRegistry, CommandResult

JSON = Any
_TRANSIENT_BUILTINS = (ConnectionError, TimeoutError)


async def execute(
    registry: CommandRegistry,
    effect: RunCommand,
    workflow: str,
    key: str,
    context: Mapping[str, JSON],
) -> CommandSucceeded | CommandFailed:
    """Run one attempt within its timeout and report it as an event."""
    began = time.perf_counter()
    try:
        function = registry.get(effect.command)
        call = CommandContext(
            workflow=workflow,
            key=key,
            state=effect.state,
            attempt=effect.attempt,
            idempotency_key=effect.idempotency_key(key),
            context=context,
            branch=effect.branch,
            input=effect.input,
            deadline=None if effect.timeout is None else time.monotonic() + effect.timeout,
        )
        async with asyncio.timeout(effect.timeout):  # unlike wait_for, no task per call
            result = await _call(function, call)
        usage = None
        if isinstance(result, CommandResult):
            result, usage = result.value, result.usage or None
        value = to_json(result, effect.command)
    except Exception as exc:  # the boundary: every failure becomes an event
        kind, message = classify(exc, effect)
        reported = exc if isinstance(exc, CommandError) else None
        return CommandFailed(
            state=effect.state,
            visit=effect.visit,
            attempt=effect.attempt,
            error_kind=kind,
            message=message,
            duration=time.perf_counter() - began,
            branch=effect.branch,
            usage=reported.usage if reported else None,
            retry_after=reported.retry_after if reported else None,
        )
    return CommandSucceeded(
        state=effect.state,
        visit=effect.visit,
        attempt=effect.attempt,
        result=value,
        duration=time.perf_counter() - began,
        branch=effect.branch,
        usage=usage,
    )


async def _call(function: Any, call: CommandContext) -> JSON:
    if inspect.iscoroutinefunction(function):
        return await function(call)
    result = await asyncio.to_thread(function, call)
    if inspect.isawaitable(result):
        return await result
    return result


def to_json(result: JSON, command: str) -> JSON:
    """Accept JSON-able values and pydantic models; anything else is invalid output."""
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    try:
        return json.loads(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidOutputError(
            f"command {command!r} returned a result that is not JSON: {exc}"
        ) from None


def classify(exc: BaseException, effect: RunCommand) -> tuple[ErrorKind, str]:
    """Map an exception onto the error kinds retry policies and transitions route on."""
    if isinstance(exc, TimeoutError):
        return ErrorKind.TRANSIENT, f"command {effect.command!r} timed out after {effect.timeout}s"
    if isinstance(exc, (TransientError, *_TRANSIENT_BUILTINS)):
        return ErrorKind.TRANSIENT, _describe(exc)
    if isinstance(exc, InvalidOutputError):
        return ErrorKind.INVALID_OUTPUT, _describe(exc)
    if isinstance(exc, PermanentError | NotFoundError):
        return ErrorKind.PERMANENT, _describe(exc)
    return ErrorKind.PERMANENT, f"{type(exc).__name__}: {exc}"


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
