"""Running one command attempt and turning whatever happens into an engine event.

This is the boundary where foreign exceptions become classified errors: nothing a command does
(raise, hang, block the loop, return a set, report usage that is not JSON, change its context)
can crash the runner or reach the store as a broken value; it becomes a recorded event.

A :class:`CommandExecutor` belongs to one runner and runs its attempts:

- each attempt gets its own copy of the item's context and of its input;
- an async command runs on the event loop and is cancelled at its timeout; a sync one runs on
  the runner's thread pool, never beside an earlier attempt's thread that is still running
  (:mod:`statewise.worker.threads`);
- a watchdog notices an attempt that blocks the event loop (:mod:`statewise.worker.watchdog`);
- what an attempt had to wait for, or how long it blocked the loop, is its audit ``note``.

Stopping an attempt from outside: :func:`cancel_attempt` when its result is no longer needed (a
parallel join was met), which still yields a CommandFailed carrying the usage the attempt had
spent; a plain ``task.cancel()`` when the runner shuts down, which yields no event, since the
work is handed back to be performed again.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import marshal
import math
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from statewise.contract import CommandContext, CommandFunction, CommandRegistry, CommandResult
from statewise.definition.data_schema import schema_problems
from statewise.definition.model import ErrorKind
from statewise.engine.effects import RunCommand
from statewise.engine.events import CommandFailed, CommandSucceeded
from statewise.errors import (
    BudgetExceededError,
    CommandDefectError,
    CommandError,
    InvalidOutputError,
    NotFoundError,
    TimedOutError,
    TransientError,
)
from statewise.inputs import INTEGERS, InputLimits, check_value
from statewise.worker.threads import CommandThreads, Slot
from statewise.worker.watchdog import LoopWatchdog

JSON = Any
Accepted = tuple[JSON, dict[str, JSON] | None, dict[str, str] | None]
"""What an attempt returned, accepted: its JSON result, usage and proposed conversation."""
BLOCK_THRESHOLD = 1.0
"""Seconds an attempt may hold the event loop before the watchdog reports it."""
JOIN_MET = "cancelled: the join of its parallel state was met, so its result is not needed"
_TRANSIENT_BUILTINS = (ConnectionError, TimeoutError)
_THREAD_RUNS_ON = (
    "its thread is still running (a thread cannot be stopped), so the next attempt waits for "
    "it to end"
)
_losing: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


def cancel_attempt(task: asyncio.Task[Any]) -> bool:
    """Cancel the task running an attempt whose result is no longer needed (a join was met).

    Unlike a plain ``task.cancel()``, the task then ends by returning a CommandFailed (error
    kind permanent, saying it was cancelled because the join was met) that carries the usage
    the attempt had spent so far, as its usage probe (``CommandContext.track_usage``) reports
    it. A task cancelled before it began running ends cancelled, with no event: it spent
    nothing. Returns what ``task.cancel()`` returns.
    """
    _losing.add(task)
    return task.cancel()


@dataclass(slots=True)
class _Attempt:
    """One attempt as the executor follows it: its slot, its notes, its context once begun."""

    effect: RunCommand
    slot: Slot
    task: asyncio.Task[Any]
    began: float = field(default_factory=time.perf_counter)
    call: CommandContext | None = None
    notes: list[str] = field(default_factory=list)


class CommandExecutor:
    """Runs one runner's command attempts; see the module docstring.

    ``threads`` sizes the pool for sync commands (the runner's concurrency, so that every
    command in flight can be a sync one); ``block_threshold`` is how long an attempt may hold
    the event loop before the watchdog names it; ``max_depth`` bounds the nesting of a result
    (``statewise.inputs``). The pool and the watchdog start with the first attempt;
    :meth:`close` stops both, and the next attempt starts them again.
    """

    def __init__(
        self,
        registry: CommandRegistry,
        *,
        threads: int,
        block_threshold: float = BLOCK_THRESHOLD,
        max_depth: int = InputLimits().max_depth,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.max_depth = max_depth
        self._threads = CommandThreads(threads)
        self._watchdog = LoopWatchdog(block_threshold)

    async def execute(
        self,
        effect: RunCommand,
        workflow: str,
        key: str,
        context: Mapping[str, JSON],
        result_schema: Mapping[str, JSON] | None = None,
    ) -> CommandSucceeded | CommandFailed:
        """Run one attempt within its timeout and report it as an event.

        A result that does not fit ``result_schema`` (the workflow's ``result_schema:``) or the
        result model the command was registered with is invalid output, as an agent's is.

        Call it in a task of its own: the task is named after the command and the item (the
        watchdog reports it by that name), and it is the task :func:`cancel_attempt` cancels.
        """
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("execute() must run in an asyncio task")
        task.set_name(attempt_name(effect, workflow, key))
        self._watchdog.watch(asyncio.get_running_loop())
        attempt = _Attempt(effect, (workflow, key, effect.state, effect.visit, effect.branch), task)
        try:
            value, usage, conversation = await self._perform(attempt, workflow, key, context)
            self._check_fit(effect.command, value, result_schema)
        except asyncio.CancelledError:
            if task not in _losing:  # the runner is stopping: no event, the work goes back
                self._threads.abandon(attempt.slot, effect.attempt, "the runner stopped")
                raise
            return self._cancelled(attempt, None)
        except _Expired:
            return self._timed_out(attempt)
        except Exception as exc:  # the boundary: every failure becomes an event
            if task in _losing:  # it turned the cancellation into an error of its own
                return self._cancelled(attempt, getattr(exc, "usage", None))
            return self._failed(attempt, exc)
        if task in _losing:  # it swallowed the cancellation and returned anyway
            return self._cancelled(attempt, usage)
        return CommandSucceeded(
            state=effect.state,
            visit=effect.visit,
            attempt=effect.attempt,
            result=value,
            duration=time.perf_counter() - attempt.began,
            branch=effect.branch,
            usage=usage,
            conversation=conversation,
            note=self._note(attempt),
        )

    def _check_fit(self, command: str, value: JSON, schema: Mapping[str, JSON] | None) -> None:
        """Raise InvalidOutputError when ``value`` breaks the command's declared result shape."""
        problems = [] if schema is None else schema_problems(schema, value, "result")
        model = self.registry.result_model(command)
        if model is not None and not problems:
            try:
                model.model_validate(value)
            except ValidationError as exc:
                problems = [
                    f"{'.'.join(map(str, e['loc'])) or 'result'}: {e['msg']}" for e in exc.errors()
                ]
        if problems:
            raise InvalidOutputError(
                f"command {command!r} returned a result that does not fit its declared result "
                f"schema ({'; '.join(problems[:5])}); fix the command or its `result_schema`"
            )

    def close(self) -> None:
        """Stop the watchdog and shut the thread pool down (threads still running run on)."""
        self._watchdog.stop()
        self._threads.close()

    async def _perform(
        self, attempt: _Attempt, workflow: str, key: str, context: Mapping[str, JSON]
    ) -> Accepted:
        effect = attempt.effect
        function = self.registry.get(effect.command)
        on_loop = _is_async(function)
        if not on_loop:  # only a sync command runs on a thread, so only it can meet an earlier one
            waited = await self._threads.wait_turn(
                attempt.slot, effect.command, effect.attempt, effect.timeout
            )
            if waited is not None:
                attempt.notes.append(waited)
        own_context, own_input = own_copy((context, effect.input))
        attempt.call = call = CommandContext(
            workflow=workflow,
            key=key,
            state=effect.state,
            attempt=effect.attempt,
            idempotency_key=effect.idempotency_key(key),
            context=own_context,
            branch=effect.branch,
            input=own_input,
            deadline=None if effect.timeout is None else time.monotonic() + effect.timeout,
            tokens_left=effect.tokens_left,
            now=self.clock(),
            visit=effect.visit,
        )
        scope = asyncio.timeout(effect.timeout)  # unlike wait_for, no task per call
        try:
            async with scope:
                result = await self._call(function, call, attempt, on_loop)
            if scope.expired():  # it swallowed the cancellation and returned late
                raise TimeoutError
        except TimeoutError:
            if not scope.expired():
                raise  # the command's own timeout (a socket, a client): classified as transient
            raise _Expired from None
        return accept(result, effect.command, self.max_depth)

    async def _call(
        self, function: CommandFunction, call: CommandContext, attempt: _Attempt, on_loop: bool
    ) -> JSON:
        if on_loop:
            return await function(call)
        effect, slot = attempt.effect, attempt.slot
        result = await self._threads.run(slot, effect.command, effect.attempt, function, call)
        if inspect.isawaitable(result):
            return await result
        return result

    def _timed_out(self, attempt: _Attempt) -> CommandFailed:
        """Cut off at its timeout: transient, with what its usage probe says it spent."""
        effect = attempt.effect
        message = f"command {effect.command!r} timed out after {effect.timeout}s"
        if self._threads.abandon(attempt.slot, effect.attempt, "its timeout"):
            message += f"; {_THREAD_RUNS_ON}"
        spent = partial(_spent, attempt, ErrorKind.TRANSIENT)
        return self._failure(attempt, ErrorKind.TRANSIENT, message, spent, timed_out=True)

    def _failed(self, attempt: _Attempt, exc: Exception) -> CommandFailed:
        kind, message = classify(exc)
        timed_out = isinstance(exc, TimeoutError | TimedOutError)
        if isinstance(exc, CommandError):
            usage = exc.usage
            return self._failure(
                attempt, kind, message, lambda: usage, exc.retry_after, timed_out=timed_out
            )
        return self._failure(attempt, kind, message, lambda: None, timed_out=timed_out)

    def _cancelled(self, attempt: _Attempt, reported: object) -> CommandFailed:
        """Cancelled by cancel_attempt: permanent, with what it reported or its probe says."""
        attempt.task.uncancel()
        _losing.discard(attempt.task)
        message = JOIN_MET
        if self._threads.abandon(attempt.slot, attempt.effect.attempt, "its cancellation"):
            message += f"; {_THREAD_RUNS_ON}"
        usage = (
            partial(_spent, attempt, ErrorKind.PERMANENT) if reported is None else lambda: reported
        )
        return self._failure(attempt, ErrorKind.PERMANENT, message, usage)

    def _failure(
        self,
        attempt: _Attempt,
        kind: ErrorKind,
        message: str,
        usage: Callable[[], object],
        retry_after: float | None = None,
        *,
        timed_out: bool = False,
    ) -> CommandFailed:
        """The failure event; usage that is not a JSON object makes it an invalid output."""
        effect = attempt.effect
        try:
            checked = as_usage(usage(), effect.command, self.max_depth)
        except InvalidOutputError as exc:
            kind, message, checked = ErrorKind.INVALID_OUTPUT, f"{exc}; it failed: {message}", None
        return CommandFailed(
            state=effect.state,
            visit=effect.visit,
            attempt=effect.attempt,
            error_kind=kind,
            message=message,
            duration=time.perf_counter() - attempt.began,
            branch=effect.branch,
            usage=checked,
            retry_after=retry_after,
            note=self._note(attempt),
            timed_out=timed_out,
        )

    def _note(self, attempt: _Attempt) -> str | None:
        blocked = self._watchdog.blocked(attempt.task)
        if blocked > 0:
            attempt.notes.append(f"blocked the event loop for {blocked:.1f}s")
        return "; ".join(attempt.notes) or None


def attempt_name(effect: RunCommand, workflow: str, key: str) -> str:
    """The name of the task running an attempt: the command and the item, for log lines."""
    branch = f"/{effect.branch}" if effect.branch is not None else ""
    return (
        f"command {effect.command!r} for item {workflow}/{key} "
        f"(state {effect.state}#{effect.visit}{branch}, attempt {effect.attempt})"
    )


def _is_async(function: CommandFunction) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one (an agent's command)."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        type(function).__call__
    )


def _spent(attempt: _Attempt, kind: ErrorKind) -> object:
    """What the attempt's usage probe reports it has spent (None without a probe)."""
    if attempt.call is None:
        return None
    try:
        return attempt.call.tracked_usage(kind)
    except Exception as exc:
        raise InvalidOutputError(
            f"command {attempt.effect.command!r} reported usage that is not a JSON object: its "
            f"usage probe raised {type(exc).__name__}: {exc}"
        ) from None


def own_copy(value: JSON) -> JSON:
    """A deep copy of a JSON structure, for a command to change as it likes.

    ``marshal`` copies plain dicts, lists and scalars in C, about six times faster than
    ``copy.deepcopy``; anything it cannot take (a subclass, a deep nesting) is deep-copied.
    """
    try:
        return marshal.loads(marshal.dumps(value))
    except ValueError:
        return copy.deepcopy(value)


def accept(result: JSON, command: str, max_depth: int) -> Accepted:
    """A command's return as (JSON result, usage, conversation); anything else is invalid output.

    A result nested deeper than ``max_depth``, like start data, could not be read back.
    """
    if isinstance(result, CommandResult):
        conversation = result.conversation
        if conversation is not None and not _is_conversation(conversation):
            raise InvalidOutputError(
                f"command {command!r} proposed a conversation that is not serialised messages "
                f"by agent name"
            )
        value = to_json(result.value, command, max_depth)
        return value, as_usage(result.usage, command, max_depth), conversation
    return to_json(result, command, max_depth), None, None


def _is_conversation(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(agent, str) and isinstance(messages, str) for agent, messages in value.items()
    )


def to_json(result: JSON, command: str, max_depth: int) -> JSON:
    """Accept JSON-able values and pydantic models within the input rules; else invalid output."""
    try:
        if isinstance(result, BaseModel):
            value = result.model_dump(mode="json")
            check_value(value, "the result", max_depth)
        else:
            value = _json_copy(result, "the result", max_depth)
    except (TypeError, ValueError) as exc:  # InvalidInputError is a ValueError too
        raise InvalidOutputError(
            f"command {command!r} returned a result that is not JSON: {exc}"
        ) from None
    return value


def as_usage(usage: object, command: str, max_depth: int) -> dict[str, JSON] | None:
    """Reported usage as the audit trail keeps it: a JSON object, or None for no usage."""
    if usage is None or (isinstance(usage, Mapping) and not usage):
        return None
    if not isinstance(usage, Mapping):
        raise InvalidOutputError(
            f"command {command!r} reported usage that is not a JSON object but a "
            f"{type(usage).__name__}: {usage!r:.80}"
        )
    try:
        copied: dict[str, JSON] = _json_copy(dict(usage), "the usage", max_depth)
    except (TypeError, ValueError) as exc:
        raise InvalidOutputError(
            f"command {command!r} reported usage that is not a JSON object: {exc}"
        ) from None
    return copied


def _json_copy(value: JSON, what: str, max_depth: int) -> JSON:
    """``value`` as fresh JSON data within the input rules (``statewise.inputs``).

    Most results are small dicts of plain values, which a walk copies about ten times faster
    than a json round trip (json.dumps builds an encoder for ``allow_nan=False`` every call),
    checking depth and numbers as it goes. Subclasses, non-string keys, numbers JSON cannot
    carry and nesting beyond ``max_depth`` take the round trip, whose errors and conversions
    (tuples become lists, int keys strings) are the rule, and then the rules' own check,
    which names what is wrong.
    """
    try:
        return _plain(value, max_depth)
    except (_NotPlain, RecursionError):
        copied = json.loads(json.dumps(value, allow_nan=False))
        check_value(copied, what, max_depth)
        return copied


class _NotPlain(Exception):
    """A value the fast walk leaves to the json round trip."""


class _Expired(Exception):
    """The attempt's own timeout cut it off (not a TimeoutError the command raised)."""


def _plain(value: JSON, room: int) -> JSON:
    """Copy ``value``, a container with ``room`` levels left for it and its contents."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if value in INTEGERS:
            return value
        raise _NotPlain
    if kind is float:
        if math.isfinite(value):
            return value
        raise _NotPlain
    if room <= 0:
        raise _NotPlain
    if kind is dict:
        copied = {}
        for name, item in value.items():
            if type(name) is not str:
                raise _NotPlain
            copied[name] = _plain(item, room - 1)
        return copied
    if kind is list or kind is tuple:
        return [_plain(item, room - 1) for item in value]
    raise _NotPlain


def classify(exc: BaseException) -> tuple[ErrorKind, str]:
    """Map an exception onto the error kinds retry policies and transitions route on.

    Any ``CommandError`` the command raised on purpose (``PermanentError``, or the base class)
    is a permanent business failure; any other exception (a TypeError, a KeyError) is one it
    did not mean to raise, a ``command_error``: a defect in the command.
    """
    if isinstance(exc, (TransientError, *_TRANSIENT_BUILTINS)):
        return ErrorKind.TRANSIENT, _describe(exc)
    if isinstance(exc, InvalidOutputError):
        return ErrorKind.INVALID_OUTPUT, _describe(exc)
    if isinstance(exc, BudgetExceededError):
        return ErrorKind.BUDGET, _describe(exc)
    if isinstance(exc, CommandDefectError):
        return ErrorKind.COMMAND_ERROR, _describe(exc)
    if isinstance(exc, CommandError | NotFoundError):
        return ErrorKind.PERMANENT, _describe(exc)
    return ErrorKind.COMMAND_ERROR, f"{type(exc).__name__}: {exc}"


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
