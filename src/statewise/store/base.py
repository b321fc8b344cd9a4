"""The store contract every dialect fulfils, and the records that cross it.

One public call per step owns the transaction: ``commit`` writes the new item row, the context
changes, the audit rows, the timers and the outbox entries of each step together, or not at
all. A step computed from an out-of-date item (its ``seq`` moved on) is refused as STALE, which
is the fencing that keeps a slow worker from overwriting a newer step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum

from statewise.definition.model import Definition
from statewise.engine.effects import RunCommand
from statewise.engine.events import TimerFired
from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.engine.result import StepResult


class CommitStatus(StrEnum):
    """What became of one step handed to ``commit``."""

    COMMITTED = "committed"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class StepCommit:
    """One step to make durable.

    ``expected_seq`` is the ``seq`` of the item the step was computed from (None for a new
    item); ``outbox_id``/``timer_id`` name the work this step consumed, deleted in the same
    transaction so it is done exactly once.
    """

    result: StepResult
    expected_seq: int | None
    outbox_id: int | None = None
    timer_id: int | None = None


@dataclass(frozen=True, slots=True)
class ClaimedCommand:
    """A command from the outbox, leased to one worker until ``lease_until``."""

    outbox_id: int
    workflow: str
    key: str
    effect: RunCommand


@dataclass(frozen=True, slots=True)
class Lease:
    """Commands a commit queues are leased at once to the runner that will perform them."""

    owner: str
    until: float


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """What became of one step, and the commands it queued that are leased to the committer."""

    status: CommitStatus
    commands: tuple[ClaimedCommand, ...] = ()


@dataclass(frozen=True, slots=True)
class DueTimer:
    """A timer that came due, leased so that only one worker fires it."""

    timer_id: int
    workflow: str
    key: str
    event: TimerFired


@dataclass(frozen=True, slots=True)
class StateCount:
    """How many items sit in one state, and since when the oldest of them."""

    workflow: str
    version: int
    state: str
    status: ItemStatus
    count: int
    oldest_entered_at: float


@dataclass(frozen=True, slots=True)
class CostRow:
    """What the model calls of one (workflow, state, agent, model) cost, summed."""

    workflow: str
    state: str
    agent: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float | None


@dataclass(frozen=True, slots=True)
class StoredWorkflow:
    """A definition as it was registered, with the command modules it ran with."""

    name: str
    version: int
    source: str
    file: str
    commands: tuple[str, ...]


class Store(ABC):
    """Durable home of items, their context, history, timers and outbox."""

    @abstractmethod
    def running(self, owner: str) -> AbstractAsyncContextManager[None]:
        """Hold the right to execute work as ``owner``, recovering what a dead runner left."""

    @abstractmethod
    async def save_workflow(
        self, definition: Definition, file: str, commands: Sequence[str]
    ) -> None:
        """Remember a definition's source so later commands can run its items."""

    @abstractmethod
    async def workflows(self) -> list[StoredWorkflow]:
        """Every registered definition, newest version last."""

    @abstractmethod
    async def commit(
        self, commits: Sequence[StepCommit], lease: Lease | None = None
    ) -> list[CommitOutcome]:
        """Make steps durable in one transaction; each step is all-or-nothing on its own.

        With ``lease``, the commands the steps queue are leased to ``lease.owner`` and returned,
        so a runner performs its own follow-up work without claiming it back from the outbox.
        Work rows the steps consumed are deleted only while still leased to that owner.
        """

    @abstractmethod
    async def get_item(self, workflow: str | None, key: str) -> Item:
        """The item with its full context; NotFoundError names what was missing."""

    @abstractmethod
    async def get_items(self, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        """Several items by (workflow, key) in one round trip."""

    @abstractmethod
    async def claim_commands(
        self, owner: str, limit: int, now: float, lease_seconds: float
    ) -> list[ClaimedCommand]:
        """Lease up to ``limit`` ready commands to ``owner``."""

    @abstractmethod
    async def claim_timers(
        self, owner: str, limit: int, now: float, lease_seconds: float
    ) -> list[DueTimer]:
        """Lease up to ``limit`` timers due by ``now`` to ``owner``."""

    @abstractmethod
    async def extend_leases(self, owner: str, outbox_ids: Sequence[int], until: float) -> None:
        """Heartbeat: keep commands that are still running leased to ``owner``."""

    @abstractmethod
    async def release(self, outbox_ids: Sequence[int], timer_ids: Sequence[int]) -> None:
        """Give leased work back at once (a stale step, a worker shutting down)."""

    @abstractmethod
    async def next_timer_due(self) -> float | None:
        """When the earliest pending timer comes due, or None if there is none."""

    @abstractmethod
    async def pending_commands(self) -> int:
        """How many commands are waiting or running."""

    @abstractmethod
    async def state_counts(self, workflow: str | None = None) -> list[StateCount]:
        """Items per (workflow, version, state, status)."""

    @abstractmethod
    async def list_items(
        self,
        *,
        workflow: str | None = None,
        state: str | None = None,
        status: ItemStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Item]:
        """Items matching the filters, longest in their state first, without their context."""

    @abstractmethod
    async def history(self, workflow: str | None, key: str) -> list[HistoryRecord]:
        """The audit trail of one item, in order."""

    @abstractmethod
    async def costs(self, workflow: str | None = None) -> list[CostRow]:
        """Model usage from the audit trail, summed by workflow, state, agent and model."""

    @abstractmethod
    async def conversations(self, workflow: str, key: str) -> dict[str, str]:
        """Every agent's stored conversation with one item, as serialised messages by agent."""

    @abstractmethod
    async def save_conversation(self, workflow: str, key: str, agent: str, messages: str) -> None:
        """Replace one agent's conversation with one item (already pruned to its budget)."""

    @abstractmethod
    async def cached_response(self, cache_key: str) -> str | None:
        """A model response stored under ``cache_key``, if any (the optional response cache)."""

    @abstractmethod
    async def cache_response(self, cache_key: str, response: str) -> None:
        """Keep a model response for re-runs with the same model, prompt, input and schema."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and locks."""
