"""The store contract written once for SQL databases; the dialects supply only the seams.

Every public method is one call of a shared ``..._txn`` function through ``_write`` (in one
transaction, retried where the dialect retries) or ``_read``. A dialect subclass provides those
two, the ``Dialect`` pieces of SQL, claiming, wake-ups, migrations and ``running``; nothing
about fencing, encoding or queries is written twice.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from functools import cached_property
from typing import Concatenate, ParamSpec, TypeVar

from statewise.definition.model import Definition, Role
from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.errors import InvalidInputError
from statewise.store import alerting, codec, queries, retention, tasks, tokens
from statewise.store.alerting import (
    AlertEpisode,
    AlertRound,
    AlertSummary,
    Attempt,
    ClaimedDelivery,
    Firing,
)
from statewise.store.base import (
    ClaimedCommand,
    CommitOutcome,
    CostRow,
    CountDrift,
    DueTimer,
    ItemFilter,
    Lease,
    OverdueWork,
    PendingWork,
    QueueCount,
    Session,
    StateCount,
    StateStats,
    StepCommit,
    Store,
    StoredWorkflow,
    StuckItem,
    Task,
    TaskPage,
    TaskQuery,
    TaskStatus,
    Token,
    WorkflowStamp,
)
from statewise.store.commit import commit_txn
from statewise.store.connection import Connection, Dialect, Row
from statewise.store.quality import Bucket, QualityReport, quality_txn
from statewise.store.retention import ArchiveSink, Cursor, PruneFigures, PruneRule
from statewise.store.stats import recount_txn, state_counts_txn, state_stats_txn
from statewise.store.workflows import (
    escalation_txn,
    save_workflow_txn,
    workflow_stamps_txn,
    workflows_txn,
)

P = ParamSpec("P")
T = TypeVar("T")
Versions = list[tuple[str, int]]


def not_utf8(error: UnicodeEncodeError) -> InvalidInputError:
    """The caller's text no store can write: a lone surrogate, from JSON or a non-UTF-8 argument.

    Both dialects' drivers raise ``UnicodeEncodeError`` before the statement runs, so nothing
    changed; it is the caller's input to fix, never a store failure.
    """
    text, bad = error.object, error.object[error.start]
    shown = repr(text) if len(text) <= 60 else f"{text[:60]!r}..."
    return InvalidInputError(
        f"{shown} is not valid UTF-8 text (it holds a lone surrogate U+{ord(bad):04X}); "
        "nothing changed"
    )


class SQLStore(Store, Dialect):
    """The shared half of every SQL dialect (see the module docstring)."""

    @abstractmethod
    async def _write(
        self, txn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``txn`` in one write transaction and commit it."""

    @abstractmethod
    async def _read(
        self, query: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``query``, which only reads."""

    @abstractmethod
    def _claim_commands_txn(
        self, db: Connection, owner: str, limit: int, now: float, until: float, held: Versions
    ) -> list[Row]:
        """Lease ready commands; rows of (outbox id, workflow, key, effect)."""

    @abstractmethod
    def _claim_timers_txn(
        self, db: Connection, owner: str, limit: int, now: float, until: float, held: Versions
    ) -> list[Row]:
        """Lease due timers; rows of (timer id, workflow, key, event)."""

    @cached_property
    def _escalations(self) -> dict[tuple[str, int], str]:
        """Escalation states of stored versions, kept once read: a stored version never changes."""
        return {}

    def escalation_txn(self, db: Connection, workflow: str, version: int) -> str | None:
        """The version's escalation state, read once per store object."""
        key = (workflow, version)
        known = self._escalations.get(key)
        if known is None:
            known = escalation_txn(db, workflow, version)
            if known is not None:
                self._escalations[key] = known
        return known

    async def save_workflow(
        self, definition: Definition, file: str, commands: Sequence[str]
    ) -> None:
        """Store a definition; a changed one under a stored version is refused."""
        await self._write(save_workflow_txn, definition, file, commands, time.time())

    async def workflows(self) -> list[StoredWorkflow]:
        """Every registered definition, oldest version first."""
        return await self._read(workflows_txn)

    async def workflow_stamps(self) -> list[WorkflowStamp]:
        """Every stored version's (name, version, content hash, command modules)."""
        return await self._read(workflow_stamps_txn)

    async def commit(
        self, commits: Sequence[StepCommit], lease: Lease | None = None
    ) -> list[CommitOutcome]:
        """All steps in one transaction, each fenced on its own (``store.commit``)."""
        if not commits:
            return []
        return await self._write(commit_txn, self, commits, lease)

    async def get_item(self, workflow: str | None, key: str) -> Item:
        """One item with its context."""
        return await self._read(queries.get_item_txn, self, workflow, key)

    async def get_items(self, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        """Items by (workflow, key), with context."""
        return await self._read(queries.get_items_txn, self, refs)

    async def claim_commands(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_seconds: float,
        versions: Collection[tuple[str, int]],
    ) -> list[ClaimedCommand]:
        """Lease the oldest ready commands of held versions, one item to one owner."""
        rows = await self._claim(
            self._claim_commands_txn, owner, limit, now, lease_seconds, versions
        )
        return [ClaimedCommand(i, w, k, codec.decode_command(e)) for i, w, k, e in rows]

    async def claim_timers(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_seconds: float,
        versions: Collection[tuple[str, int]],
    ) -> list[DueTimer]:
        """Lease due timers of held versions."""
        rows = await self._claim(self._claim_timers_txn, owner, limit, now, lease_seconds, versions)
        return [DueTimer(i, w, k, codec.decode_timer(e)) for i, w, k, e in rows]

    async def _claim(
        self,
        txn: Callable[[Connection, str, int, float, float, Versions], list[Row]],
        owner: str,
        limit: int,
        now: float,
        lease_seconds: float,
        versions: Collection[tuple[str, int]],
    ) -> list[Row]:
        """Run a dialect's claim for the held versions; rows in id order."""
        held = sorted(set(versions))
        if not held or limit <= 0:
            return []
        return sorted(await self._write(txn, owner, limit, now, now + lease_seconds, held))

    async def unknown_version_items(self, limit: int) -> list[Item]:
        """Live items of versions no stored definition has."""
        return await self._read(queries.unknown_version_items_txn, self, limit)

    async def stuck_items(self) -> list[StuckItem]:
        """Active items with no pending command and no timer."""
        return await self._read(queries.stuck_items_txn)

    async def record_alerts(
        self, firing: Sequence[Firing], workflows: Collection[str], now: float
    ) -> AlertRound:
        """One round of episodes in one transaction."""
        return await self._write(alerting.record_alerts_txn, firing, workflows, now)

    async def claim_deliveries(
        self, workflows: Collection[str], now: float, until: float, limit: int
    ) -> list[ClaimedDelivery]:
        """Lease due deliveries by a conditional update."""
        return await self._write(alerting.claim_deliveries_txn, self, workflows, now, until, limit)

    async def recent_arrivals(
        self, workflow: str, state: str, since: float, limit: int = 20
    ) -> list[str]:
        """Keys that entered a state lately and are still there."""
        return await self._read(alerting.recent_arrivals_txn, workflow, state, since, limit)

    async def finish_delivery(self, delivery_id: int, attempt: Attempt) -> None:
        """Record one attempt."""
        await self._write(alerting.finish_delivery_txn, delivery_id, attempt)

    async def alert_episodes(self, limit: int = 50) -> list[AlertEpisode]:
        """Open and recent episodes."""
        return await self._read(alerting.alert_episodes_txn, limit)

    async def alert_summary(self) -> AlertSummary:
        """Firing episodes and failing deliveries."""
        return await self._read(alerting.alert_summary_txn)

    async def overdue_work(self, due_before: float) -> OverdueWork:
        """Work due before ``due_before``, unleased or with a lease that ran out before it."""
        return await self._read(queries.overdue_work_txn, due_before)

    async def failed_since(self, since: float) -> int:
        """Items whose last change, at or after ``since``, left them failed."""
        return await self._read(queries.failed_since_txn, since)

    async def extend_leases(self, owner: str, outbox_ids: Sequence[int], until: float) -> None:
        """Heartbeat for running commands."""
        if outbox_ids:
            await self._write(queries.extend_leases_txn, owner, outbox_ids, until)

    async def release(self, outbox_ids: Sequence[int], timer_ids: Sequence[int]) -> None:
        """Hand leased work back; waiting workers are woken for it."""
        if outbox_ids or timer_ids:
            await self._write(self._release_txn, outbox_ids, timer_ids)

    def _release_txn(
        self, db: Connection, outbox_ids: Sequence[int], timer_ids: Sequence[int]
    ) -> None:
        queries.release_txn(db, outbox_ids, timer_ids)
        self.notify_txn(db)

    async def next_timer_due(self) -> float | None:
        """Earliest pending timer."""
        return await self._read(queries.next_timer_due_txn)

    async def pending_commands(self, versions: Collection[tuple[str, int]] | None = None) -> int:
        """Commands queued or running, of items on ``versions`` when given."""
        held = None if versions is None else sorted(set(versions))
        return await self._read(queries.pending_commands_txn, held)

    async def state_counts(self, workflow: str | None = None) -> list[StateCount]:
        """Items per (workflow, version, state, status), from the counts commits keep."""
        return await self._read(state_counts_txn, workflow)

    async def recount(self, *, repair: bool = False) -> list[CountDrift]:
        """Kept counts against a GROUP BY over the items; rewritten from it with ``repair``."""
        return await self._write(recount_txn, self, repair)

    async def list_items(
        self,
        *,
        workflow: str | None = None,
        state: str | None = None,
        status: ItemStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Item]:
        """Filtered items, longest in their state first, without context."""
        return await self._read(queries.list_items_txn, workflow, state, status, limit, offset)

    async def history(self, workflow: str | None, key: str) -> list[HistoryRecord]:
        """Audit rows of one item, by seq."""
        return await self._read(queries.history_txn, self, workflow, key)

    async def failures(
        self, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, str]]:
        """Why each of these items failed, from its failure row."""
        return await self._read(queries.failures_txn, self, refs)

    async def costs(self, workflow: str | None = None) -> list[CostRow]:
        """Model usage summed by workflow, state, agent and model."""
        return await self._read(queries.costs_txn, self, workflow)

    async def quality(
        self,
        since: float,
        workflow: str | None = None,
        bucket: Bucket = Bucket.DAY,
        band: float | None = None,
    ) -> QualityReport:
        """Reviewers' agreement with agent stages, aggregated from the audit trail."""
        return await self._read(quality_txn, self, since, workflow, bucket, band)

    async def spending_items(
        self, workflow: str | None = None, *, limit: int = 1000, after: int = 0
    ) -> list[tuple[int, Item]]:
        """A page of the items with a spend, through the partial index ``items_spending``."""
        return await self._read(queries.spending_items_txn, workflow, limit, after)

    async def conversations(self, workflow: str, key: str) -> dict[str, str]:
        """Conversations of one item by agent."""
        return await self._read(queries.conversations_txn, workflow, key)

    async def cached_response(self, cache_key: str) -> str | None:
        """A cached model response."""
        return await self._read(queries.cached_response_txn, cache_key)

    async def cache_response(self, cache_key: str, response: str) -> None:
        """Keep a model response for re-runs."""
        await self._write(queries.cache_response_txn, cache_key, response, time.time())

    async def count_items(self, where: ItemFilter) -> int:
        """Items matching ``where``."""
        return await self._read(queries.count_items_txn, self, where)

    async def find_items(
        self, where: ItemFilter, *, limit: int = 100, after: tuple[float, int] | None = None
    ) -> list[tuple[Item, tuple[float, int]]]:
        """A keyset page of matching items."""
        return await self._read(queries.find_items_txn, self, where, limit, after)

    async def pending_work(self, workflow: str, key: str) -> PendingWork:
        """Commands and timers of one item."""
        return await self._read(queries.pending_work_txn, self, workflow, key)

    async def state_stats(self, since: float, workflow: str | None = None) -> list[StateStats]:
        """Flow figures per state, from the per-minute rows commits keep, since ``since``."""
        return await self._read(state_stats_txn, since, workflow)

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
        """Human tasks, oldest first."""
        return await self._read(tasks.tasks_txn, status, queue, workflow, key, limit, offset)

    async def task_page(self, query: TaskQuery) -> TaskPage:
        """One page of open tasks with the total matching (``tasks.task_page_txn``)."""
        return await self._read(tasks.task_page_txn, query)

    async def queue_counts(self, queues: tuple[str, ...] | None, now: float) -> list[QueueCount]:
        """Open and overdue tasks per queue."""
        return await self._read(tasks.queue_counts_txn, queues, now)

    async def get_task(self, task_id: int) -> Task:
        """One task."""
        return await self._read(tasks.get_task_txn, task_id)

    async def claim_task(self, task_id: int, actor: str, now: float, until: float) -> Task:
        """Claim an open task."""
        return await self._write(tasks.claim_task_txn, task_id, actor, now, until)

    async def release_task(self, task_id: int, actor: str, now: float) -> Task:
        """Release one's claim."""
        return await self._write(tasks.release_task_txn, task_id, actor, now)

    async def create_token(
        self, name: str, role: Role, secret_hash: str, now: float, queues: Sequence[str] = ()
    ) -> Token:
        """Store a token by its hash."""
        return await self._write(tokens.create_token_txn, name, role, secret_hash, now, queues)

    async def find_token(self, secret_hash: str, now: float) -> Token | None:
        """The live token with this hash."""
        return await self._write(tokens.find_token_txn, secret_hash, now)

    async def list_tokens(self) -> list[Token]:
        """Every token."""
        return await self._read(tokens.list_tokens_txn)

    async def revoke_token(self, token_id: int, now: float) -> Token:
        """Revoke a token and its sessions."""
        return await self._write(tokens.revoke_token_txn, token_id, now)

    async def create_session(
        self, session_hash: str, token_id: int, csrf: str, expires_at: float
    ) -> None:
        """Remember a sign-in."""
        await self._write(tokens.create_session_txn, session_hash, token_id, csrf, expires_at)

    async def find_session(self, session_hash: str, now: float) -> Session | None:
        """A live session."""
        return await self._read(tokens.find_session_txn, session_hash, now)

    async def delete_session(self, session_hash: str) -> None:
        """Sign out."""
        await self._write(tokens.delete_session_txn, session_hash)

    async def prune_candidates(
        self, rule: PruneRule, after: Cursor | None, limit: int
    ) -> tuple[list[int], Cursor | None]:
        """A keyset page of items with something to prune."""
        return await self._read(retention.prune_candidates_txn, rule, after, limit)

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
        """One page pruned in one transaction (dry: measured in a read)."""
        if dry_run:
            return await self._read(
                retention.prune_txn, self, rule, item_ids, now=now, actor=actor, apply=False
            )
        return await self._write(
            retention.prune_txn,
            self,
            rule,
            item_ids,
            now=now,
            actor=actor,
            apply=True,
            archive=archive,
        )
