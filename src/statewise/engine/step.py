"""The step function: ``(definition, item, event, now) -> StepResult``. Pure, no I/O.

Theory of operation: one ``CommandSucceeded`` from start to commit.

1. The shell (``worker/runner.py`` via ``worker/writer.py``) reads the item, its definition
   and the clock, and calls ``step``. Nothing below does I/O or reads the time itself.
2. ``step`` wraps the item in a ``StepBuilder`` (``builder.py``): a working copy, plus the
   context patches, effects and audit rows the step accumulates.
3. It sorts the event: an operator's action goes to ``operations``; a stopped item, or a
   result for a visit or attempt that is over (``_awaits``), is IGNORED, its model spend
   still recorded; a branch's result goes to ``parallel``, a decision to ``tasks`` (on a
   branch's task, to ``branch_tasks``).
4. ``_on_success`` stores the result under the command's ``result`` key and calls
   ``moves.fire(done)``; ``transitions`` picks the first transition whose guard holds.
5. ``moves.enter`` writes the audit row, leaves the old state (cancels its timers, closes its
   task) and starts the new one: timers, then a task, branches, a command (a ``RunCommand``
   effect), or, for a state with no work, ``fire(done)`` again, so one step may cross states.
   An early event the item kept (``buffer``) that the new state takes fires before all that.
   An unmatched ``done`` or a broken guard fails the item (a defect); an ``error`` escalates.
6. ``builder.result()`` freezes the new item, patches, audit rows and effects. The store
   commits them in one transaction fenced on the item's ``seq`` (``store/commit.py``); the
   effects write or delete outbox, timer and task rows. A command's result is the next event.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, assert_never

from statewise.definition.data_schema import schema_problems
from statewise.definition.model import (
    BUFFER_TIMER,
    DONE_EVENT,
    ERROR_EVENT,
    Command,
    Definition,
    ErrorKind,
    State,
)
from statewise.engine import buffer
from statewise.engine.branch_tasks import decide_branch, on_branch_task_timer
from statewise.engine.builder import StepBuilder
from statewise.engine.events import (
    RETRY_TIMER,
    TASK_DUE_TIMER,
    TASK_REMINDER_TIMER,
    CommandFailed,
    CommandSucceeded,
    Event,
    External,
    Operate,
    Start,
    TaskDecided,
    TimerFired,
)
from statewise.engine.item import Item, ItemStatus
from statewise.engine.moves import enter, fire, run_command, stop_cut_short
from statewise.engine.operations import operate
from statewise.engine.parallel import on_branch_failure, on_branch_retry, on_branch_success
from statewise.engine.result import Hop, Outcome, StepResult
from statewise.engine.retry import schedule_retry, should_retry
from statewise.engine.tasks import decide, on_task_timer
from statewise.engine.timeouts import TIMEOUT_CAUSE, back_on_timeout
from statewise.errors import ConditionError, InvalidEventError

JSON = Any


def start(
    definition: Definition, key: str, data: dict[str, JSON], now: float, actor: str = "system"
) -> StepResult:
    """Create an item from its start data and run it into the initial state."""
    builder = StepBuilder(definition, new_item(definition, key, now), now)
    for name, value in data.items():
        builder.set((name,), value)
    hop = Hop(event="start", kind="start", actor=actor, creates_item=True, output=data)
    enter(builder, definition.initial, hop)
    return builder.result()


def new_item(definition: Definition, key: str, now: float) -> Item:
    """An item about to enter ``definition``'s initial state, before any step."""
    return Item(
        key=key,
        workflow=definition.name,
        version=definition.version,
        state=definition.initial,
        status=ItemStatus.ACTIVE,
        entered_at=now,
        created_at=now,
        updated_at=now,
    )


