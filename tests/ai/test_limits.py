"""Per-provider limits: requests in flight and requests per minute, shared by every agent."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from statewise.ai.limits import RateLimiter
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, registered, workflow
from .servers import FakeProvider, openai_text


def test_the_provider_concurrency_limit_is_respected(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    first = agent("first", instructions="A")
    second = agent("second", instructions="B")
    openai.reply(*[replace(openai_text("ok"), delay=0.1)] * 8)

    async def scenario() -> None:
        async with registered(
            store, workflow(first, second), openai=openai, provider_concurrency={"openai": 2}
        ) as agents:
            calls = [
                agents.run(name, {}, key=f"k{n}") for n in range(4) for name in ("first", "second")
            ]
            results = await asyncio.gather(*calls)
        assert all(result.value == "ok" for result in results)
        # Eight requests of 0.1 s through two slots: most waited for one, recorded apart.
        assert max(result.usage["queued_ms"] for result in results) >= 200

    asyncio.run(scenario())
    assert len(openai.requests) == 8
    assert openai.max_in_flight == 2


def test_requests_per_minute_are_spaced_evenly() -> None:
    limiter = RateLimiter(max_running=10, per_minute=1200, name="test")  # one per 50 ms
    started: list[float] = []

    async def one() -> None:
        await limiter.acquire("test")
        started.append(time.monotonic())
        limiter.release()

    async def scenario() -> float:
        asked = time.monotonic()
        await asyncio.gather(*(one() for _ in range(4)))
        return asked

    asked = asyncio.run(scenario())
    # The n-th request starts no sooner than n intervals after they were asked for. Only lower
    # bounds hold on a busy machine: a task woken late records its start late, so offsets from
    # the first recorded start (or gaps between neighbours) would measure the scheduler.
    offsets = [s - asked for s in sorted(started)]
    assert all(offset >= n * 0.05 - 0.002 for n, offset in enumerate(offsets)), offsets
    assert limiter.running_count == 0


def test_a_cancelled_wait_gives_its_slot_back() -> None:
    limiter = RateLimiter(max_running=1, per_minute=6, name="test")  # one per 10 s

    async def scenario() -> None:
        await limiter.acquire("test")
        limiter.release()
        waiting = asyncio.create_task(limiter.acquire("test"))
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert limiter.running_count == 0

    asyncio.run(scenario())
