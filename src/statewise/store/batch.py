"""Turning a batch of accepted steps into one set of row writes, shared by every dialect.

A batch holds many steps, sometimes several for one item. Writing them step by step costs a
round of statements per step; instead the batch is folded in memory, in step order, into one
list of rows per statement, which a dialect then runs with ``executemany``. Folding keeps the
meaning of the steps in order: a later context write replaces an earlier one at the same or a
deeper path, a ``CancelTimers`` drops the timers the item's earlier steps started and a
``CancelCommands`` the commands they queued.

Each step is encoded on its own first (``encode_step``): a value that is not JSON fails there,
before anything of that step reaches the shared plan, so it rejects that step alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from statewise.engine.effects import (
    CancelCommands,
    CancelTimers,
    CloseTask,
    Effect,
    OpenTask,
    RemindTask,
    RunCommand,
    SaveConversation,
    StartTimer,
)
from statewise.engine.events import TimerFired
from statewise.engine.item import Item
from statewise.engine.result import StepResult
from statewise.store import codec
from statewise.store.base import StepCommit
from statewise.store.tally import Tally

ContextRow = tuple[int, str, str]
HistoryRow = tuple[int, int, float, str | None, str, str, str, str | None, str | None]
EncodedRecord = tuple[int, float, str | None, str, str, str, str | None, str | None]
TimerRow = tuple[int, float, str]
ConversationRow = tuple[int, str, str, float]


class QueuedCommand(NamedTuple):
    """A command a step queued, with its encoded outbox payload and its step's position."""

    item_id: int
    item: Item
    effect: RunCommand
    payload: str
    position: int


class EncodedStep(NamedTuple):
    """One step's rows with every value already encoded.

    ``effects`` pair each effect with its payload: the timer's event, the command, the
    conversation; empty for the cancels. ``payloads`` are the large outputs the history rows
    name by hash, as (hash, JSON text). (Named tuples: one of each is built per step.)
    """

    values: tuple[Any, ...]
    context: list[tuple[str, str, bool]]
    history: list[EncodedRecord]
    effects: list[tuple[Effect, str]]
    payloads: list[tuple[str, str]]


def encode_step(result: StepResult) -> EncodedStep:
    """Encode every row of one step; TypeError or ValueError when a value is not JSON.

    A row's output is usually the very value a patch stored in the context (a result, an
    event's data, a decision): its JSON text is then reused, not encoded a second time.
    """
    encoded: dict[int, str] = {}
    context = []
    for patch in result.patches:
        text = codec.dumps(patch.value)
        encoded[id(patch.value)] = text
        context.append((codec.encode_path(patch.path), text, patch.prune))
    history: list[EncodedRecord] = []
    payloads: list[tuple[str, str]] = []
    for r in result.history:
        inline = digest = None
        detail = codec.encode_detail(r)
        if r.output is not None:
            text = encoded.get(id(r.output)) or codec.dumps(r.output)
            inline, digest = codec.output_columns(text, detail)
            if digest is not None:
                payloads.append((digest, text))
        history.append((r.seq, r.at, r.from_state, r.to_state, r.event, detail, inline, digest))
    return EncodedStep(
        codec.item_values(result.item),
        context,
        history,
        [(effect, _payload(effect)) for effect in result.effects],
        payloads,
    )


def _payload(effect: Effect) -> str:
    if isinstance(effect, StartTimer):
        event = TimerFired(effect.name, effect.state, effect.visit, effect.branch)
        return codec.encode_timer(event)
    if isinstance(effect, RunCommand):
        return codec.encode_effect(effect)
    if isinstance(effect, SaveConversation):
        if not isinstance(effect.messages, str):
            raise TypeError(f"conversation of agent {effect.agent!r} is not serialised text")
        return effect.messages
    if isinstance(effect, CloseTask):
        return codec.dumps(effect.data)
    return ""


