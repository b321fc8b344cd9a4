"""Prometheus metrics of one service: what the store holds, and what this process's writers did.

Two kinds of series live in one :class:`Metrics` registry (a registry of its own, never
prometheus-client's global one, so one process, or one test, can hold several services):

- read from the store at scrape time through a :class:`~statewise.observe.snapshot.StoreSnapshot`
  (every worker's work, whichever process did it): ``statewise_items``, ``statewise_open_tasks``,
  ``statewise_open_task_oldest_age_seconds``, ``statewise_model_tokens_total``,
  ``statewise_model_cost_usd_total``, ``statewise_model_calls_total``,
  ``statewise_alert_firing``, ``statewise_alert_ratio``, ``statewise_completions_last_hour``
  (how items ended per workflow, state and outcome over the last hour, from the per-minute
  figures commits keep; ``sum by (workflow, outcome)`` gives a workflow's completion rates);
- counted by this process's writers through the commit observer hook
  (:class:`CommitInstruments`): ``statewise_transitions_total``,
  ``statewise_command_duration_seconds``, ``statewise_steps_committed_total`` and
  ``statewise_budget_exceeded_total``;
- counted by this process's alert rounds: ``statewise_alert_deliveries_total`` (by
  destination and outcome, ``sent`` or ``failed``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from statewise.definition.model import Definition
from statewise.engine.item import HistoryRecord
from statewise.observe.snapshot import DEFAULT_MAX_AGE, StoreSnapshot, StoreSnapshots
from statewise.store.base import CostRow, Store
from statewise.worker.observers import CommitBatch

COMMAND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
"""Seconds; model calls take tens of seconds, so the buckets reach past the default 10 s."""
SUCCEEDED = "succeeded"


class CommitInstruments:
    """Counts this process's commits: transitions, command durations, step outcomes.

    A commit observer (:mod:`statewise.worker.observers`): hand it to every writer of the
    process (the runner, the service's writer) as ``observer=``.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.transitions = Counter(
            "statewise_transitions",
            "Moves between states committed by this process.",
            ["workflow", "from_state", "to_state", "event"],
            registry=registry,
        )
        self.command_duration = Histogram(
            "statewise_command_duration_seconds",
            "Duration of command attempts whose result a step committed by this process "
            "accepted; outcome is succeeded or the error kind.",
            ["workflow", "state", "command", "outcome"],
            buckets=COMMAND_BUCKETS,
            registry=registry,
        )
        self.steps = Counter(
            "statewise_steps_committed",
            "Steps this process handed to the store, by what became of them.",
            ["status"],
            registry=registry,
        )
        self.budget_exceeded = Counter(
            "statewise_budget_exceeded",
            "Items this process sent to a budget's on_exceeded state, by the state whose agent "
            "call was refused or cut short, the budget (workflow or state) and what ran out "
            "(tokens or cost).",
            ["workflow", "state", "budget", "measure"],
            registry=registry,
        )

    def observe(self, batch: CommitBatch) -> None:
        """Count the batch's outcomes and the audit rows of its committed steps."""
        for outcome in batch.outcomes:
            self.steps.labels(outcome.status.value).inc()
        for result in batch.committed():
            for record in result.history:
                self._record(result.item.workflow, record)

    def _record(self, workflow: str, record: HistoryRecord) -> None:
        if record.budget is not None:
            budget = record.budget
            self.budget_exceeded.labels(
                workflow,
                str(budget.get("state", "")),
                str(budget.get("scope", "")),
                str(budget.get("measure", "")),
            ).inc()
        if record.from_state != record.to_state or record.transition is not None:
            self.transitions.labels(
                workflow, record.from_state or "", record.to_state, record.event
            ).inc()
        if record.command is not None and record.duration is not None:
            outcome = SUCCEEDED if record.error is None else record.error.get("kind", "error")
            self.command_duration.labels(
                workflow, record.from_state or record.to_state, record.command, outcome
            ).observe(record.duration)


@dataclass(frozen=True, slots=True)
class _Usage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced_calls: int = 0


class StoreCollector:
    """Turns the latest store snapshot into samples; reads nothing itself (see snapshot.py)."""

    def __init__(self, snapshots: StoreSnapshots) -> None:
        self.snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        """Every store-side family, plus how old the snapshot served is."""
        snapshot = self.snapshots.latest
        errors = CounterMetricFamily(
            "statewise_metrics_store_errors", "Failed reads of the store for /metrics."
        )
        errors.add_metric([], self.snapshots.errors)
        yield errors
        if snapshot is None:
            return
        age = GaugeMetricFamily(
            "statewise_metrics_snapshot_age_seconds", "Age of the store snapshot served."
        )
        age.add_metric([], max(self.snapshots.clock() - snapshot.taken_at, 0.0))
        yield age
        yield _items(snapshot)
        yield from _open_tasks(snapshot)
        yield from _usage(snapshot.costs)
        yield from _alerts(snapshot)
        yield _completions(snapshot)


def _items(snapshot: StoreSnapshot) -> Metric:
    family = GaugeMetricFamily(
        "statewise_items",
        "Items by workflow, version, state and status.",
        labels=["workflow", "version", "state", "status"],
    )
    for row in snapshot.counts:
        family.add_metric([row.workflow, str(row.version), row.state, row.status.value], row.count)
    return family


