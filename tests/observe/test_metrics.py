"""/metrics served by a real uvicorn server over a real SQLite store moved by a real Runner."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from statewise.definition.model import AlertRule, Definition
from statewise.engine.item import ItemStatus
from statewise.observe.endpoint import metrics_router
from statewise.observe.metrics import Metrics
from statewise.store.sqlite import SQLiteStore
from statewise.worker.runner import Runner
from statewise.worker.writer import ItemWriter
from worker.workflows import registry, review_flow

from .conftest import serving

ALERTS = (AlertRule(state="review", max_items=2), AlertRule(state="fetch", max_age=3600))


def reviewed() -> Definition:
    """review_flow with two alert rules."""
    return replace(review_flow(), alerts=ALERTS)


def samples(text: str) -> dict[str, list[Sample]]:
    found: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def value(found: dict[str, list[Sample]], name: str, **labels: str) -> float:
    matching = [s.value for s in found.get(name, []) if labels.items() <= s.labels.items()]
    assert matching, f"no sample {name} {labels} in {sorted(found)}"
    return sum(matching)


def app_for(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    app.include_router(metrics_router(metrics))
    return app


async def scrape(client: Any) -> dict[str, list[Sample]]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def test_metrics_of_a_running_store(tmp_path: Path) -> None:
    definition = reviewed()

    async def main() -> None:
        store = SQLiteStore(tmp_path / "run.sqlite")
        try:
            metrics = Metrics(store, lambda: [definition], max_age=0.0)
            runner = Runner(store, [definition], registry, observer=metrics.instruments)
            items = [(f"item-{n}", {"score": 90}) for n in range(3)] + [("low", {"score": 10})]
            await runner.start(definition, items)
            await runner.run(max_wait=0.0)
            # A second writer (the command line, another process) sends an approval: the
            # store's series see it, this process's counters do not.
            other = ItemWriter(store, [definition])
            await other.send("review", "item-0", "approve", {"by": "ann"}, "ann")
            async with serving(app_for(metrics)) as client:
                found = await scrape(client)
            assert await store.stuck_items() == []
        finally:
            await store.close()

        items_at = {
            (s.labels["state"], s.labels["status"]): s.value for s in found["statewise_items"]
        }
        assert items_at == {
            ("review", ItemStatus.WAITING.value): 2,
            ("publish", ItemStatus.ACTIVE.value): 1,
            ("rejected", ItemStatus.DONE.value): 1,
        }
        assert {s.labels["version"] for s in found["statewise_items"]} == {"1"}
        # 2 items waiting for review reach max_items 2: firing, ratio 1; fetch is empty.
        review = {"workflow": "review", "state": "review", "rule": "max_items"}
        assert value(found, "statewise_alert_firing", **review) == 1
        assert value(found, "statewise_alert_ratio", **review) == 1
        fetch = {"workflow": "review", "state": "fetch", "rule": "max_age"}
        assert value(found, "statewise_alert_firing", **fetch) == 0
        # This runner committed every step but the approval the other writer sent.
        moves = {
            (s.labels["from_state"], s.labels["to_state"]): s.value
            for s in found["statewise_transitions_total"]
        }
        assert moves == {("", "fetch"): 4, ("fetch", "route"): 4, ("route", "review"): 3,
                         ("route", "rejected"): 1}  # fmt: skip
        fetched = {"workflow": "review", "state": "fetch", "command": "fetch"}
        assert value(found, "statewise_command_duration_seconds_count", **fetched) == 4
        assert value(found, "statewise_command_duration_seconds_count", outcome="succeeded") == 4
        assert value(found, "statewise_steps_committed_total", status="committed") >= 8
        assert value(found, "statewise_metrics_store_errors_total") == 0
        # How items ended over the last hour: the rejected one finished in `rejected`.
        ended = {
            (s.labels["state"], s.labels["outcome"]): s.value
            for s in found["statewise_completions_last_hour"]
            if s.value
        }
        assert ended == {("rejected", "finished"): 1}

    asyncio.run(main())
