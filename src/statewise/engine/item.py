"""An item's run-time state and the audit records a step writes about it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter

from statewise.engine.budget import NOTHING_SPENT, Spent

JSON = Any


class ItemStatus(StrEnum):
    """Where an item stands overall; derived from the kind of state it is in.

    ``FAILED`` is an item stopped alone, holding no pending work, with its audit trail saying
    why: a defect in its workflow or a command (``statewise.engine.defects``), or something it
    carries that makes stepping it impossible (an unknown version, a value that cannot be
    stored, a loop past every budget), for which it is quarantined. ``PAUSED`` and
    ``CANCELLED`` items were stopped by an operator and hold no pending work either: a paused
    item resumes into its state afresh; a cancelled one moves again only when redriven.
    """

    ACTIVE = "active"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class BranchStatus(StrEnum):
    """Progress of one branch of a parallel state."""

    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    WAITING = "waiting"  # for a person's decision on the branch's task
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BranchRun:
    """One branch of the parallel state the item is in; ``step`` is where its sequence is."""

    name: str
    status: BranchStatus = BranchStatus.PENDING
    attempt: int = 0
    input: JSON = None
    step: int = 0


@dataclass(frozen=True, slots=True)
class BufferedEvent:
    """An external event that reached the item before a state that accepts it (``buffer``).

    ``seq`` is the audit row that recorded it; ``expires_at`` is when it is given up.
    """

    name: str
    data: dict[str, JSON]
    actor: str
    seq: int
    received_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Item:
    """One business entity in a workflow: where it is, what it has learned, how it got here.

    ``seq`` counts committed steps (audit rows); the store uses it as a fencing token, so a
    step computed from an out-of-date copy of the item can never be committed. ``attempt`` is
    the command attempt in flight; ``retrying`` says it failed and a backoff timer will start
    the next one, so a duplicate failure or timer can never add attempts. ``spent`` is what its
    model calls have cost so far, by state, which its budgets are checked against.
    ``buffer`` holds the events that arrived early, oldest first, until a state takes them.
    ``came_from`` is the state it entered its current state from (None: it started there),
    where a command's ``on_timeout: previous`` sends it back.
    """

    key: str
    workflow: str
    version: int
    state: str
    status: ItemStatus
    entered_at: float
    context: Mapping[str, JSON] = field(default_factory=dict)
    visits: Mapping[str, int] = field(default_factory=dict)
    attempt: int = 0
    retrying: bool = False
    branches: tuple[BranchRun, ...] = ()
    seq: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    spent: Spent = NOTHING_SPENT
    buffer: tuple[BufferedEvent, ...] = ()
    came_from: str | None = None

    @property
    def visit(self) -> int:
        """How many times the item has entered its current state, this time included."""
        return self.visits.get(self.state, 0)


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One audit row: a hop between states, a retry, or a branch finishing.

    ``condition`` and ``values`` say which guard decided and what it read, so every decision
    can be explained after the fact; ``usage`` says what the command cost (model, tokens,
    cost, tool calls) when it called a model. ``dwell`` is how long the item had been in
    ``from_state`` when it left it, so time-in-state percentiles need no second row.
    ``decision`` is a person's decision of a human task: task id, outcome, comment, form data,
    and for a task that reviews an agent stage its ``review`` (agent, state, visit, verdict,
    score).

    ``output`` is what the row's step consumed: a command's or agent's result, an external
    event's data, a task's decision, an item's start data. Only the row that consumed it
    carries it, with ``visit`` (of ``from_state``): with ``branch`` and ``attempt`` that keys
    it, so every round of a loop keeps its own. ``rejected`` lists the guards tried and found
    false before the transition taken (``{condition, values}`` each), so an ``else`` says why.
    ``budget`` names the budget that sent the item elsewhere: scope, state, measure, spent
    and limit.
    """

    seq: int
    at: float
    from_state: str | None
    to_state: str
    event: str
    event_kind: str
    actor: str = "system"
    transition: int | None = None
    condition: str | None = None
    values: dict[str, JSON] = field(default_factory=dict)
    command: str | None = None
    branch: str | None = None
    attempt: int | None = None
    duration: float | None = None
    error: dict[str, str] | None = None
    note: str | None = None
    usage: dict[str, JSON] | None = None
    dwell: float | None = None
    decision: dict[str, JSON] | None = None
    output: JSON = None
    visit: int | None = None
    rejected: list[dict[str, JSON]] | None = None
    budget: dict[str, JSON] | None = None


HISTORY_ADAPTER: TypeAdapter[HistoryRecord] = TypeAdapter(HistoryRecord)
BRANCHES_ADAPTER: TypeAdapter[tuple[BranchRun, ...]] = TypeAdapter(tuple[BranchRun, ...])
