"""Readiness on a real store: a quarantine flood and an unreachable store each fail /readyz."""

from __future__ import annotations

import asyncio
from pathlib import Path

from statewise.engine import fail_item
from statewise.observe.health import ReadinessPolicy, readiness
from statewise.store import StepCommit
from statewise.store.sqlite import SQLiteStore
from statewise.worker import ItemWriter
from worker.workflows import review_flow

NOW = 1_700_000_000.0


def test_more_failed_items_than_allowed_is_a_flood_and_a_closed_store_is_unreachable(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "health.sqlite")
    definition = review_flow()
    policy = ReadinessPolicy(failed_window=60, max_failed=2)

    async def scenario() -> None:
        writer = ItemWriter(store, [definition], clock=lambda: NOW - 30)
        await writer.start(definition, [(f"k{n}", {"score": 1}) for n in range(4)])
        for key in ("k0", "k1"):
            item = await store.get_item(definition.name, key)
            await store.commit([StepCommit(fail_item(item, "boom", NOW - 10), item.seq)])
        calm = await readiness(store, None, policy, NOW)
        assert calm.status_code == 200 and calm.body()["failed"] == []
        assert calm.body()["checks"]["workers"]["detail"] == "this process runs no workers"
        item = await store.get_item(definition.name, "k2")
        await store.commit([StepCommit(fail_item(item, "boom", NOW - 5), item.seq)])
        flood = await readiness(store, None, policy, NOW)
        assert (flood.status_code, flood.body()["failed"]) == (503, ["quarantine"])
        assert "3 item(s) failed in the last 60s (at most 2)" in str(flood.body())
        assert (await readiness(store, None, policy, NOW + 120)).ready  # the window moved on
        await store.close()
        gone = await readiness(store, None, policy, NOW)
        assert gone.status_code == 503 and gone.body()["failed"] == ["store", "quarantine"]

    asyncio.run(scenario())
