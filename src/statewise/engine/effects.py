"""Effects and context patches: what a step asks the shell to do, as plain data.

The engine never performs I/O. A step returns effects (run this command, start that timer)
and patches (set this context key); the store commits them in the step's one transaction and
the worker performs the commands afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Discriminator, TypeAdapter

JSON = Any


@dataclass(frozen=True, slots=True)
class RunCommand:
    """Run registered command ``command`` for one state visit (and branch), this attempt.

    ``tokens_left`` is what the item's budgets still allow an agent's run to use (None: no
    token budget); the agent stops the run there, and the step sends the item on.
    """

    command: str
    state: str
    visit: int
    attempt: int
    timeout: float | None
    branch: str | None = None
    input: JSON = None
    tokens_left: int | None = None
    kind: Literal["run_command"] = "run_command"

    def idempotency_key(self, item_key: str) -> str:
        """Stable per (item, state visit, branch, attempt) so side effects can be de-duplicated."""
        branch = f"/{self.branch}" if self.branch is not None else ""
        return f"{item_key}:{self.state}#{self.visit}{branch}:{self.attempt}"


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Fire ``TimerFired(name, state, visit, branch)`` at ``due_at`` (epoch seconds)."""

    name: str
    due_at: float
    state: str
    visit: int
    branch: str | None = None
    kind: Literal["start_timer"] = "start_timer"


@dataclass(frozen=True, slots=True)
class CancelTimers:
    """Drop the item's pending timers: the state that set them has been left."""

    kind: Literal["cancel_timers"] = "cancel_timers"


@dataclass(frozen=True, slots=True)
class CancelCommands:
    """Drop the item's queued commands (all but the one this step consumed): it was failed."""

    kind: Literal["cancel_commands"] = "cancel_commands"


@dataclass(frozen=True, slots=True)
class SaveConversation:
    """Replace one agent's stored conversation with the item, in the step's transaction.

    An agent's attempt only proposes its conversation; it is kept only if the step that
    accepts the attempt's result commits, so an ignored or lost attempt leaves no trace.
    """

    agent: str
    messages: str
    kind: Literal["save_conversation"] = "save_conversation"


@dataclass(frozen=True, slots=True)
class OpenTask:
    """Open the human task of one state visit; the store gives it its durable id.

    ``due_at`` and ``remind_at`` are epoch seconds (the step also starts their timers).
    ``branch`` names the parallel branch (``branch`` or ``branch.step``) whose task it is;
    None for a human state's own task.
    """

    state: str
    visit: int
    queue: str
    role: str
    due_at: float | None = None
    remind_at: float | None = None
    branch: str | None = None
    kind: Literal["open_task"] = "open_task"


TaskClosing = Literal["decided", "expired", "cancelled"]


@dataclass(frozen=True, slots=True)
class CloseTask:
    """Close the open task of one state visit: decided, expired or cancelled.

    A decision carries who made it, the outcome, the comment and the form data; a task
    cancelled because its parallel state's join was met carries why, as its comment.
    """

    state: str
    visit: int
    status: TaskClosing
    actor: str = "system"
    outcome: str | None = None
    comment: str | None = None
    data: JSON = None
    branch: str | None = None
    kind: Literal["close_task"] = "close_task"


@dataclass(frozen=True, slots=True)
class RemindTask:
    """Mark the open task of one state visit (and branch) as reminded: its reminder passed."""

    state: str
    visit: int
    branch: str | None = None
    kind: Literal["remind_task"] = "remind_task"


TaskEffect = OpenTask | CloseTask | RemindTask

Effect = Annotated[
    RunCommand
    | StartTimer
    | CancelTimers
    | CancelCommands
    | SaveConversation
    | OpenTask
    | CloseTask
    | RemindTask,
    Discriminator("kind"),
]
EFFECT_ADAPTER: TypeAdapter[Effect] = TypeAdapter(Effect)


@dataclass(frozen=True, slots=True)
class SetContext:
    """Set ``context[path[0]][path[1]]... = value``; the store writes only this change.

    ``prune`` says rows below ``path`` may exist and must go: only a non-empty object there
    can have any, so the builder clears it for every other write, sparing the store a range
    delete per patch. It is a storage hint, left out of equality; hand-built patches keep the
    safe default.
    """

    path: tuple[str, ...]
    value: JSON
    prune: bool = field(default=True, compare=False)


def apply_patches(context: Mapping[str, JSON], patches: tuple[SetContext, ...]) -> dict[str, JSON]:
    """Return a new context with ``patches`` applied, copying only the dicts on each path."""
    result = dict(context)
    for patch in patches:
        set_path(result, patch.path, patch.value)
    return result


def set_path(target: dict[str, JSON], path: tuple[str, ...], value: JSON) -> None:
    """Set ``value`` at ``path`` in ``target``, copying every nested dict on the way.

    ``target`` itself is changed; the nested dicts are copied, so they may be shared with
    another context without that one seeing the change.
    """
    head, *rest = path
    if not rest:
        target[head] = value
        return
    child = target.get(head)
    child = dict(child) if isinstance(child, dict) else {}
    target[head] = child
    set_path(child, tuple(rest), value)
