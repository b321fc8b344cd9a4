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
  Later steps of the same item in the batch are STALE as well: they were computed on top of
  the refused one, even when their expected ``seq`` happens to match the stored one.
- A step that consumes a work row (``outbox_id``/``timer_id``) committed with a ``lease`` is
  accepted only while that row still exists and is leased to ``lease.owner``; otherwise it is
  LOST (another worker took the row over) and writes nothing. The caller drops the event.
- A step carrying a ``TaskGuard`` (a person deciding a human task) is accepted only if, read
  under lock in the same transaction, the task is still open and not claimed by someone else
  whose claim is unexpired; otherwise it is REFUSED with the reason in ``CommitOutcome.error``
  and writes nothing. The caller reports the reason to the person; nothing is quarantined.
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
from typing import Any

from statewise.definition.model import Definition, Role
from statewise.engine.effects import RunCommand
from statewise.engine.events import TimerFired
from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.engine.result import StepResult
from statewise.errors import InvalidInputError
from statewise.store.alerting import (
    AlertEpisode,
    AlertRound,
    AlertSummary,
    Attempt,
    ClaimedDelivery,
    Firing,
)
from statewise.store.quality import Bucket, QualityReport
from statewise.store.retention import ArchiveSink, Cursor, PruneFigures, PruneRule


class CommitStatus(StrEnum):
    """What became of one step handed to ``commit``."""

    COMMITTED = "committed"
    DUPLICATE = "duplicate"
    STALE = "stale"
    LOST = "lost"
    REJECTED = "rejected"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class TaskGuard:
    """The human task a step decides, checked under lock in the step's own transaction."""

    task_id: int
    actor: str
    now: float


@dataclass(frozen=True, slots=True)
class StepCommit:
    """One step to make durable.

    ``expected_seq`` is the ``seq`` of the item the step was computed from (None for a new
    item); ``outbox_id``/``timer_id`` name the work this step consumed, deleted in the same
    transaction so it is done exactly once; ``task_guard`` names the task a decision closes.
    """

    result: StepResult
    expected_seq: int | None
    outbox_id: int | None = None
    timer_id: int | None = None
    task_guard: TaskGuard | None = None


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
class CountDrift:
    """A (workflow, version, state, status) whose kept count differs from its items."""

    workflow: str
    version: int
    state: str
    status: str
    kept: int
    actual: int