def step(definition: Definition, item: Item, event: Event, now: float) -> StepResult:
    """Apply one event to one item.

    Stale command results and timers (their state visit is over) come back IGNORED; an
    external event the item cannot take raises InvalidEventError and changes nothing.
    """
    builder = StepBuilder(definition, item, now)
    if isinstance(event, Operate):
        return operate(builder, event)
    if isinstance(event, TimerFired) and event.name == BUFFER_TIMER:
        return buffer.on_expiry_timer(builder)  # not tied to a state visit, nor to a status
    if item.status in _STOPPED:
        return _after_the_end(builder, event)
    match event:
        case Start():
            raise InvalidEventError(f"item {item.key!r} has already started")
        case CommandSucceeded() | CommandFailed() if not _awaits(item, event):
            return builder.ignore_result(event)
        case CommandSucceeded():
            return _on_success(builder, event)
        case CommandFailed():
            return _on_failure(builder, event)
        case External():
            return _on_external(builder, event)
        case TimerFired() if not _in_visit(item, event.state, event.visit):
            return StepResult(item, Outcome.IGNORED)
        case TimerFired():
            return _on_timer(builder, event)
        case TaskDecided() if event.branch is not None:
            return decide_branch(builder, event)
        case TaskDecided():
            return decide(builder, event)
        case _:
            assert_never(event)


_STOPPED = (ItemStatus.DONE, ItemStatus.FAILED, ItemStatus.PAUSED, ItemStatus.CANCELLED)
_WHY_STOPPED = {
    ItemStatus.FAILED: "failed in state {state!r} (a defect, or something it carries; its "
    "history says why); it accepts no events until it is redriven",
    ItemStatus.DONE: "is finished (in final state {state!r}); it accepts no more events",
    ItemStatus.PAUSED: "is paused in state {state!r}; resume it first",
    ItemStatus.CANCELLED: "was cancelled in state {state!r}; redrive it to move it again",
}


LOST_NOTE = "its work row was cancelled or taken over meanwhile: result not applied, usage recorded"


def record_spend(
    definition: Definition, item: Item, event: CommandSucceeded | CommandFailed, now: float
) -> StepResult:
    """Keep only what a command attempt spent, never its result.

    For an attempt whose commit came back LOST: another writer cancelled its work row (an
    operator paused or moved the item while the agent ran) or another worker took it over.
    Its result must not be applied, but its model calls were made and count against the
    item's budgets; without usage there is nothing to record (IGNORED).
    """
    noted = replace(event, note="; ".join(n for n in (event.note, LOST_NOTE) if n))
    return StepBuilder(definition, item, now).ignore_result(noted)


def _after_the_end(builder: StepBuilder, event: Event) -> StepResult:
    """A stopped item takes no events but an operator's; late results only report their cost.

    Finished, quarantined, paused and cancelled items alike: their pending work was dropped.
    """
    item = builder.original
    if isinstance(event, External | Start | TaskDecided):
        why = _WHY_STOPPED[item.status].format(state=item.state)
        raise InvalidEventError(f"item {item.key!r} {why}")
    if isinstance(event, CommandSucceeded | CommandFailed):
        return builder.ignore_result(event)
    return StepResult(item, Outcome.IGNORED)


def _in_visit(item: Item, state: str, visit: int) -> bool:
    """Whether a result or timer belongs to the state visit the item is in now."""
    return item.state == state and item.visit == visit


def _awaits(item: Item, event: CommandSucceeded | CommandFailed) -> bool:
    """Whether the item still waits for this result: the stale-result guard, once.

    It must come from the current state visit and, outside parallel branches (``parallel``
    checks a branch's own attempt), from the attempt the item expects, with no retry pending.
    """
    if not _in_visit(item, event.state, event.visit):
        return False
    return event.branch is not None or (event.attempt == item.attempt and not item.retrying)


def _on_success(builder: StepBuilder, event: CommandSucceeded) -> StepResult:
    """Keep the command's result in the context and fire ``done``."""
    if event.branch is not None:
        return on_branch_success(builder, event)
    command = _command_of(builder.state)
    builder.set((command.result,), event.result)
    builder.save_conversations(event.conversation)
    fire(
        builder,
        DONE_EVENT,
        Hop(
            event=DONE_EVENT,
            kind="command",
            command=command.name,
            attempt=event.attempt,
            duration=event.duration,
            usage=event.usage,
            note=event.note,
            output=event.result,
        ),
    )
    return builder.result()


