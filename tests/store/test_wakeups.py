"""wait_for_work: another writer's queued work wakes a waiting worker before its timeout."""

from __future__ import annotations

import asyncio
import time

from .conftest import OpenStore
from .helpers import commit, run, started


def test_another_writers_commit_wakes_a_waiting_worker(open_store: OpenStore) -> None:
    waiting, writer = open_store(), open_store()

    async def scenario() -> float:
        await waiting.wait_for_work(0.05)  # the first wait starts listening
        woken = asyncio.create_task(waiting.wait_for_work(30.0))
        await asyncio.sleep(0.3)
        assert not woken.done()
        await commit(writer, started("a"))  # queues a command nobody holds
        began = time.monotonic()
        await asyncio.wait_for(woken, 10.0)
        return time.monotonic() - began

    assert run(scenario()) < 10.0


def test_with_nothing_new_the_wait_lasts_its_timeout(open_store: OpenStore) -> None:
    store = open_store()
    began = time.monotonic()
    run(store.wait_for_work(0.2))
    assert time.monotonic() - began >= 0.2