@dataclass(frozen=True, slots=True)
class CostRow:
    """What the model calls of one (workflow, state, agent, model) cost, summed.

    ``cost`` sums only the calls with a known price and is None when none had one;
    ``unpriced_calls`` counts the others, so an unknown price is never shown as 0.
    ``latency`` sums the calls' own durations in seconds (a model's loading is not in it).
    ``calls`` counts agent attempts (audit rows, cache hits included); ``requests`` counts the
    HTTP requests they made (output corrections and tool rounds each add one).
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
    latency: float = 0.0
    requests: int = 0


WorkflowStamp = tuple[str, int, str, tuple[str, ...]]
"""A stored version as (name, version, content hash, command modules): what a process compares
to tell whether the store holds versions it has not loaded."""


@dataclass(frozen=True, slots=True)
class StoredWorkflow:
    """A definition as it was registered, with the command modules it ran with."""

    name: str
    version: int
    source: str
    file: str
    commands: tuple[str, ...]
    content_hash: str = ""

    def stamp(self) -> WorkflowStamp:
        """What tells this stored version apart from any other, without its source."""
        return (self.name, self.version, self.content_hash, self.commands)


class TaskStatus(StrEnum):
    """Where a human task stands; only an open one can be claimed or decided."""

    OPEN = "open"
    DECIDED = "decided"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Task:
    """A human task: one visit of a ``kind: human`` state by one item, with its durable id.

    ``claimed_by`` holds only while ``claim_until`` is in the future; ``data`` is the form
    data of the decision.
    """

    id: int
    workflow: str
    version: int
    key: str
    state: str
    visit: int
    queue: str
    role: str
    status: TaskStatus
    created_at: float
    due_at: float | None = None
    remind_at: float | None = None
    reminded_at: float | None = None
    claimed_by: str | None = None
    claim_until: float | None = None
    decided_by: str | None = None
    decided_at: float | None = None
    outcome: str | None = None
    comment: str | None = None
    data: Any = None
    branch: str | None = None

    @property
    def place(self) -> str:
        """The task's state, with its branch for a parallel branch's task: ``review/legal``."""
        return self.state if self.branch is None else f"{self.state}/{self.branch}"

    def why_closed(self) -> str:
        """Why a branch's task was closed without a decision (`` (...)``), else empty.

        A branch task cancelled because its parallel state's join was met keeps the reason
        as its comment, so a late decision is told why.
        """
        if self.status is TaskStatus.CANCELLED and self.branch and self.comment:
            return f" ({self.comment})"
        return ""

    def claimed_by_other(self, actor: str, now: float) -> str | None:
        """Who else holds an unexpired claim on the task, if anyone."""
        if self.claimed_by is None or self.claimed_by == actor:
            return None
        if self.claim_until is not None and self.claim_until <= now:
            return None
        return self.claimed_by


class TaskOrder(StrEnum):
    """How the task list is sorted; tasks without a due time come last either way."""

    DUE = "due"
    DUE_DESC = "-due"
    CREATED = "created"
    CREATED_DESC = "-created"


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """One page of open tasks as a reviewer filters it (the dashboard's task list).

    ``queues`` are the queues the reviewer may see (None: every queue); ``queue``,
    ``workflow`` and ``state`` narrow further. ``due_after``/``due_before`` keep tasks due in
    that window (either end open). ``mine`` keeps tasks ``actor`` holds an unexpired claim
    on; ``unclaimed`` those nobody does. ``now`` decides which claims have expired.
    """

    now: float
    queues: tuple[str, ...] | None = None
    queue: str | None = None
    workflow: str | None = None
    state: str | None = None
    due_after: float | None = None
    due_before: float | None = None
    actor: str = ""
    mine: bool = False
    unclaimed: bool = False
    order: TaskOrder = TaskOrder.DUE
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class TaskPage:
    """The tasks of one page and how many match in all."""

    tasks: list[Task]
    total: int


@dataclass(frozen=True, slots=True)
class QueueCount:
    """Open tasks in one queue: how many, and how many of them are past due."""

    queue: str
    open: int
    overdue: int


@dataclass(frozen=True, slots=True)
class PendingCommand:
    """A command waiting in the outbox for an item, or running under a worker's lease."""

    outbox_id: int
    effect: RunCommand
    available_at: float
    lease_owner: str | None
    lease_until: float | None


@dataclass(frozen=True, slots=True)
class PendingTimer:
    """A durable timer an item waits for."""

    timer_id: int
    event: TimerFired
    due_at: float


@dataclass(frozen=True, slots=True)
class PendingWork:
    """Everything an item has queued: commands and timers."""

    commands: tuple[PendingCommand, ...]
    timers: tuple[PendingTimer, ...]


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """Which items a listing, a count or a bulk operation covers; None matches everything.

    ``version`` keeps the items on that version of ``workflow`` (versions live side by side).

    ``entered_before`` keeps the items that entered their state before that time (their age
    in the state is at least ``now - entered_before``).

    ``key_contains`` keeps the keys that contain it literally and case-sensitively, the same
    on every store: ``%`` and ``_`` are plain characters, and ``inv`` does not match ``INV-1``
    (keys are identifiers, and a bulk operation must never reach more items than asked). A
    NUL in it is refused: SQLite would end the text there and match every key.
    """

    workflow: str | None = None
    state: str | None = None
    status: ItemStatus | None = None
    entered_before: float | None = None
    key_contains: str | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        if self.key_contains is not None and "\x00" in self.key_contains:
            raise InvalidInputError(
                "the key search must not hold a NUL character (U+0000); "
                "nothing was searched or changed"
            )


@dataclass(frozen=True, slots=True)
class StateStats:
    """What moved through one state of a workflow since ``since``.

    Read from the per-minute figures every commit keeps (``store.tally``), in whole minutes:
    the window starts at the minute (UTC epoch seconds // 60) holding ``since``, so it may
    reach up to 59 s further back than asked. Pruning the audit trail does not change them.

    ``entered`` counts arrivals and ``left`` departures (a retry or redrive re-entering the
    state counts both); ``dwell_p50``/``dwell_p95`` estimate the departures' time in it from
    a log-scale histogram (one bucket per doubling from 1/8 s to 2^20 s): the estimate lies in
    the same bucket as the true nearest-rank percentile, so within a factor of 2 of it (None
    with no departures). ``failures`` counts failed command attempts there and ``retries`` the
    retries started; ``cost`` sums the priced model calls made there (None: none was priced).

    How items ended here, for completion rates, each counted in the minute it happened:
    ``finished`` became done in this (final) state and had never been in the workflow's
    escalation state; ``escalated`` moved from this state into the escalation state;
    ``failed`` became failed (quarantined) while in it; ``cancelled`` were cancelled while in
    it. An escalated item is counted as escalated once per escalation and never as finished,
    however it ends later (resolved, abandoned, or redriven to a final state); one later
    cancelled or failed counts there as well. A workflow's completions are the sums over its
    states.
    """

    workflow: str
    state: str
    since: float
    entered: int
    left: int
    failures: int
    retries: int
    dwell_p50: float | None
    dwell_p95: float | None
    cost: float | None
    finished: int = 0
    escalated: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass(frozen=True, slots=True)
class Token:
    """An API token as stored: only a hash of the secret is kept, never the secret.

    ``queues`` limits a reviewer to the human-task queues named (empty: every queue).
    """

    id: int
    name: str
    role: Role
    created_at: float
    queues: tuple[str, ...] = ()
    last_used_at: float | None = None
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A dashboard sign-in: a cookie's hashed id, the token it came from, its CSRF secret."""

    token: Token
    csrf: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class StuckItem:
    """An active item with no pending command or timer: a broken invariant, never expected."""

    workflow: str
    key: str
    state: str
    seq: int


@dataclass(frozen=True, slots=True)
class OverdueWork:
    """Work due since before a moment and still not taken (unleased, or its lease long gone).

    Some of it is normal for an instant; much of it for minutes means no runner works here.
    """

    commands: int
    timers: int
    oldest_due: float | None

    def __bool__(self) -> bool:
        return bool(self.commands or self.timers)


class Store(ABC):
    """Durable home of items, their context, history, timers and outbox."""

    @abstractmethod
    def running(self, owner: str) -> AbstractAsyncContextManager[None]:
        """Hold the right to execute work as ``owner``, recovering what a dead runner left.

        SQLite: one runner per file (a lock file; RunnerLockError names its holder).
        PostgreSQL: any number of workers; work a dead worker held comes back when its lease
        expires.
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
    async def workflow_stamps(self) -> list[WorkflowStamp]:
        """``StoredWorkflow.stamp`` of every stored version, in ``workflows`` order.

        The cheap read a long-running process repeats to notice a deploy: no source is read.
        """

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
    async def record_alerts(
        self, firing: Sequence[Firing], workflows: Collection[str], now: float
    ) -> AlertRound:
        """Open, refresh and resolve alert episodes; each opened or resolved by one caller."""

    @abstractmethod
    async def claim_deliveries(
        self, workflows: Collection[str], now: float, until: float, limit: int
    ) -> list[ClaimedDelivery]:
        """Lease due alert deliveries until ``until`` so that one sender sends each attempt."""

    @abstractmethod
    async def recent_arrivals(
        self, workflow: str, state: str, since: float, limit: int = 20
    ) -> list[str]:
        """Keys of items that entered ``state`` since ``since`` and are still there."""

    @abstractmethod
    async def finish_delivery(self, delivery_id: int, attempt: Attempt) -> None:
        """Record how one delivery attempt went, and when to try again."""

    @abstractmethod
    async def alert_episodes(self, limit: int = 50) -> list[AlertEpisode]:
        """Open episodes and the latest ``limit`` resolved ones, with their deliveries."""

    @abstractmethod
    async def alert_summary(self) -> AlertSummary:
        """How many episodes fire and how many deliveries are failing."""

    @abstractmethod
    async def overdue_work(self, due_before: float) -> OverdueWork:
        """Commands and timers due before ``due_before`` that no runner holds since then."""

    @abstractmethod
    async def failed_since(self, since: float) -> int:
        """How many items failed (were quarantined) at or after ``since``."""

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
    async def recount(self, *, repair: bool = False) -> list[CountDrift]:
        """Where the counts ``state_counts`` reads differ from counting the items themselves.

        Empty when they agree, as they always should: every commit keeps them in step. With
        ``repair`` the counts are rewritten from the items, in one transaction that holds
        writers off them meanwhile.
        """

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
    async def count_items(self, where: ItemFilter) -> int:
        """How many items match ``where`` (a bulk operation's dry run, a listing's total)."""

    @abstractmethod
    async def find_items(
        self, where: ItemFilter, *, limit: int = 100, after: tuple[float, int] | None = None
    ) -> list[tuple[Item, tuple[float, int]]]:
        """Items matching ``where``, longest in their state first, without their context.

        Keyset-paginated: each item comes with its cursor; pass the last one as ``after`` for
        the next page, so a page costs the same at item 10 and at item 1,000,000.
        """

    @abstractmethod
    async def pending_work(self, workflow: str, key: str) -> PendingWork:
        """The commands and timers one item has queued."""

    @abstractmethod
    async def state_stats(self, since: float, workflow: str | None = None) -> list[StateStats]:
        """Per-state throughput, dwell percentiles, failures, retries and cost since ``since``."""

    @abstractmethod
    async def tasks(
        self,
        *,
        status: TaskStatus | None = TaskStatus.OPEN,
        queue: str | None = None,
        workflow: str | None = None,
        key: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        """Human tasks matching the filters, oldest first (the inbox)."""

    @abstractmethod
    async def task_page(self, query: TaskQuery) -> TaskPage:
        """One page of open tasks, filtered and sorted, with how many match in all."""

    @abstractmethod
    async def queue_counts(self, queues: tuple[str, ...] | None, now: float) -> list[QueueCount]:
        """Open and overdue tasks per queue, for the queues named (None: every queue)."""

    @abstractmethod
    async def get_task(self, task_id: int) -> Task:
        """One task by id; NotFoundError when there is none."""

    @abstractmethod
    async def claim_task(self, task_id: int, actor: str, now: float, until: float) -> Task:
        """Claim an open task for ``actor`` until ``until`` (renewing their own claim).

        TaskError when it is not open or someone else's claim on it has not expired.
        """

    @abstractmethod
    async def release_task(self, task_id: int, actor: str, now: float) -> Task:
        """Give up ``actor``'s claim; TaskError when the task is not open or not theirs."""

    @abstractmethod
    async def create_token(
        self, name: str, role: Role, secret_hash: str, now: float, queues: Sequence[str] = ()
    ) -> Token:
        """Store a new API token by the hash of its secret."""

    @abstractmethod
    async def find_token(self, secret_hash: str, now: float) -> Token | None:
        """The unrevoked token with this secret hash (its last use set to ``now``), if any."""

    @abstractmethod
    async def list_tokens(self) -> list[Token]:
        """Every token, revoked ones included, oldest first."""

    @abstractmethod
    async def revoke_token(self, token_id: int, now: float) -> Token:
        """Revoke a token and end its sessions; NotFoundError when there is none."""

    @abstractmethod
    async def create_session(
        self, session_hash: str, token_id: int, csrf: str, expires_at: float
    ) -> None:
        """Remember a dashboard sign-in by the hash of its cookie."""

    @abstractmethod
    async def find_session(self, session_hash: str, now: float) -> Session | None:
        """The unexpired session with this hash whose token is not revoked, if any."""

    @abstractmethod
    async def delete_session(self, session_hash: str) -> None:
        """Sign out."""

    @abstractmethod
    async def history(self, workflow: str | None, key: str) -> list[HistoryRecord]:
        """The audit trail of one item, in order."""

    @abstractmethod
    async def failures(
        self, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, str]]:
        """Why each of these (workflow, key) items failed: the error of its failure row.

        That is its last audit row but for late results it ignored; an item whose failure row
        has no error (it is not failed) is left out. One round trip for a page of items.
        """

    @abstractmethod
    async def costs(self, workflow: str | None = None) -> list[CostRow]:
        """Model usage from the audit trail, summed by workflow, state, agent and model."""

    @abstractmethod
    async def quality(
        self,
        since: float,
        workflow: str | None = None,
        bucket: Bucket = Bucket.DAY,
        band: float | None = None,
    ) -> QualityReport:
        """How often reviewers agreed with each agent stage they review, since ``since``.

        Per (workflow, agent, reviewed state): the verdicts, their trend per ``bucket``,
        agreement by score band (``band`` wide, or detected from the scores) and the newest
        overrides.
        """

    @abstractmethod
    async def spending_items(
        self, workflow: str | None = None, *, limit: int = 1000, after: int = 0
    ) -> list[tuple[int, Item]]:
        """A page of the items that have spent on model calls, without context, by row id.

        Each comes with its row id; pass the last one as ``after`` for the next page.
        """

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
    async def prune_candidates(
        self, rule: PruneRule, after: Cursor | None, limit: int
    ) -> tuple[list[int], Cursor | None]:
        """Ids of items ``rule`` has something to drop of, a keyset page after ``after``.

        A plain read: ``prune`` checks each again under lock (``store.retention``).
        """

    @abstractmethod
    async def prune(
        self,
        rule: PruneRule,
        item_ids: Sequence[int],
        *,
        now: float,
        actor: str,
        dry_run: bool = False,
        archive: ArchiveSink | None = None,
    ) -> PruneFigures:
        """Drop what ``rule`` prunes of these items in one transaction; measure it only, dry.

        Each item is checked again under lock: one moved or redriven since it was listed is
        left alone. ``archive`` gets the records of the items before anything is dropped.
        """

    @abstractmethod
    async def reclaim_space(self) -> str:
        """After a prune: return freed space where the store does that itself, and say how."""

    @abstractmethod
    async def schema_version(self) -> int:
        """The migration the database is at (every one is applied when the store opens)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and locks."""
