"""The runner: the imperative shell that claims work, performs it and commits steps.

It loops over three sources of events: finished commands, due timers, and (through ``send``)
external events. Each event is applied with the pure ``step`` function and committed by the
store; steps finished close together are committed in one transaction, and a step counts as
done only once that transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from statewise.definition.model import Definition
from statewise.engine.events import Event, External
from statewise.engine.item import Item, ItemStatus
from statewise.engine.result import Outcome, StepResult
from statewise.engine.step import start, step
from statewise.errors import NotFoundError, StaleLeaseError, StatewiseError
from statewise.store.base import ClaimedCommand, CommitStatus, Lease, StepCommit, Store
from statewise.worker.commands import BLOCK_THRESHOLD, CommandExecutor
from statewise.worker.registry import CommandRegistry

JSON = Any
Ref = tuple[str, str]
_TIMER_POLL = 0.05
_OUTBOX_POLL = 0.5
_SEND_ATTEMPTS = 5
logger = logging.getLogger("statewise.worker")


@dataclass(frozen=True, slots=True)
class _Pending:
    """An event waiting to be applied, and the work row it consumes."""

    ref: Ref
    event: Event
    outbox_id: int | None = None
    timer_id: int | None = None


@dataclass(frozen=True, slots=True)
class StartReport:
    """How many items a start call created, and how many already existed."""

    created: int
    existing: int


class Runner:
    """Executes the items of one store with in-process concurrency.

    ``concurrency`` bounds the commands running at once (the in-flight window) and sizes the
    thread pool of sync commands; everything else is bounded by the store's batch size. An
    async command holding the event loop longer than ``block_threshold`` seconds is reported.
    """

    def __init__(
        self,
        store: Store,
        definitions: Iterable[Definition],
        registry: CommandRegistry,
        *,
        concurrency: int = 64,
        batch_size: int = 256,
        lease_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        on_commit: Callable[[Sequence[StepResult]], None] | None = None,
        block_threshold: float = BLOCK_THRESHOLD,
    ) -> None:
        self.store = store
        self.registry = registry
        self.definitions = {(d.name, d.version): d for d in definitions}
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.on_commit = on_commit
        self.commands = CommandExecutor(
            registry, threads=concurrency, block_threshold=block_threshold
        )
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._results: list[_Pending] = []
        self._ready: deque[ClaimedCommand] = deque()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._items: dict[Ref, Item] = {}
        self._running = False
        self._wake = asyncio.Event()

    def definition(self, workflow: str, version: int) -> Definition:
        """The definition an item runs on; items keep the version they started with."""
        try:
            return self.definitions[(workflow, version)]
        except KeyError:
            raise NotFoundError(
                f"workflow {workflow}@{version} is not loaded; register it before running its items"
            ) from None

    async def start(
        self,
        definition: Definition,
        items: Iterable[tuple[str, dict[str, JSON]]],
        actor: str = "system",
    ) -> StartReport:
        """Start items by business key; a key that already exists is left as it is."""
        created = existing = 0
        batch: list[StepCommit] = []
        for key, data in items:
            batch.append(StepCommit(start(definition, key, data, self.clock(), actor), None))
            if len(batch) >= self.batch_size:
                made, seen = await self._commit_starts(batch)
                created, existing, batch = created + made, existing + seen, []
        made, seen = await self._commit_starts(batch)
        return StartReport(created + made, existing + seen)

    async def _commit_starts(self, batch: list[StepCommit]) -> tuple[int, int]:
        if not batch:
            return 0, 0
        statuses = await self._commit(batch)
        made = statuses.count(CommitStatus.COMMITTED)
        return made, len(batch) - made

    async def send(
        self, workflow: str | None, key: str, name: str, data: dict[str, JSON], actor: str
    ) -> Item:
        """Apply an external event to one item now; InvalidEventError if it cannot take it."""
        for _ in range(_SEND_ATTEMPTS):
            item = await self.store.get_item(workflow, key)
            definition = self.definition(item.workflow, item.version)
            result = step(definition, item, External(name, data, actor), self.clock())
            (status,) = await self._commit([StepCommit(result, item.seq)])
            if status is CommitStatus.COMMITTED:
                return result.item
        raise StaleLeaseError(f"item {key!r} kept changing while event {name!r} was sent; retry")

    async def run(self, *, max_wait: float = 60.0, stop: asyncio.Event | None = None) -> None:
        """Work until idle: nothing running, nothing ready, no timer due within ``max_wait``.

        With ``stop`` given, run until it is set instead (a long-lived worker).
        """
        async with self.store.running(self.owner):
            self._running = True
            heartbeat = asyncio.create_task(self._heartbeat())
            try:
                await self._loop(max_wait, stop)
            finally:
                heartbeat.cancel()
                await self._shutdown()

    async def _commit(self, commits: list[StepCommit]) -> list[CommitStatus]:
        """Commit steps; while running, their commands come back leased, ready to perform."""
        lease = Lease(self.owner, self.clock() + self.lease_seconds) if self._running else None
        outcomes = await self.store.commit(commits, lease)
        committed: list[StepResult] = []
        for commit, outcome in zip(commits, outcomes, strict=True):
            item = commit.result.item
            ref = (item.workflow, item.key)
            if outcome.status is not CommitStatus.COMMITTED:
                self._items.pop(ref, None)
                continue
            self._ready.extend(outcome.commands)
            if commit.result.outcome is not Outcome.IGNORED:
                committed.append(commit.result)
                self._remember(ref, item)
        self._notify(committed)
        return [outcome.status for outcome in outcomes]

    def _remember(self, ref: Ref, item: Item) -> None:
        """Keep the latest committed copy of active items; the seq fence catches any drift."""
        if self._running and item.status is ItemStatus.ACTIVE:
            self._items[ref] = item
        else:
            self._items.pop(ref, None)

    async def _loop(self, max_wait: float, stop: asyncio.Event | None) -> None:
        next_timer_check = next_outbox_check = 0.0
        while stop is None or not stop.is_set():
            await self._fill()
            if self._results:
                await asyncio.sleep(0)  # let the commands just started begin before the apply
                size = min(self.batch_size, 16) if self._in_flight else self.batch_size
                batch, self._results = self._results[:size], self._results[size:]
                await self._apply(batch)
                continue
            now = self.clock()
            if now >= next_timer_check:
                next_timer_check = now + _TIMER_POLL
                if await self._fire_timers(now):
                    continue
            room = self.concurrency - len(self._in_flight)
            if now >= next_outbox_check and room > 0 and not self._ready:
                if await self._claim(now, room):
                    continue
                next_outbox_check = now + _OUTBOX_POLL
            if not await self._wait(now, max_wait, stop):
                return

    async def _claim(self, now: float, room: int) -> bool:
        """Lease outbox commands for the free slots; True if any were claimed.

        A running runner's own commands come back leased from its commits; the outbox holds
        only work left by a dead runner or queued by another process, so polling it is rare.
        """
        claimed = await self.store.claim_commands(self.owner, room, now, self.lease_seconds)
        self._ready.extend(claimed)
        return bool(claimed)

    async def _wait(self, now: float, max_wait: float, stop: asyncio.Event | None) -> bool:
        """Sleep until a result arrives or a timer is due; False when the runner is idle."""
        due = await self.store.next_timer_due()
        nothing_due = due is None or due - now > max_wait
        idle = not self._in_flight and not self._ready and stop is None and nothing_due
        if idle and await self.store.pending_commands() == 0:
            return False
        timeout = _OUTBOX_POLL if due is None else min(_OUTBOX_POLL, max(due - now, 0.0))
        self._wake.clear()
        if not self._results:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        return True

    async def _fire_timers(self, now: float) -> bool:
        timers = await self.store.claim_timers(self.owner, self.batch_size, now, self.lease_seconds)
        await self._apply(
            [_Pending((t.workflow, t.key), t.event, timer_id=t.timer_id) for t in timers]
        )
        return bool(timers)

    async def _fill(self) -> None:
        """Start ready commands in the free slots, each with its item's committed context."""
        free = self.concurrency - len(self._in_flight)
        if free <= 0 or not self._ready:
            return
        starting = [self._ready.popleft() for _ in range(min(free, len(self._ready)))]
        items = await self._items_for([(c.workflow, c.key) for c in starting])
        for command in starting:
            item = items.get((command.workflow, command.key))
            context = item.context if item is not None else {}
            task = asyncio.create_task(self._perform(command, context))
            self._in_flight[command.outbox_id] = task

    async def _items_for(self, refs: Sequence[Ref]) -> dict[Ref, Item]:
        """Items from the cache, loading the ones it lacks in one query."""
        found = {ref: self._items[ref] for ref in refs if ref in self._items}
        missing = [ref for ref in dict.fromkeys(refs) if ref not in found]
        if missing:
            loaded = await self.store.get_items(missing)
            for ref, item in loaded.items():
                self._remember(ref, item)
            found.update(loaded)
        return found

    async def _perform(self, command: ClaimedCommand, context: Mapping[str, JSON]) -> None:
        try:
            event = await self.commands.execute(
                command.effect, command.workflow, command.key, context
            )
            ref = (command.workflow, command.key)
            self._results.append(_Pending(ref, event, outbox_id=command.outbox_id))
        finally:
            self._in_flight.pop(command.outbox_id, None)
            self._wake.set()

    async def _apply(self, batch: list[_Pending]) -> None:
        """Step every event against the freshest item and commit them together."""
        if not batch:
            return
        items = await self._items_for([p.ref for p in batch])
        commits: list[StepCommit] = []
        pending: list[_Pending] = []
        now = self.clock()
        for event in batch:
            item = items.get(event.ref)
            if item is None:
                continue
            result = self._step(item, event.event, now)
            commits.append(StepCommit(result, item.seq, event.outbox_id, event.timer_id))
            pending.append(event)
            if result.outcome is not Outcome.IGNORED:
                items[event.ref] = result.item
        statuses = await self._commit(commits)
        self._results.extend(
            event
            for event, status in zip(pending, statuses, strict=True)
            if status is CommitStatus.STALE
        )

    def _step(self, item: Item, event: Event, now: float) -> StepResult:
        definition = self.definition(item.workflow, item.version)
        try:
            return step(definition, item, event, now)
        except StatewiseError as exc:
            logger.warning("dropped %s for item %s: %s", event.kind, item.key, exc)
            return StepResult(item, Outcome.IGNORED)

    def _notify(self, results: Sequence[StepResult]) -> None:
        if self.on_commit is not None and results:
            self.on_commit(results)

    def _leased(self) -> list[int]:
        return [*self._in_flight, *(command.outbox_id for command in self._ready)]

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            leased = self._leased()
            if leased:
                until = self.clock() + self.lease_seconds
                await self.store.extend_leases(self.owner, leased, until)

    async def _shutdown(self) -> None:
        """Stop running commands and hand their work back so nothing waits for a lease."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.commands.close()
        leased = self._leased()
        self._running = False
        if self._results:
            await self._apply(self._results)
            self._results = []
        await self.store.release(leased, [])
        self._ready.clear()
        self._items.clear()
