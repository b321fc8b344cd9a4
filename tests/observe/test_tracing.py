"""A span per committed step, with the item, the move and the event as attributes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from statewise.observe.tracing import STEP_SPAN, StepTracer, configured_tracer_provider
from statewise.store import open_store
from statewise.worker.runner import Runner
from worker.workflows import registry, stages_flow, stages_items


def test_every_committed_step_is_one_span(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def main() -> int:
        store = open_store(str(tmp_path / "trace.sqlite"))
        try:
            definition = stages_flow()
            await store.save_workflow(definition, "stages", [])
            runner = Runner(store, [definition], registry, observer=StepTracer(provider))
            await runner.start(definition, stages_items(3))
            await runner.run(max_wait=0)
            rows = 0
            for n in range(3):
                rows += len(await store.history(definition.name, f"item-{n}"))
            return rows
        finally:
            await store.close()

    rows = asyncio.run(main())
    spans = [s for s in exporter.get_finished_spans() if s.name == STEP_SPAN]
    assert spans and all(s.attributes["statewise.workflow"] == "stages" for s in spans)
    assert {s.attributes["statewise.item.key"] for s in spans} >= {"item-1", "item-2"}
    assert any(s.attributes["statewise.status"] == "done" for s in spans)
    assert len(spans) <= rows  # one span per committed step; a step may write several rows


def test_tracing_is_off_unless_an_exporter_is_configured(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert configured_tracer_provider() is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert configured_tracer_provider() is not None
