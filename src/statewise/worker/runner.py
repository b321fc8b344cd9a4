"""The runner: the imperative shell that claims work, performs it and commits steps.

It loops over three sources of events: finished commands, due timers, and (through ``send``)
external events. Each event is applied with the pure ``step`` function and committed by the
store; steps finished close together are committed in one transaction, and a step counts as
done only once that transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from statewise.contract import CommandRegistry
from statewise.definition.declared_types import command_at
from statewise.definition.model import Definition, ErrorKind
from statewise.engine.effects import RunCommand
from statewise.engine.events import CommandFailed, CommandSucceeded, Event
from statewise.engine.item import BranchStatus, Item, ItemStatus
from statewise.engine.quarantine import fail_item
from statewise.engine.result import Outcome, StepResult
from statewise.engine.step import record_spend
from statewise.errors import TransientStoreError
from statewise.inputs import InputLimits
from statewise.store.base import (
    ClaimedCommand,
    CommitOutcome,
    CommitStatus,
    Lease,
    StepCommit,
    Store,
)
from statewise.worker.commands import BLOCK_THRESHOLD, CommandExecutor, cancel_attempt
from statewise.worker.limits import ConcurrencyLimits
from statewise.worker.observers import CommitObserver
from statewise.worker.writer import ItemWriter

JSON = Any
Ref = tuple[str, str]
_TIMER_POLL = 0.05
_OUTBOX_POLL = 0.5
_OUTAGE_PAUSE = 0.1
_OUTAGE_PAUSE_CAP = 10.0
logger = logging.getLogger("statewise.worker")


@dataclass(frozen=True, slots=True)
class _Admission:
    """Starts made while the runner runs, waiting to ride along with the loop's next commit."""

    commits: list[StepCommit]
    commands: int
    done: asyncio.Future[list[CommitOutcome]]


@dataclass(frozen=True, slots=True)
class _Pending:
    """An event waiting to be applied, and the work row it consumes.

    ``spend_only``: the event's commit came back LOST, so only what it spent is recorded.
    """

    ref: Ref
    event: Event
    outbox_id: int | None = None
    timer_id: int | None = None
    spend_only: bool = False