@dataclass
class WritePlan:
    """Every row one batch writes, grouped by statement."""

    items: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    context_clears: list[tuple[int, str]] = field(default_factory=list)
    context_sets: dict[int, dict[str, str]] = field(default_factory=dict)
    history: list[HistoryRow] = field(default_factory=list)
    payloads: dict[tuple[int, str], str] = field(default_factory=dict)
    timer_clears: set[int] = field(default_factory=set)
    timers: dict[int, list[TimerRow]] = field(default_factory=dict)
    command_clears: set[int] = field(default_factory=set)
    commands: list[QueuedCommand] = field(default_factory=list)
    conversations: dict[tuple[int, str], ConversationRow] = field(default_factory=dict)
    consumed_outbox: list[tuple[int, int]] = field(default_factory=list)
    consumed_timers: list[tuple[int, int]] = field(default_factory=list)
    task_opens: list[tuple[Any, ...]] = field(default_factory=list)
    task_closes: list[tuple[Any, ...]] = field(default_factory=list)
    task_reminders: list[tuple[Any, ...]] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)

    def add(self, item_id: int, entry: StepCommit, rows: EncodedStep, position: int) -> None:
        """Fold one accepted, encoded step (``position`` in its batch) into the plan, in order."""
        item = entry.result.item
        self.consume(entry, item_id)
        self.items[item_id] = rows.values
        for path, value, prune in rows.context:
            self._set_context(item_id, path, value, prune)
        self.history.extend((item_id, *row) for row in rows.history)
        for digest, text in rows.payloads:
            self.payloads.setdefault((item_id, digest), text)
        for effect, payload in rows.effects:
            if isinstance(effect, RunCommand):
                self.commands.append(QueuedCommand(item_id, item, effect, payload, position))
            elif isinstance(effect, CancelTimers):
                self.timer_clears.add(item_id)
                self.timers.pop(item_id, None)
            elif isinstance(effect, StartTimer):
                self.timers.setdefault(item_id, []).append((item_id, effect.due_at, payload))
            elif isinstance(effect, CancelCommands):
                self.command_clears.add(item_id)
                self.commands = [c for c in self.commands if c.item_id != item_id]
            elif isinstance(effect, SaveConversation):
                row = (item_id, effect.agent, payload, item.updated_at)
                self.conversations[(item_id, effect.agent)] = row
            else:
                self._task(item_id, item.updated_at, effect, payload)

    def _task(self, item_id: int, now: float, effect: Effect, payload: str) -> None:
        """Human task rows: opened, closed and reminded in the order the steps did so."""
        if isinstance(effect, OpenTask):
            self.task_opens.append(
                (item_id, effect.state, effect.visit, effect.queue, effect.role, now,
                 effect.due_at, effect.remind_at, effect.branch or "")
            )  # fmt: skip
        elif isinstance(effect, CloseTask):
            decided = effect.status == "decided"
            self.task_closes.append(
                (effect.status, effect.actor if decided else None, now, effect.outcome,
                 effect.comment, payload if decided else None, item_id, effect.state,
                 effect.visit, effect.branch or "")
            )  # fmt: skip
        elif isinstance(effect, RemindTask):
            self.task_reminders.append(
                (now, item_id, effect.state, effect.visit, effect.branch or "")
            )

    def consume(self, entry: StepCommit, item_id: int) -> None:
        """The outbox or timer row the step used up is deleted with it.

        Rows are kept as (id, item id): a row id another item has since been given is never
        deleted.
        """
        if entry.outbox_id is not None:
            self.consumed_outbox.append((entry.outbox_id, item_id))
        if entry.timer_id is not None:
            self.consumed_timers.append((entry.timer_id, item_id))

    def _set_context(self, item_id: int, path: str, value: str, prune: bool) -> None:
        pending = self.context_sets.setdefault(item_id, {})
        prefix = path + codec.PATH_SEPARATOR
        for deeper in [p for p in pending if p.startswith(prefix)]:
            del pending[deeper]
        pending.pop(path, None)
        pending[path] = value
        if prune:  # rows below it may be stored: the range delete removes them
            self.context_clears.append((item_id, path))

    def context_rows(self) -> list[ContextRow]:
        """Context values to upsert, in the order they were written."""
        return [
            (item_id, path, value)
            for item_id, pending in self.context_sets.items()
            for path, value in pending.items()
        ]

    def payload_rows(self) -> list[tuple[int, str, str]]:
        """Large outputs to keep, once per item and hash (the store skips those it has)."""
        return [(item_id, digest, text) for (item_id, digest), text in self.payloads.items()]

    def timer_rows(self) -> list[TimerRow]:
        """Timers to insert, after the clears have run."""
        return [row for rows in self.timers.values() for row in rows]

    def wakes_others(self, leased: bool) -> bool:
        """Whether the batch queued work another worker could take (its own is leased)."""
        return bool(self.timers) or (bool(self.commands) and not leased)
