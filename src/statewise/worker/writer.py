"""Writing steps: what every writer of a store shares, from the runner to ``statewise send``.

A runner, the command line and (later) the HTTP service all change items the same way: step
the item with the pure engine on the freshest copy the store gives, and commit under the
store's fence. ``ItemWriter`` is that shared part. It is also the boundary of "one bad item
stays one bad item": whatever makes stepping an item impossible is recorded on that item
(``failed``, with the reason in its audit trail) instead of stopping the writer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from statewise.definition.model import Definition
from statewise.engine.effects import SetContext
from statewise.engine.events import Event, External, Operate, TaskDecided
from statewise.engine.item import Item, ItemStatus
from statewise.engine.quarantine import fail_item
from statewise.engine.result import StepResult
from statewise.engine.step import new_item, start, step
from statewise.errors import (
    InvalidEventError,
    ItemFailure,
    NotFoundError,
    StaleLeaseError,
    StatewiseError,
    StoreError,
    TaskError,
)
from statewise.inputs import InputLimits, check_text
from statewise.store.base import (
    CommitOutcome,
    CommitStatus,
    Lease,
    StepCommit,
    Store,
    TaskGuard,
)
from statewise.worker.observers import CommitBatch, CommitObserver

JSON = Any
_SEND_ATTEMPTS = 5
_QUARANTINE_BATCH = 10_000
logger = logging.getLogger("statewise.worker")


@dataclass(frozen=True, slots=True)
class StartReport:
    """How many items a start call created, how many already existed, and which were refused.

    ``rejected`` names the keys whose start data could not be stored, with the reason.
    """

    created: int
    existing: int
    rejected: tuple[str, ...] = ()


class ItemWriter:
    """Starts items and sends them events on one store, for the definitions it holds."""

    def __init__(
        self,
        store: Store,
        definitions: Iterable[Definition],
        *,
        batch_size: int = 256,
        clock: Callable[[], float] = time.time,
        on_commit: Callable[[Sequence[StepResult]], None] | None = None,
        observer: CommitObserver | None = None,
        input_limits: InputLimits | None = None,
    ) -> None:
        self.store = store
        self.input_limits = input_limits or InputLimits.from_environment()
        self.definitions = {(d.name, d.version): d for d in definitions}
        self.versions = frozenset(self.definitions)  # what it claims, on a runner
        self.batch_size = batch_size
        self.clock = clock
        self.on_commit = on_commit
        self.observer = observer

    def hold(self, definitions: Iterable[Definition]) -> None:
        """Write for ``definitions`` from now on: a catalog loaded again after a deploy.

        Everything reads ``definitions`` and ``versions`` when it needs them, so a version
        added here is claimed and stepped from the next loop pass on.
        """
        self.definitions = {(d.name, d.version): d for d in definitions}
        self.versions = frozenset(self.definitions)

    def definition(self, workflow: str, version: int) -> Definition:
        """The definition an item runs on; items keep the version they started with."""
        try:
            return self.definitions[(workflow, version)]
        except KeyError:
            raise NotFoundError(
                f"workflow {workflow}@{version} is not loaded; register it before running its items"
            ) from None

    async def commit(self, commits: list[StepCommit]) -> list[CommitOutcome]:
        """Commit steps under the store's fence and tell ``on_commit`` what moved."""
        outcomes = await self.commit_to_store(commits)
        self.notify(
            [
                c.result
                for c, o in zip(commits, outcomes, strict=True)
                if o.status is CommitStatus.COMMITTED and c.result.history
            ]
        )
        return outcomes

    async def commit_to_store(
        self, commits: list[StepCommit], lease: Lease | None = None
    ) -> list[CommitOutcome]:
        """``Store.commit``, with the batch handed to the observer when one is set."""
        if self.observer is None:
            return await self.store.commit(commits, lease)
        started = time.time()
        outcomes = await self.store.commit(commits, lease)
        self.observer.observe(CommitBatch(commits, outcomes, started, time.time()))
        return outcomes

    def notify(self, results: Sequence[StepResult]) -> None:
        """Hand committed steps to the ``on_commit`` observer (a progress bar, a test)."""
        if self.on_commit is not None and results:
            self.on_commit(results)

    async def start(
        self,
        definition: Definition,
        items: Iterable[tuple[str, dict[str, JSON]]],
        actor: str = "system",
    ) -> StartReport:
        """Start items by business key; a key that already exists is left as it is.

        A key or start data that breaks the input rules (``statewise.inputs``) raises
        InvalidInputError when its item is reached: it and the items after it are not
        started, nor those of the batch it would have joined; earlier batches were.
        """
        outcomes: list[tuple[str, CommitOutcome]] = []
        batch: list[StepCommit] = []
        for key, data in items:
            self.input_limits.check_start(key, data, definition.inputs)
            batch.append(StepCommit(self._start_safely(definition, key, data, actor), None))
            if len(batch) >= self.batch_size:
                outcomes += await self._commit_starts(batch)
                batch = []
        outcomes += await self._commit_starts(batch)
        statuses = [outcome.status for _, outcome in outcomes]
        return StartReport(
            created=statuses.count(CommitStatus.COMMITTED),
            existing=statuses.count(CommitStatus.DUPLICATE),
            rejected=tuple(
                f"{key}: {outcome.error}"
                for key, outcome in outcomes
                if outcome.status is CommitStatus.REJECTED
            ),
        )

    def _start_safely(
        self, definition: Definition, key: str, data: dict[str, JSON], actor: str
    ) -> StepResult:
        """Start an item, or create it failed when its very first step is impossible."""
        now = self.clock()
        try:
            return start(definition, key, data, now, actor)
        except Exception as exc:  # the boundary: one bad item never stops the others
            reason = _reason(exc)
            logger.warning("item %s failed at its start: %s", key, reason)
            failed = fail_item(new_item(definition, key, now), reason, now)
            patches = tuple(SetContext((name,), value) for name, value in data.items())
            return replace(failed, patches=patches)

    async def _commit_starts(self, batch: list[StepCommit]) -> list[tuple[str, CommitOutcome]]:
        if not batch:
            return []
        # New items' first commands go to the outbox unleased, even from a running runner:
        # it claims them as it has room, so a large start never piles them up in memory.
        outcomes = await ItemWriter.commit(self, batch)
        return [(c.result.item.key, o) for c, o in zip(batch, outcomes, strict=True)]

    async def send(
        self, workflow: str | None, key: str, name: str, data: dict[str, JSON], actor: str
    ) -> Item:
        """Apply an external event to one item now; InvalidEventError if it cannot take it.

        An event declared with ``buffer:`` that the item's state does not accept yet is kept
        on the item instead (``actions.events.event_outcome`` tells the two apart).
        """
        self.input_limits.check_document(data, f"the data of event {name!r}")
        return await self.apply(workflow, key, External(name, data, actor), f"event {name!r}")

    async def apply(
        self,
        workflow: str | None,
        key: str,
        event: External | TaskDecided | Operate,
        what: str,
        task_guard: TaskGuard | None = None,
    ) -> Item:
        """Apply a person's event (a send, a task decision, an operator's action) to one item.

        The item is read and stepped afresh on every try, so the event is judged against the
        item as it is, whatever other writers did meanwhile. ``task_guard`` makes the commit
        check, in its own transaction, that the decided task is still open and unclaimed by
        anyone else (TaskError otherwise); ``what`` names the event in error messages. A
        reason or comment longer than the audit trail takes is refused before anything is read.
        """
        if isinstance(event, Operate):
            check_text(event.reason, f"the reason of {what}")
        elif isinstance(event, TaskDecided):
            check_text(event.comment, f"the comment of {what}")
        for _ in range(_SEND_ATTEMPTS):
            item = await self.store.get_item(workflow, key)
            definition = self.definition(item.workflow, item.version)
            result = self.step_safely(definition, item, event)
            (outcome,) = await self.commit([StepCommit(result, item.seq, task_guard=task_guard)])
            if outcome.status is CommitStatus.REFUSED:
                raise TaskError(outcome.error or f"{what} for item {key!r} was refused")
            if outcome.status is CommitStatus.REJECTED:
                raise StoreError(f"{what} for item {key!r} cannot be stored: {outcome.error}")
            if outcome.status is CommitStatus.COMMITTED:
                if result.item.status is ItemStatus.FAILED and item.status is not ItemStatus.FAILED:
                    error = result.history[-1].error or {}
                    raise ItemFailure(
                        f"item {key!r} failed on {what}, in state {result.item.state!r}: "
                        f"{error.get('kind')}: {error.get('message')} (its history says more; "
                        f"`statewise items --status failed` lists it)"
                    )
                return result.item
        raise StaleLeaseError(f"item {key!r} kept changing while {what} was applied; retry")

    def step_safely(self, definition: Definition, item: Item, event: Event) -> StepResult:
        """Step, or quarantine the item when stepping it is impossible.

        Whatever an item carries that breaks a step (a loop past every budget, an overflow, a
        state its definition lacks) fails that item alone, with the reason in its audit
        trail. A person's event the item cannot take (a send, a decision, an operator's action)
        is that person's mistake and is raised to them instead.
        """
        try:
            return step(definition, item, event, self.clock())
        except InvalidEventError:
            if isinstance(event, External | TaskDecided | Operate):
                raise
            reason = "the engine refused one of its own events"
        except Exception as exc:  # the boundary: one bad item never stops the others
            reason = _reason(exc)
        logger.warning("quarantined item %s on %s: %s", item.key, event.kind, reason)
        return fail_item(item, reason, self.clock())

    async def quarantine_unknown_versions(self) -> None:
        """Fail the items whose version nobody can run: not stored, and not held here.

        One pass of up to ``_QUARANTINE_BATCH`` items per call; the next call takes the rest.
        """
        orphans = [
            item
            for item in await self.store.unknown_version_items(_QUARANTINE_BATCH)
            if (item.workflow, item.version) not in self.versions
        ]
        now = self.clock()
        await self.commit(
            [
                StepCommit(
                    fail_item(
                        item,
                        f"workflow {item.workflow}@{item.version} is not stored, so no worker "
                        f"can run this item; store that version, or redrive the item",
                        now,
                        kind="unknown_version",
                    ),
                    item.seq,
                )
                for item in orphans
            ]
        )


def _reason(exc: Exception) -> str:
    """What to record about a failure: our own errors speak for themselves."""
    return str(exc) if isinstance(exc, StatewiseError) else f"{type(exc).__name__}: {exc}"
