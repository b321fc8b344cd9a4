"""A watchdog for the event loop, so that a command blocking it is reported by name.

An async command that calls blocking code (``time.sleep``, a sync HTTP client, a long
computation) holds the event loop: no other command, timer, commit or heartbeat moves until it
lets go, and no timeout can fire. asyncio cannot preempt it, but it can be noticed. A thread
wakes every quarter of the threshold, asks the loop to run a heartbeat and looks which task the
loop is running. When the loop has not answered for longer than the threshold and one task was
running at every look throughout, that task is the culprit (each command runs in a task named
after the command and the item). A loop that is merely busy, running many tasks in turn, blames
nobody. The watchdog logs a warning naming the task and keeps how long each task held the loop,
so the attempt's audit note can say so.

The time is counted from the last look that saw another task (or the last heartbeat), so it
may exceed the real block by up to a quarter of the threshold.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("statewise.worker")
Task = asyncio.Task[Any]


@dataclass(slots=True)
class _Stall:
    """The loop has not answered since ``since``; ``task`` was running at the time."""

    task: Task | None
    since: float


class LoopWatchdog:
    """Watches one event loop at a time from a daemon thread; see the module docstring."""

    def __init__(self, threshold: float) -> None:
        if threshold <= 0:
            raise ValueError(f"the event loop watchdog needs a positive threshold, not {threshold}")
        self.threshold = threshold
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_beat = 0.0
        self._beat_due = False
        self._holder = _Stall(None, 0.0)  # the task seen at the last look, and since when
        self._stall: _Stall | None = None
        self._blocked: weakref.WeakKeyDictionary[Task, float] = weakref.WeakKeyDictionary()

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch ``loop`` (and stop watching any other); cheap when it is already watched."""
        if loop is self._loop:
            return
        self.stop()
        with self._lock:
            self._loop, self._stop = loop, threading.Event()
            now = time.monotonic()
            self._last_beat, self._beat_due, self._stall = now, False, None
            self._holder = _Stall(None, now)
        self._thread = threading.Thread(
            target=self._watch, args=(loop, self._stop), name="statewise-loop-watchdog", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the watching thread, if any."""
        thread, self._thread, self._loop = self._thread, None, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def blocked(self, task: Task) -> float:
        """Seconds ``task`` has held the loop past the threshold, counted once: then forgotten.

        Includes a block still going on: a command that blocked and then returned is read in
        the same step of its task, before the loop could answer the heartbeat.
        """
        if self._stall is None and not self._blocked:  # the usual case, read without the lock
            return 0.0
        with self._lock:
            total = self._blocked.pop(task, 0.0)
            stall = self._stall
            if stall is not None and stall.task is task:
                now = time.monotonic()
                total += now - stall.since
                stall.since = now
        return total

    def _watch(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        last_look = time.monotonic()
        while not stop.wait(self.threshold / 4) and not loop.is_closed():
            with self._lock:
                now = time.monotonic()
                if not loop.is_running():  # between two runs nothing is due: nothing is blocked
                    self._last_beat = now
                elif not self._beat_due:
                    self._beat_due = True
                    try:
                        loop.call_soon_threadsafe(self._beat)
                    except RuntimeError:  # the loop closed meanwhile
                        return
                stall = self._look(loop, now, last_look)
                last_look = now
            if stall is not None:
                _warn(stall.task, now - stall.since)

    def _look(self, loop: asyncio.AbstractEventLoop, now: float, last_look: float) -> _Stall | None:
        """Note which task runs now; a new stall if one task has held the loop too long."""
        task = asyncio.current_task(loop)
        if task is not self._holder.task:
            self._holder = _Stall(task, last_look)  # it began at most one look ago
        since = max(self._holder.since, self._last_beat)
        if self._stall is not None or now - since <= self.threshold:
            return None
        self._stall = _Stall(task, since)
        return self._stall

    def _beat(self) -> None:
        """Runs on the loop: it answers; a stall that was noticed ends and is counted."""
        with self._lock:
            now = time.monotonic()
            stall, self._stall = self._stall, None
            if stall is not None and stall.task is not None:
                self._blocked[stall.task] = self._blocked.get(stall.task, 0.0) + now - stall.since
            self._last_beat, self._beat_due = now, False


def _warn(task: Task | None, silent: float) -> None:
    if task is None:
        logger.warning(
            "the event loop has not answered for %.1fs, outside any task: a callback blocks it",
            silent,
        )
        return
    logger.warning(
        "%s has blocked the event loop for %.1fs: an async command must not call blocking code; "
        "await instead, or make it a plain function so that it runs in a thread",
        task.get_name(),
        silent,
    )