class Runner(ItemWriter):
    """Executes the items of one store with in-process concurrency.

    ``concurrency`` bounds the commands running at once (the in-flight window) and sizes the
    thread pool of sync commands, ``limits`` the ones of one state or command within it;
    everything else is bounded by the store's batch size. An async command holding the event
    loop longer than ``block_threshold`` seconds is reported by name. ``input_limits`` bound
    the keys and documents it accepts and the depth of command results (``statewise.inputs``;
    by default from the environment).
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
        limits: ConcurrencyLimits | None = None,
        block_threshold: float = BLOCK_THRESHOLD,
        observer: CommitObserver | None = None,
        input_limits: InputLimits | None = None,
    ) -> None:
        super().__init__(
            store,
            definitions,
            batch_size=batch_size,
            clock=clock,
            on_commit=on_commit,
            observer=observer,
            input_limits=input_limits,
        )
        self.registry = registry
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.limits = limits or ConcurrencyLimits()
        self.commands = CommandExecutor(
            registry,
            threads=concurrency,
            block_threshold=block_threshold,
            max_depth=self.input_limits.max_depth,
            clock=clock,
        )
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._results: list[_Pending] = []
        self._ready: deque[ClaimedCommand] = deque()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._running_commands: dict[int, ClaimedCommand] = {}
        self._running_by_ref: dict[Ref, set[int]] = {}
        self._superseded: set[int] = set()
        self._items: dict[Ref, Item] = {}
        self._running = False
        self._own_work_only = False
        # Set by every producer of work (a result, a freed slot, a commit's or a start's
        # commands); cleared only at the top of a loop pass, before the pass looks for work.
        self._wake = asyncio.Event()
        self._claim_now = False  # the outbox has work for us now: claim before the next poll
        self._admissions: list[_Admission] = []
        self._admitting = False  # the loop runs and commits admissions (not yet in on_ready)

    def hold(
        self, definitions: Iterable[Definition], registry: CommandRegistry | None = None
    ) -> None:
        """Hold ``definitions``, run by ``registry`` (if given), and claim their work at once.

        Commands already running keep the function they started with; every later one is
        looked up in the new registry.
        """
        super().hold(definitions)
        if registry is not None:
            self.registry = self.commands.registry = registry
        self._claim_now = True
        self._wake.set()

    async def run(
        self,
        *,
        max_wait: float = 60.0,
        stop: asyncio.Event | None = None,
        on_ready: Callable[[], Awaitable[None]] | None = None,
        drain: float = 0.0,
        own_work_only: bool = False,
    ) -> None:
        """Work until idle: nothing running, nothing ready, no timer due within ``max_wait``.

        With ``stop`` given, run until it is set instead (a long-lived worker), then take no
        new work and give the running commands up to ``drain`` seconds to finish and commit;
        what is still running then is cancelled and handed back. ``on_ready`` runs once the
        runner holds the store (its lock, on SQLite) and before any work, so a caller
        refused by the lock has changed nothing.

        ``own_work_only`` performs only the commands this runner's own steps queue (those
        of ``on_ready`` and what follows from them): no outbox polling, no timers, nothing of
        other items, so a command line acting on one item returns as soon as that item waits.
        """
        async with self.store.running(self.owner):
            self._running = True
            self._own_work_only = own_work_only
            heartbeat = asyncio.create_task(self._heartbeat())
            try:
                if on_ready is not None:
                    await on_ready()
                if not own_work_only:
                    await self.quarantine_unknown_versions()
                await self._loop_through_outages(max_wait, stop)
                await self._drain(drain)
            finally:
                heartbeat.cancel()
                await self._shutdown()

    async def commit(self, commits: list[StepCommit]) -> list[CommitOutcome]:
        """Commit steps; while running, their commands come back leased, ready to perform.

        Whatever was not committed leaves the item cache: the store holds a newer copy.
        """
        lease = Lease(self.owner, self.clock() + self.lease_seconds) if self._running else None
        outcomes = await self.commit_to_store(commits, lease)
        committed: list[StepResult] = []
        for commit, outcome in zip(commits, outcomes, strict=True):
            item = commit.result.item
            ref = (item.workflow, item.key)
            if outcome.status is not CommitStatus.COMMITTED:
                self._items.pop(ref, None)
                continue
            if outcome.commands:
                self._ready.extend(outcome.commands)
                self._wake.set()  # another task of this process (the service) queued work
            if commit.result.outcome is not Outcome.IGNORED:
                committed.append(commit.result)
                self._remember(ref, item)
                self._cancel_superseded(ref, item)
        self.notify(committed)
        return outcomes

    async def _commit_starts(self, batch: list[StepCommit]) -> list[tuple[str, CommitOutcome]]:
        """Start items while running: their commands are taken up now, not at the next poll.

        This is how a service feeds its in-process runner. A start whose commands fit in the
        free slots is committed by the loop's next pass, in one transaction with the results
        at hand and the other starts made meanwhile (concurrent requests share it), and its
        commands come back leased, ready to run: no claim, no poll. A larger start leaves its
        commands in the outbox, so it never piles them up in memory, and the loop claims
        them as slots free up.
        """
        commands = _commands_of(batch)
        if self._admitting and commands <= self._room():
            done = asyncio.get_running_loop().create_future()
            self._admissions.append(_Admission(batch, commands, done))
            self._wake.set()
            outcomes = await done
            return [(c.result.item.key, o) for c, o in zip(batch, outcomes, strict=True)]
        started = await super()._commit_starts(batch)
        if any(outcome.status is CommitStatus.COMMITTED for _, outcome in started):
            self._claim_now = True
            self._wake.set()
        return started

    def _room(self) -> int:
        """Free slots not yet promised to a ready command or an admitted start's commands."""
        promised = len(self._ready) + sum(a.commands for a in self._admissions)
        return self.concurrency - len(self._in_flight) - promised

    async def _commit_with_admissions(self, commits: list[StepCommit]) -> list[CommitOutcome]:
        """Commit ``commits`` and the starts admitted meanwhile, in one transaction.

        Each admission gets its own outcomes (or the commit's error) unless its caller gave up
        waiting; the loop gets the rest.
        """
        admissions, self._admissions = self._admissions, []
        starts = [commit for admission in admissions for commit in admission.commits]
        try:
            outcomes = await self.commit(starts + commits)
        except BaseException as exc:
            for admission in admissions:
                if not admission.done.done():
                    admission.done.set_exception(exc)
            raise
        taken = 0
        for admission in admissions:
            if not admission.done.done():
                admission.done.set_result(outcomes[taken : taken + len(admission.commits)])
            taken += len(admission.commits)
        return outcomes[taken:]

    def _cancel_superseded(self, ref: Ref, item: Item) -> None:
        """Cancel this item's running commands that its new step made pointless.

        A parallel join met by ``any`` or ``n_of`` leaves the losing branches running; their
        late results still come back (with what they spent) and are recorded as ignored.
        """
        for outbox_id in self._running_by_ref.get(ref, ()):
            command = self._running_commands[outbox_id]
            if _is_over(item, command.effect):
                self._superseded.add(outbox_id)
                cancel_attempt(self._in_flight[outbox_id])

    def _remember(self, ref: Ref, item: Item) -> None:
        """Keep the latest committed copy of active items; the seq fence catches any drift."""
        if self._running and item.status is ItemStatus.ACTIVE:
            self._items[ref] = item
        else:
            self._items.pop(ref, None)

    async def _loop(self, max_wait: float, stop: asyncio.Event | None) -> None:
        next_timer_check = next_outbox_check = 0.0
        self._admitting = True
        while stop is None or not stop.is_set():
            self._wake.clear()  # whatever is produced from here on ends this pass's wait
            await self._fill()
            if self._results or self._admissions:
                await asyncio.sleep(0)  # let the commands just started begin before the apply
                size = min(self.batch_size, 16) if self._in_flight else self.batch_size
                batch, self._results = self._results[:size], self._results[size:]
                await self._apply(batch)
                continue
            now = self.clock()
            if now >= next_timer_check and not self._own_work_only:
                next_timer_check = now + _TIMER_POLL
                if await self._fire_timers(now):
                    continue
            room = self._room()
            claim_due = self._claim_now or now >= next_outbox_check
            if room > 0 and claim_due and not self._own_work_only:
                self._claim_now = False
                claimed = await self._claim(now, room)
                if claimed == room:  # the outbox may hold more: claim again as slots free up
                    self._claim_now = True
                if claimed:
                    continue
                next_outbox_check = now + _OUTBOX_POLL
            if not await self._wait(now, max_wait, stop):
                return

    async def _loop_through_outages(self, max_wait: float, stop: asyncio.Event | None) -> None:
        """Run the loop; after a store outage it escaped, pause and run it again.

        The store has already retried; what escapes is an outage that lasts, and the runner
        must outlive it (a worker that ends on one dropped connection leaves its work to the
        lease timeout). The pause doubles up to a cap while the outage lasts and starts small
        again once the loop got through a turn of its own. Any other error ends the run.
        """
        pause = _OUTAGE_PAUSE
        while True:
            entered = time.monotonic()
            try:
                await self._loop(max_wait, stop)
                return
            except TransientStoreError as exc:
                if time.monotonic() - entered > pause:
                    pause = _OUTAGE_PAUSE
                logger.warning("runner %s: %s; going on in %.1fs", self.owner, exc, pause)
                if stop is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), pause)
                else:
                    await asyncio.sleep(pause)
                pause = min(pause * 2, _OUTAGE_PAUSE_CAP)

    async def _drain(self, seconds: float) -> None:
        """Let running commands finish and commit for up to ``seconds``; start nothing new."""
        deadline = time.monotonic() + seconds
        while self._in_flight and time.monotonic() < deadline:
            self._wake.clear()
            if not self._results:
                await self._sleep(min(_OUTBOX_POLL, deadline - time.monotonic()))
            batch, self._results = self._results, []
            await self._apply(batch)

    async def _claim(self, now: float, room: int) -> int:
        """Lease outbox commands for the free slots; how many were claimed.

        A running runner's own commands come back leased from its commits; the outbox holds
        the first commands of items started here (claimed as soon as they are queued), and
        work left by a dead runner or queued by another process, so polling it is rare.
        """
        leased = await self.store.claim_commands(
            self.owner, room, now, self.lease_seconds, self.versions
        )
        # A row of ours whose lease lapsed (the clock jumped, the host slept) is running or
        # ready here already: the claim renewed its lease, and it must not run twice.
        here = {*self._in_flight, *(command.outbox_id for command in self._ready)}
        claimed = [command for command in leased if command.outbox_id not in here]
        # Another writer queued these, so any cached copy of their items predates them.
        for command in claimed:
            self._items.pop((command.workflow, command.key), None)
        self._ready.extend(claimed)
        return len(claimed)

    async def _wait(self, now: float, max_wait: float, stop: asyncio.Event | None) -> bool:
        """Sleep until work is produced or a timer is due; False when the runner is idle.

        Nothing is cleared here: a wake-up set since this loop pass began ends the sleep at
        once, so work produced while this pass looked for some is never left waiting.
        """
        due = None if self._own_work_only else await self.store.next_timer_due()
        nothing_due = due is None or due - now > max_wait
        busy = self._in_flight or self._ready or self._admissions
        idle = not busy and stop is None and nothing_due
        if idle and (self._own_work_only or await self.store.pending_commands(self.versions) == 0):
            return False
        timeout = _OUTBOX_POLL if due is None else min(_OUTBOX_POLL, max(due - now, 0.0))
        await self._sleep(timeout, stop)
        return True

    async def _sleep(self, timeout: float, stop: asyncio.Event | None = None) -> None:
        """Until work is produced here or by another writer, ``stop`` is set, or time is up."""
        waiters = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self.store.wait_for_work(timeout)),
            *([] if stop is None else [asyncio.ensure_future(stop.wait())]),
        ]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _fire_timers(self, now: float) -> bool:
        timers = await self.store.claim_timers(
            self.owner, self.batch_size, now, self.lease_seconds, self.versions
        )
        await self._apply(
            [_Pending((t.workflow, t.key), t.event, timer_id=t.timer_id) for t in timers]
        )
        return bool(timers)

    async def _fill(self) -> None:
        """Start ready commands in the free slots, each with its item's committed context."""
        free = self.concurrency - len(self._in_flight)
        if free <= 0 or not self._ready:
            return
        starting = self._within_limits(free)
        if not starting:
            return
        try:
            items = await self._items_for([(c.workflow, c.key) for c in starting])
        except TransientStoreError:
            self._ready.extendleft(reversed(starting))  # they keep their place and their lease
            raise
        for command in starting:
            ref = (command.workflow, command.key)
            item = items.get(ref)
            if item is None or _is_over(item, command.effect):
                # The copy is no older than the command, and a visit once over stays over.
                self._results.append(_Pending(ref, _not_run(command.effect), command.outbox_id))
                continue
            schema = self._result_schema(item, command.effect)
            task = asyncio.create_task(self._perform(command, item.context, schema))
            task.add_done_callback(functools.partial(self._forget, command))
            self._in_flight[command.outbox_id] = task
            self._running_commands[command.outbox_id] = command
            self._running_by_ref.setdefault(ref, set()).add(command.outbox_id)

    def _within_limits(self, free: int) -> list[ClaimedCommand]:
        """Take up to ``free`` ready commands that fit the limits; the rest keep their place."""
        if not (self.limits.states or self.limits.commands):
            return [self._ready.popleft() for _ in range(min(free, len(self._ready)))]
        running = self.limits.count(c.effect for c in self._running_commands.values())
        starting: list[ClaimedCommand] = []
        waiting: list[ClaimedCommand] = []
        while self._ready and len(starting) < free:
            command = self._ready.popleft()
            if self.limits.allows(command.effect, running):
                starting.append(command)
                running.update(self.limits.count([command.effect]))
            else:
                waiting.append(command)
        self._ready.extendleft(reversed(waiting))
        return starting

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

    def _result_schema(self, item: Item, effect: RunCommand) -> Mapping[str, JSON] | None:
        """The ``result_schema:`` the item's version declares for the command, if any."""
        definition = self.definitions.get((item.workflow, item.version))
        if definition is None:
            return None
        run = command_at(definition, effect.state, effect.branch, effect.command)
        return None if run is None else run.result_schema

    async def _perform(
        self,
        command: ClaimedCommand,
        context: Mapping[str, JSON],
        result_schema: Mapping[str, JSON] | None,
    ) -> None:
        event = await self.commands.execute(
            command.effect, command.workflow, command.key, context, result_schema
        )
        ref = (command.workflow, command.key)
        self._results.append(_Pending(ref, event, outbox_id=command.outbox_id))

    def _forget(self, command: ClaimedCommand, task: asyncio.Task[None]) -> None:
        """A command's task ended (or was cancelled, perhaps before it began): free its slot.

        A superseded command cancelled without an answer still consumes its work row, with
        the event of an attempt nobody waits for; one cancelled by a shutdown is handed back.
        """
        self._in_flight.pop(command.outbox_id, None)
        self._running_commands.pop(command.outbox_id, None)
        if command.outbox_id in self._superseded:
            self._superseded.discard(command.outbox_id)
            if task.cancelled():
                ref = (command.workflow, command.key)
                self._results.append(_Pending(ref, _not_run(command.effect), command.outbox_id))
        ref = (command.workflow, command.key)
        running = self._running_by_ref.get(ref)
        if running is not None:
            running.discard(command.outbox_id)
            if not running:
                del self._running_by_ref[ref]
        self._wake.set()

    async def _apply(self, batch: list[_Pending]) -> None:
        """Step every event against the freshest item and commit them together.

        The starts admitted meanwhile are committed in the same transaction. After a store
        outage the events wait to be applied again: a commit cut off changed nothing, and one
        that went through answers LOST or STALE for them the second time.
        """
        if not batch and not self._admissions:
            return
        try:
            await self._commit_batch(batch)
        except TransientStoreError:
            self._results[:0] = batch
            raise

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        items = await self._items_for([p.ref for p in batch])
        commits: list[StepCommit] = []
        stepped: list[tuple[_Pending, Item]] = []
        foreign: list[_Pending] = []
        for event in batch:
            item = items.get(event.ref)
            if item is None:
                continue
            definition = self.definitions.get((item.workflow, item.version))
            if definition is None:
                foreign.append(event)
                continue
            if event.spend_only and isinstance(event.event, CommandSucceeded | CommandFailed):
                result = record_spend(definition, item, event.event, self.clock())
            else:
                result = self.step_safely(definition, item, event.event)
            commits.append(StepCommit(result, item.seq, event.outbox_id, event.timer_id))
            stepped.append((event, item))
            if result.outcome is not Outcome.IGNORED:
                items[event.ref] = result.item
        outcomes = await self._commit_with_admissions(commits)
        await self._settle_outcomes(stepped, outcomes)
        if foreign:
            await self._hand_back(foreign)

    async def _settle_outcomes(
        self, stepped: list[tuple[_Pending, Item]], outcomes: list[CommitOutcome]
    ) -> None:
        """Step STALE events again on a fresh copy; quarantine items whose step was REJECTED.

        A LOST event is not applied: the work row it consumed was cancelled by another writer
        or belongs to another worker now. What it spent on models is still recorded, on its
        own, so an operator acting while an agent runs never loses that spend.
        """
        failures: list[StepCommit] = []
        failed_events: list[_Pending] = []
        for (event, item), outcome in zip(stepped, outcomes, strict=True):
            if outcome.status is CommitStatus.STALE:
                self._results.append(event)
            elif outcome.status is CommitStatus.LOST and _spent(event.event):
                self._results.append(_Pending(event.ref, event.event, spend_only=True))
            elif outcome.status is CommitStatus.REJECTED:
                reason = f"its step could not be stored: {outcome.error}"
                logger.warning("quarantined item %s: %s", item.key, reason)
                result = fail_item(item, reason, self.clock())
                failures.append(StepCommit(result, item.seq, event.outbox_id, event.timer_id))
                failed_events.append(event)
        if not failures:
            return
        for event, outcome in zip(failed_events, await self.commit(failures), strict=True):
            if outcome.status is CommitStatus.STALE:
                self._results.append(event)

    async def _hand_back(self, events: list[_Pending]) -> None:
        """Release work of versions this runner does not hold, for a worker that does."""
        await self.store.release(
            [e.outbox_id for e in events if e.outbox_id is not None],
            [e.timer_id for e in events if e.timer_id is not None],
        )

    def _leased(self) -> list[int]:
        return [*self._in_flight, *(command.outbox_id for command in self._ready)]

    async def _heartbeat(self) -> None:
        """Keep running work leased; a beat lost to a store outage is made up by the next."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            leased = self._leased()
            if leased:
                until = self.clock() + self.lease_seconds
                try:
                    await self.store.extend_leases(self.owner, leased, until)
                except TransientStoreError as exc:
                    logger.warning("runner %s: heartbeat missed: %s", self.owner, exc)

    async def _shutdown(self) -> None:
        """Stop running commands and hand their work back so nothing waits for a lease."""
        leased = self._leased()
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.commands.close()
        self._running = self._admitting = False
        if self._results or self._admissions:  # admissions now commit unleased, for any worker
            await self._apply(self._results)
            self._results = []
        await self.store.release(leased, [])
        self._ready.clear()
        self._items.clear()


def _is_over(item: Item, effect: RunCommand) -> bool:
    """Whether the item no longer waits for this command attempt.

    Visits and attempts only move forward, so an attempt over in some copy of the item is over
    in every later copy too.
    """
    if item.status in (ItemStatus.DONE, ItemStatus.FAILED):
        return True
    if item.state != effect.state or item.visit != effect.visit:
        return True
    if effect.branch is None:
        return item.attempt != effect.attempt or item.retrying
    run = next((r for r in item.branches if r.name == effect.branch), None)
    return run is None or run.status is not BranchStatus.RUNNING or run.attempt != effect.attempt


def _commands_of(batch: Sequence[StepCommit]) -> int:
    """How many commands committing ``batch`` queues."""
    return sum(isinstance(e, RunCommand) for c in batch for e in c.result.effects)


def _spent(event: Event) -> bool:
    """Whether ``event`` is a command attempt that reports model usage."""
    return isinstance(event, CommandSucceeded | CommandFailed) and bool(event.usage)


def _not_run(effect: RunCommand) -> CommandFailed:
    """The event that consumes a command skipped because its attempt was already over."""
    return CommandFailed(
        state=effect.state,
        visit=effect.visit,
        attempt=effect.attempt,
        error_kind=ErrorKind.PERMANENT,
        message="not run: the item no longer waited for this attempt",
        branch=effect.branch,
    )
