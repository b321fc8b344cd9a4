"""Events: what makes an item move. Frozen, tagged by ``kind``, serialised by one TypeAdapter.

``state`` and ``visit`` on command and timer events name the state visit that asked for the
work; an event whose visit is over (the item moved on meanwhile) is stale and ignored, which is
how a late command result or an old timer can never move an item twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Discriminator, TypeAdapter

from statewise.definition.model import ErrorKind

JSON = Any


@dataclass(frozen=True, slots=True)
class Start:
    """The item enters the workflow with its initial data."""

    data: dict[str, JSON] = field(default_factory=dict)
    actor: str = "system"
    kind: Literal["start"] = "start"


@dataclass(frozen=True, slots=True)
class CommandSucceeded:
    """A command finished and returned a JSON result.

    ``conversation`` is what an agent proposes to keep of its conversation with the item (by
    agent); the step that accepts the result saves it in its own transaction. ``note`` is a
    remark for the audit row (a retry that had to wait for an earlier attempt's thread).
    """

    state: str
    visit: int
    attempt: int
    result: JSON
    duration: float = 0.0
    branch: str | None = None
    usage: dict[str, JSON] | None = None
    conversation: dict[str, str] | None = None
    note: str | None = None
    kind: Literal["command_succeeded"] = "command_succeeded"


@dataclass(frozen=True, slots=True)
class CommandFailed:
    """A command attempt failed; ``error_kind`` decides whether it is retried.

    ``retry_after`` is the least wait the failure asked for (a provider's Retry-After).
    ``timed_out`` says it ran out of time (its timeout, or a ``TimeoutError`` or
    ``TimedOutError`` it raised): a last attempt that did may send the item back
    (``on_timeout``).
    """

    state: str
    visit: int
    attempt: int
    error_kind: ErrorKind
    message: str
    duration: float = 0.0
    branch: str | None = None
    usage: dict[str, JSON] | None = None
    retry_after: float | None = None
    note: str | None = None
    kind: Literal["command_failed"] = "command_failed"
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class External:
    """An event sent by a user or another system (an approval, a customer reply)."""

    name: str
    data: dict[str, JSON] = field(default_factory=dict)
    actor: str = "api"
    kind: Literal["external"] = "external"


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A durable timer came due: a transition's ``after`` deadline or a retry's backoff."""

    name: str
    state: str
    visit: int
    branch: str | None = None
    kind: Literal["timer_fired"] = "timer_fired"


@dataclass(frozen=True, slots=True)
class TaskDecided:
    """A person decided the human task of one state visit with one of its outcomes.

    The shell has already checked the actor's role and claim and validated ``data`` against
    the task's form; the step checks that the visit is still open and the outcome allowed.
    ``branch`` names the parallel branch whose task it is (``branch`` or ``branch.step``).
    """

    state: str
    visit: int
    outcome: str
    actor: str
    comment: str = ""
    data: dict[str, JSON] = field(default_factory=dict)
    task_id: int | None = None
    branch: str | None = None
    kind: Literal["task_decided"] = "task_decided"


class Operation(StrEnum):
    """What an operator may do to an item whatever state it is in."""

    RETRY = "retry"
    MOVE = "move"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Operate:
    """An operator's redrive or bulk action on one item, with the reason for the audit trail.

    ``target`` is the state to enter: for MOVE the operator's choice, for RETRY the state
    whose command failed (the shell reads it from the audit trail). Work the item had pending
    is dropped; PAUSE keeps it in its state without work until RESUME enters it afresh.
    """

    operation: Operation
    reason: str
    actor: str
    target: str | None = None
    kind: Literal["operate"] = "operate"


RETRY_TIMER = "retry"
# The timers a human task's due time and reminder start.
TASK_DUE_TIMER = "task_due"
TASK_REMINDER_TIMER = "task_reminder"

Event = Annotated[
    Start | CommandSucceeded | CommandFailed | External | TimerFired | TaskDecided | Operate,
    Discriminator("kind"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
