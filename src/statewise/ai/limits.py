"""Per-provider limits on requests in flight and requests per minute.

Starting 10,000 items must not open 10,000 requests to one API. Every agent whose model runs
on the same provider shares one limiter, so the limit is per provider and not per agent. The
limiters are pydantic-ai's own (``ConcurrencyLimiter`` through ``ConcurrencyLimitedModel``):
a slot is held for one model request only, never while a tool runs, and an optional request
rate is added here by spacing the moments slots are handed out.

Limiters belong to the event loop that uses them, because the asyncio primitives under them
do: one runner process has one loop, so every agent in it shares them.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass

from pydantic_ai.concurrency import AbstractConcurrencyLimiter, ConcurrencyLimiter
from pydantic_ai.models import Model
from pydantic_ai.models.concurrency import ConcurrencyLimitedModel

from statewise.ai.models import ModelRef
from statewise.ai.settings import AISettings
from statewise.errors import ConfigurationError

SECONDS_PER_MINUTE = 60.0


class RateLimiter(AbstractConcurrencyLimiter):
    """At most ``max_running`` requests in flight, started at most ``per_minute`` a minute.

    Requests are spaced evenly (one every ``60 / per_minute`` seconds) rather than allowed in
    bursts, which is what providers' per-minute quotas tolerate best.
    """

    def __init__(self, max_running: int, per_minute: float | None, name: str) -> None:
        if per_minute is not None and per_minute <= 0:
            raise ConfigurationError(f"requests_per_minute for {name} must be positive")
        self._slots = ConcurrencyLimiter(max_running, name=name)
        self._interval = SECONDS_PER_MINUTE / per_minute if per_minute else 0.0
        self._next_start = 0.0

    @property
    def running_count(self) -> int:
        """Requests in flight now."""
        return self._slots.running_count

    async def acquire(self, source: str) -> None:
        """Wait for a slot, then for this request's turn under the rate."""
        await self._slots.acquire(source)
        try:
            await self._wait_for_turn()
        except BaseException:
            self._slots.release()
            raise

    def release(self) -> None:
        """Give the slot back; the rate spacing is independent of it."""
        self._slots.release()

    async def _wait_for_turn(self) -> None:
        if not self._interval:
            return
        # No await between reading and reserving, so tasks of one loop cannot race here.
        now = time.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


@dataclass(frozen=True, slots=True)
class _LimitKey:
    provider: str
    max_running: int
    per_minute: float | None


_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_LimitKey, RateLimiter]] = (
    weakref.WeakKeyDictionary()
)


def limiter_for(model: ModelRef, settings: AISettings) -> RateLimiter:
    """The limiter every agent on ``model``'s provider shares within the running event loop."""
    provider = model.provider
    key = _LimitKey(
        provider, model.concurrency(settings), settings.requests_per_minute.get(provider)
    )
    if key.max_running < 1:
        raise ConfigurationError(
            f"the concurrency for provider {provider!r} must be at least 1, not {key.max_running}"
        )
    shared = _LIMITERS.setdefault(asyncio.get_running_loop(), {})
    if key not in shared:
        shared[key] = RateLimiter(key.max_running, key.per_minute, name=f"statewise:{provider}")
    return shared[key]


def limited(model: Model, ref: ModelRef, settings: AISettings) -> Model:
    """``model`` behind its provider's shared limiter."""
    return ConcurrencyLimitedModel(model, limiter_for(ref, settings))
