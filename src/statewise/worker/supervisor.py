"""Keep a process's runner running: restart it with backoff, or give up loudly.

A runner that stops while its process goes on serving is the worst outage: the API accepts
items that never move. ``Supervisor`` runs the runner until asked to stop; when the run ends
any other way (a crash, the SQLite lock held by another process) it logs the cause and starts
it again after a doubling pause. A run that lasted ``healthy_after`` seconds forgets earlier
failures; more than ``restarts`` failures in a row and the supervisor gives up: its state is
FAILED, ``failure`` says why, and ``serve``/``worker`` exit non-zero with that message.
Its state is what ``/readyz`` reports for the workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from enum import StrEnum

from statewise.errors import RunnerStopped, StatewiseError
from statewise.worker.runner import Runner

logger = logging.getLogger("statewise.worker")


class RunnerState(StrEnum):
    """Where a supervised runner is; only RUNNING counts as ready."""

    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How often and how fast a runner that stopped is started again."""

    restarts: int = 5
    delay: float = 1.0
    cap: float = 30.0
    healthy_after: float = 60.0

    def pause(self, failures: int) -> float:
        """The wait before restart number ``failures``: doubling from ``delay`` up to ``cap``."""
        return float(min(self.cap, self.delay * 2 ** (failures - 1)))


class Supervisor:
    """Runs one runner until ``stop``, restarting it per ``policy``; see the module docstring."""

    def __init__(self, runner: Runner, policy: RestartPolicy | None = None) -> None:
        self.runner = runner
        self.policy = policy or RestartPolicy()
        self.state = RunnerState.STARTING
        self.cause: str | None = None
        self.gave_up = asyncio.Event()

    @property
    def failure(self) -> RunnerStopped | None:
        """Why the supervisor gave up, as the error a command line exits with; else None."""
        if self.state is not RunnerState.FAILED:
            return None
        return RunnerStopped(
            f"the workers stopped and were not restarted after {self.policy.restarts} "
            f"restart(s): {self.cause}"
        )

    async def run(self, stop: asyncio.Event, *, drain: float = 0.0) -> None:
        """Until ``stop`` is set (then STOPPED) or the restarts run out (then FAILED)."""
        failures = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.runner.run(stop=stop, drain=drain, on_ready=self._running)
            except Exception as exc:  # a runner that stops on its own is an outage, whatever why
                self.cause = _describe(exc)
                if time.monotonic() - started >= self.policy.healthy_after:
                    failures = 0
                failures += 1
                if failures > self.policy.restarts:
                    self._give_up(exc)
                    return
                pause = self.policy.pause(failures)
                self.state = RunnerState.RESTARTING
                logger.error(
                    "the workers stopped (%s); restart %d of %d in %.1fs",
                    self.cause,
                    failures,
                    self.policy.restarts,
                    pause,
                    exc_info=None if isinstance(exc, StatewiseError) else exc,  # a bug: trace it
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
        self.state = RunnerState.STOPPED

    async def _running(self) -> None:
        self.state = RunnerState.RUNNING

    def _give_up(self, exc: Exception) -> None:
        self.state = RunnerState.FAILED
        self.gave_up.set()
        logger.critical("%s", self.failure, exc_info=exc)


def _describe(exc: Exception) -> str:
    """The cause in one line: statewise's own message, or the type and text of anything else."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, StatewiseError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