def _open_tasks(snapshot: StoreSnapshot) -> Iterator[Metric]:
    count = GaugeMetricFamily(
        "statewise_open_tasks",
        "Open human tasks by workflow and queue.",
        labels=["workflow", "queue"],
    )
    oldest: dict[str, float] = {}
    for tasks in snapshot.open_tasks:
        count.add_metric([tasks.workflow, tasks.queue], tasks.count)
        held = oldest.get(tasks.queue, tasks.oldest_opened_at)
        oldest[tasks.queue] = min(held, tasks.oldest_opened_at)
    yield count
    age = GaugeMetricFamily(
        "statewise_open_task_oldest_age_seconds",
        "How long the oldest open human task of each queue has been open.",
        labels=["queue"],
    )
    for queue, opened in oldest.items():
        age.add_metric([queue], max(snapshot.taken_at - opened, 0.0))
    yield age


def _usage(rows: Iterable[CostRow]) -> Iterator[Metric]:
    summed: defaultdict[tuple[str, str, str], _Usage] = defaultdict(_Usage)
    for row in rows:  # the store sums by state too; the series keep workflow, agent, model
        ref = (row.workflow, row.agent, row.model)
        held = summed[ref]
        summed[ref] = _Usage(
            held.calls + row.calls,
            held.input_tokens + row.input_tokens,
            held.output_tokens + row.output_tokens,
            held.cost + (row.cost or 0.0),
            held.unpriced_calls + row.unpriced_calls,
        )
    labels = ["workflow", "agent", "model"]
    tokens = CounterMetricFamily(
        "statewise_model_tokens",
        "Model tokens used, from the audit trail.",
        labels=[*labels, "direction"],
    )
    cost = CounterMetricFamily(
        "statewise_model_cost_usd", "Cost of the priced model calls, in US dollars.", labels=labels
    )
    calls = CounterMetricFamily("statewise_model_calls", "Model runs recorded.", labels=labels)
    unpriced = CounterMetricFamily(
        "statewise_model_unpriced_calls",
        "Model runs with no known price (not in the cost).",
        labels=labels,
    )
    for ref, usage in summed.items():
        tokens.add_metric([*ref, "input"], usage.input_tokens)
        tokens.add_metric([*ref, "output"], usage.output_tokens)
        cost.add_metric(list(ref), usage.cost)
        calls.add_metric(list(ref), usage.calls)
        unpriced.add_metric(list(ref), usage.unpriced_calls)
    yield from (tokens, cost, calls, unpriced)


def _alerts(snapshot: StoreSnapshot) -> Iterator[Metric]:
    labels = ["workflow", "state", "rule"]
    firing = GaugeMetricFamily(
        "statewise_alert_firing", "1 while an alert rule's threshold is reached.", labels=labels
    )
    ratio = GaugeMetricFamily(
        "statewise_alert_ratio", "Observed value over the rule's threshold.", labels=labels
    )
    for alert in snapshot.alerts:
        values = [alert.workflow, alert.state, alert.rule.value]
        firing.add_metric(values, 1.0 if alert.firing else 0.0)
        ratio.add_metric(values, alert.ratio)
    yield from (firing, ratio)


OUTCOMES = ("finished", "escalated", "failed", "cancelled")
"""How an item ends in a state (``StateStats``): the ``outcome`` label of the completions."""


def _completions(snapshot: StoreSnapshot) -> Metric:
    """Every state with a flow in the window, each outcome, zeros included (a rate's base)."""
    family = GaugeMetricFamily(
        "statewise_completions_last_hour",
        "Items that ended in each state over the last hour, by how: finished (done, never "
        "escalated), escalated (sent from the state to the escalation state), failed, "
        "cancelled.",
        labels=["workflow", "state", "outcome"],
    )
    for flow in snapshot.flows:
        for outcome in OUTCOMES:
            family.add_metric([flow.workflow, flow.state, outcome], getattr(flow, outcome))
    return family


class Metrics:
    """The metrics of one service: its own registry, its commit instruments, its store view."""

    def __init__(
        self,
        store: Store,
        definitions: Callable[[], Iterable[Definition]],
        *,
        max_age: float = DEFAULT_MAX_AGE,
    ) -> None:
        self.registry = CollectorRegistry()
        self.instruments = CommitInstruments(self.registry)
        self.snapshots = StoreSnapshots(store, definitions, max_age=max_age)
        self.registry.register(StoreCollector(self.snapshots))
        self.deliveries = Counter(
            "statewise_alert_deliveries",
            "Alert webhook deliveries this process attempted, by destination and outcome "
            "(sent, or failed and to be retried or given up).",
            ["destination", "outcome"],
            registry=self.registry,
        )

    def delivered(self, destination: str, sent: bool) -> None:
        """Count one delivery attempt (the alert rounds' observer)."""
        self.deliveries.labels(destination, "sent" if sent else "failed").inc()

    async def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition for an ``Accept`` header, read on the caller's loop: (body, type)."""
        await self.snapshots.current()
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
