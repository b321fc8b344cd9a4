"""The store contract every dialect fulfils, and the records that cross it.

One public call per step owns the transaction: ``commit`` writes the new item row, the context
changes, the audit rows, the timers, the outbox entries and the step's side records (agent
conversations) of each step together, or not at all.

Fencing, the rule that keeps many writers (runners, worker processes, ``statewise send``, the
HTTP service) correct:

- Every step is fenced on the item's ``seq`` read inside the commit's own transaction, steps
  the engine judged IGNORED included. A step computed from an out-of-date copy is refused as
  STALE and writes nothing, not even the deletion of the work row it consumed: nothing decided
  from a possibly-old copy may delete work. The caller re-reads the item and steps again.
- A step that consumes a work row (``outbox_id``/``timer_id``) committed with a ``lease`` is
  accepted only while that row still exists and is leased to ``lease.owner``; otherwise it is
  LOST (another worker took the row over) and writes nothing. The caller drops the event.
- A step whose rows cannot be encoded (a value that is not JSON) is REJECTED alone, with the
  reason in ``CommitOutcome.error``; the other steps of the batch still commit. The caller
  quarantines the item (``engine.fail_item``) in a fresh commit.

Invariant, checked after every concurrency and crash test: every ``active`` item has a pending
command or timer, or is waiting (``stuck_items`` lists the ones that break it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
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
    LOST = "lost"
    REJECTED = "rejected"


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
    error: str | None = None


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
    """What the model calls of one (workflow, state, agent, model) cost, summed.

    ``cost`` sums only the calls with a known price and is None when none had one;
    ``unpriced_calls`` counts the others, so an unknown price is never shown as 0.
    """

    workflow: str
    state: str
    agent: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost: float | None
    unpriced_calls: int = 0


@dataclass(frozen=True, slots=True)
class StoredWorkflow:
    """A definition as it was registered, with the command modules it ran with."""

    name: str
    version: int
    source: str
    file: str
    commands: tuple[str, ...]
    content_hash: str = ""


@dataclass(frozen=True, slots=True)
class StuckItem:
    """An active item with no pending command or timer: a broken invariant, never expected."""

    workflow: str
    key: str
    state: str
    seq: int


class Store(ABC):
    """Durable home of items, their context, history, timers and outbox."""

    @abstractmethod
    def running(self, owner: str) -> AbstractAsyncContextManager[None]:
        """Hold the right to execute work as ``owner``, recovering what a dead runner left.

        SQLite: one runner per file (a lock file). PostgreSQL: any number of workers; work a
        dead worker held comes back when its lease expires.
        """

    @abstractmethod
    async def save_workflow(
        self, definition: Definition, file: str, commands: Sequence[str]
    ) -> None:
        """Remember a definition's source so later commands can run its items.

        A stored (name, version) is immutable: saving the same version with a different
        content hash raises VersionConflictError saying what differs and to bump ``version``.
        """

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
        self,
        owner: str,
        limit: int,
        now: float,
        lease_seconds: float,
        versions: Collection[tuple[str, int]],
    ) -> list[ClaimedCommand]:
        """Lease up to ``limit`` ready commands of items on ``versions`` to ``owner``.

        A worker claims only work of the (workflow, version)s it holds, and never a command
        of an item whose other commands are leased to another owner, so one item's work runs
        on one worker at a time.
        """

    @abstractmethod
    async def claim_timers(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_seconds: float,
        versions: Collection[tuple[str, int]],
    ) -> list[DueTimer]:
        """Lease up to ``limit`` timers due by ``now`` of items on ``versions`` to ``owner``."""

    @abstractmethod
    async def wait_for_work(self, timeout: float) -> None:
        """Return when new work may be ready (another writer queued some), or after ``timeout``.

        PostgreSQL wakes on LISTEN/NOTIFY; SQLite simply sleeps (its runner polls).
        """

    @abstractmethod
    async def unknown_version_items(self, limit: int) -> list[Item]:
        """Active or waiting items whose (workflow, version) the store holds no definition of.

        No worker can ever run them; the runner quarantines each one alone.
        """

    @abstractmethod
    async def stuck_items(self) -> list[StuckItem]:
        """Active items with no pending command and no timer: the invariant's violations."""

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
    async def pending_commands(self, versions: Collection[tuple[str, int]] | None = None) -> int:
        """How many commands are waiting or running (of items on ``versions``, when given)."""

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
    async def cached_response(self, cache_key: str) -> str | None:
        """A model response stored under ``cache_key``, if any (the optional response cache)."""

    @abstractmethod
    async def cache_response(self, cache_key: str, response: str) -> None:
        """Keep a model response for re-runs with the same model, prompt, input and schema."""

    @abstractmethod
    async def schema_version(self) -> int:
        """The migration the database is at (every one is applied when the store opens)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and locks."""
