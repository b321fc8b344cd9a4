"""A task that runs beside a block of work and stops with it: the shape of periodic rounds.

The catalog refresh and the retention rounds both loop for as long as a worker or server
runs; leaving the block cancels the loop and waits for it to end, so nothing outlives the
process's work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def beside(rounds: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run ``rounds`` as a task named ``name`` while the block runs; cancel it on leaving."""
    task = asyncio.create_task(rounds, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