def _on_failure(builder: StepBuilder, event: CommandFailed) -> StepResult:
    """Retry the command within its budget; past it, fire ``error``."""
    if event.branch is not None:
        return on_branch_failure(builder, event)
    command = _command_of(builder.state)
    error = {"kind": str(event.error_kind), "message": event.message}
    if event.timed_out:
        error["cause"] = TIMEOUT_CAUSE
    hop = Hop(
        event=ERROR_EVENT,
        kind="command",
        command=command.name,
        attempt=event.attempt,
        duration=event.duration,
        error=error,
        usage=event.usage,
        retry_after=event.retry_after,
        note=event.note,
    )
    if event.error_kind is ErrorKind.BUDGET:
        stop_cut_short(builder, hop)
    elif should_retry(command.retry, event.error_kind, event.attempt):
        schedule_retry(builder, command, event.attempt, hop)
    elif not (event.timed_out and back_on_timeout(builder, command, hop)):
        fire(builder, ERROR_EVENT, hop)
    return builder.result()


def _on_external(builder: StepBuilder, event: External) -> StepResult:
    """Fire a sender's event; anything that keeps it from firing cleanly refuses it.

    Data that breaks the event's declared schema, or a guard that cannot be evaluated on it,
    is the sender's mistake: InvalidEventError, and the item stays as it was (never escalated).
    """
    _check_data(builder, event)
    kept = buffer.keep_early(builder, event)
    if kept is not None:
        return kept
    state = builder.state
    if state.task is not None:
        raise InvalidEventError(
            f"state {state.name!r} is a human task; decide its task instead "
            f"(statewise task decide, or POST /api/tasks/{{id}}/decide)"
        )
    accepted = [
        t.on for t in state.transitions if t.after is None and t.on not in (DONE_EVENT, ERROR_EVENT)
    ]
    if event.name not in accepted:
        options = ", ".join(dict.fromkeys(accepted)) or "none"
        raise InvalidEventError(
            f"item {builder.original.key!r} is in state {state.name!r}, which does not accept "
            f"event {event.name!r} (it accepts: {options})"
        )
    builder.set((event.name,), event.data)
    hop = Hop(
        event=event.name,
        kind="external",
        actor=event.actor,
        event_data=event.data,
        output=event.data,
    )
    try:
        fired = fire(builder, event.name, hop, strict=True)
    except ConditionError as exc:
        raise InvalidEventError(
            f"event {event.name!r} for item {builder.original.key!r} was refused: {exc}; "
            f"nothing changed"
        ) from None
    if not fired:
        raise InvalidEventError(
            f"event {event.name!r} reached item {builder.original.key!r} in state {state.name!r}, "
            f"but none of its conditions held, so nothing changed"
        )
    return builder.result()


def _check_data(builder: StepBuilder, event: External) -> None:
    """Refuse data that does not fit the ``data`` schema the event declares, if it declares one."""
    spec = (builder.definition.events or {}).get(event.name)
    if spec is None or spec.data is None:
        return
    problems = schema_problems(spec.data, event.data)
    if problems:
        raise InvalidEventError(
            f"event {event.name!r} for item {builder.original.key!r} was refused: its data does "
            f"not fit the event's schema ({'; '.join(problems)}); nothing changed"
        )


def _on_timer(builder: StepBuilder, event: TimerFired) -> StepResult:
    """A task's reminder or due time, a retry's backoff, or a transition's ``after``."""
    item = builder.original
    if event.name in (TASK_DUE_TIMER, TASK_REMINDER_TIMER) and event.branch is not None:
        return on_branch_task_timer(builder, event)
    if event.name in (TASK_DUE_TIMER, TASK_REMINDER_TIMER):
        return on_task_timer(builder, event)
    if event.name == RETRY_TIMER:
        if event.branch is not None:
            return on_branch_retry(builder, event.branch)
        if not item.retrying:
            return StepResult(item, Outcome.IGNORED)
        command = _command_of(builder.state)
        builder.record(
            Hop(event=RETRY_TIMER, kind="timer", command=command.name, attempt=item.attempt + 1),
            to_state=item.state,
        )
        run_command(builder, command, item.attempt + 1)
        return builder.result()
    hop = Hop(event=event.name, kind="timer")
    if not fire(builder, event.name, hop):
        builder.record(replace(hop, note="timer fired but no transition's condition held"))
    return builder.result()


def _command_of(state: State) -> Command:
    if state.command is None:
        raise InvalidEventError(f"state {state.name!r} has no command")
    return state.command
