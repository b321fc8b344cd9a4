"""OpenTelemetry traces: a span per committed step, and GenAI-convention spans per model call.

Tracing is on only when an exporter is configured the standard way: ``OTEL_TRACES_EXPORTER``
(``otlp`` or ``console``) or ``OTEL_EXPORTER_OTLP_ENDPOINT``. Only then is the SDK imported
(the ``otel`` extra); without, nothing is traced and nothing costs. Model calls are traced by
pydantic-ai's own instrumentation (``AISettings.tracer_provider``), which follows the GenAI
semantic conventions (``chat {model}`` spans with ``gen_ai.*`` attributes); steps by
:class:`StepTracer`, a commit observer.
"""

from __future__ import annotations

import os
from typing import Any

from statewise.worker.observers import CommitBatch

STEP_SPAN = "statewise.step"


def configured_tracer_provider() -> Any | None:
    """A TracerProvider exporting as the OTEL_* environment says, or None when it says nothing."""
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "")
    if exporter in ("", "none") and not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "statewise"}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class StepTracer:
    """A commit observer turning each committed step into a ``statewise.step`` span.

    The span covers the transaction the step was committed in; its attributes say which item
    moved from where to where on which event.
    """

    def __init__(self, tracer_provider: Any) -> None:
        self.tracer = tracer_provider.get_tracer("statewise")

    def observe(self, batch: CommitBatch) -> None:
        """One span per committed step of the batch."""
        start, end = int(batch.started * 1e9), int(batch.ended * 1e9)
        for result in batch.committed():
            first, last = result.history[0], result.history[-1]
            span = self.tracer.start_span(
                STEP_SPAN,
                start_time=start,
                attributes={
                    "statewise.workflow": result.item.workflow,
                    "statewise.item.key": result.item.key,
                    "statewise.state.from": first.from_state or "",
                    "statewise.state.to": last.to_state,
                    "statewise.event": first.event,
                    "statewise.outcome": result.outcome.value,
                    "statewise.status": result.item.status.value,
                },
            )
            span.end(end_time=end)
