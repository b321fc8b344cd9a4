"""Sync commands on threads the runner owns, and the rule that keeps their attempts apart.

A sync command runs on its runner's thread pool, so it never holds the event loop; the pool is
sized to the runner's concurrency (asyncio's default executor has only a few threads, and every
command in flight may be a sync one).

A thread cannot be killed. When an attempt's timeout cuts it off, or the runner cancels it, its
thread runs on to its end, and the next attempt of the same command for the same item must not
run beside it: both would perform the same side effect at once. So every thread still running
is remembered by its :data:`Slot` (the item, state, visit and branch it works for), for the
whole process (threads belong to the process, not to one runner), and a new attempt in a slot
first waits for the earlier thread to end. That wait is bounded by the new attempt's own
timeout; past it the new attempt fails as transient without starting, and the one after it
waits again, so a thread that never ends exhausts the retries instead of freezing the item.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from statewise.contract import CommandContext
from statewise.errors import TransientError

JSON = Any
Slot = tuple[str, str, str, int, str | None]
"""Attempts that must never overlap: (workflow, item key, state, visit, branch)."""

logger = logging.getLogger("statewise.worker")


@dataclass(slots=True)
class _Thread:
    """A sync attempt running in a thread, remembered until the thread ends.

    ``stopped`` says why its caller stopped waiting for it (its timeout, a cancellation), for
    the note of the attempt that has to wait for it.
    """

    command: str
    attempt: int
    future: Future[JSON]
    pool: ThreadPoolExecutor
    stopped: str | None = None

    def running(self) -> bool:
        return not self.future.done()


_running: dict[Slot, _Thread] = {}
_lock = threading.Lock()


class CommandThreads:
    """A runner's thread pool for sync commands; see the module docstring for the rule."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a command thread pool needs at least one thread, not {size}")
        self.size = size
        self._pool: ThreadPoolExecutor | None = None

    async def wait_turn(
        self, slot: Slot, command: str, attempt: int, limit: float | None
    ) -> str | None:
        """Wait (at most ``limit`` seconds) until no earlier thread of ``slot`` is running.

        Returns the audit note of the wait, None when there was nothing to wait for; raises
        TransientError when the earlier thread is still running after ``limit``.
        """
        with _lock:
            earlier = _running.get(slot)
        if earlier is None or not earlier.running():
            return None
        began = time.monotonic()
        after = f" after {earlier.stopped}" if earlier.stopped else ""
        try:
            async with asyncio.timeout(limit):
                await _ended(earlier.future)
        except TimeoutError:
            raise TransientError(
                f"attempt {attempt} of command {command!r} did not start: attempt "
                f"{earlier.attempt} is still running in its thread{after}, "
                f"{time.monotonic() - began:.1f}s later (a thread cannot be stopped); the next "
                f"attempt waits for it again"
            ) from None
        waited = time.monotonic() - began
        return (
            f"waited {waited:.1f}s for attempt {earlier.attempt}, still running in its "
            f"thread{after}, to end"
        )

    async def run(
        self,
        slot: Slot,
        command: str,
        attempt: int,
        function: Callable[..., JSON],
        call: CommandContext,
    ) -> JSON:
        """Run ``function(call)`` on the pool; cancelling this stops waiting, not the thread.

        The caller has already waited its turn (``wait_turn``); nothing here yields to the
        event loop before the thread is remembered, so no other attempt can slip in between.
        """
        pool = self._pool or self._open()
        future = pool.submit(function, call)
        thread = _Thread(command, attempt, future, pool)
        with _lock:
            _running[slot] = thread
        future.add_done_callback(partial(_forget, slot, thread))
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()  # succeeds only if the thread never started, and then never will
            raise

    def abandon(self, slot: Slot, attempt: int, reason: str) -> bool:
        """Record that ``attempt``'s caller stopped waiting for it; True if its thread runs on."""
        with _lock:
            thread = _running.get(slot)
            if thread is None or thread.attempt != attempt or not thread.running():
                return False
            thread.stopped = reason
            return True

    def close(self) -> None:
        """Shut the pool down without waiting; warn about the threads that are still running.

        Queued calls are dropped; a running thread cannot be stopped and stays remembered, so
        a later attempt in its slot (another runner of this process) still waits for it.
        """
        pool, self._pool = self._pool, None
        if pool is None:
            return
        pool.shutdown(wait=False, cancel_futures=True)
        with _lock:
            left = [(s, t) for s, t in _running.items() if t.pool is pool and t.running()]
        for (workflow, key, state, _, _), thread in left:
            logger.warning(
                "command %r for item %s/%s (state %s, attempt %d) is still running in its "
                "thread as the runner stops; a thread cannot be stopped",
                thread.command,
                workflow,
                key,
                state,
                thread.attempt,
            )

    def _open(self) -> ThreadPoolExecutor:
        self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="statewise-command")
        return self._pool


def _forget(slot: Slot, thread: _Thread, _: Future[JSON]) -> None:
    with _lock:
        if _running.get(slot) is thread:
            del _running[slot]


def _ended(future: Future[JSON]) -> asyncio.Future[None]:
    """A loop future set when ``future`` is done; cancelling it leaves ``future`` alone.

    (``asyncio.wrap_future`` would cancel the thread's future along with the waiter.)
    """
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not ended.done():
            ended.set_result(None)

    def done(_: Future[JSON]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(settle)

    future.add_done_callback(done)
    return ended
