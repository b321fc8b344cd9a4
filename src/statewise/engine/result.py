"""What a step returns, and the cause of a move that its audit row records."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from statewise.engine.effects import Effect, SetContext
from statewise.engine.item import HistoryRecord, Item

JSON = Any


class Outcome(StrEnum):
    """What a step did, so the shell knows whether there is anything to commit."""

    MOVED = "moved"
    STAYED = "stayed"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class StepResult:
    """Everything one step decided; nothing has happened until the store commits it."""

    item: Item
    outcome: Outcome
    effects: tuple[Effect, ...] = ()
    patches: tuple[SetContext, ...] = ()
    history: tuple[HistoryRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class Hop:
    """What caused a move, carried into its audit row.

    ``output`` is what the step consumed (a result, an event's data, a decision): it goes on
    this hop's row alone, never on the rows of the states the step passes through after it.
    ``creates_item`` marks the hop that brings a new item into its initial state: it leaves
    no state, so its audit row has no ``from_state`` and nothing is cancelled.
    """

    event: str
    kind: str
    actor: str = "system"
    creates_item: bool = False
    command: str | None = None
    branch: str | None = None
    attempt: int | None = None
    duration: float | None = None
    error: dict[str, str] | None = None
    event_data: dict[str, JSON] | None = None
    note: str | None = None
    usage: dict[str, JSON] | None = None
    retry_after: float | None = None
    decision: dict[str, JSON] | None = None
    output: JSON = None
    # The guards found false when no transition matched (a matched one's are in its Selection).
    rejected: tuple[JSON, ...] = ()
    budget: dict[str, JSON] | None = None
