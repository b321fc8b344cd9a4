"""What the board and a workflow's page show, computed from counts, stats and alerts: pure.

The pages render these rows, and the live endpoints send the same figures as JSON, so a
number on the page and its update can never disagree. Each live figure has a name (the
``data-figure`` attribute of the element that shows it); workflow and state names are
identifiers, so ``workflow/state/field`` names stay unambiguous.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from statewise.actions.deployment import VersionSummary
from statewise.definition.model import Definition, StateKind
from statewise.engine.item import ItemStatus
from statewise.observe.alerts import Alert, RuleKind, Severity
from statewise.service.pages.rendering import age_text
from statewise.store.base import StateCount, StateStats

IN_FLIGHT = frozenset({ItemStatus.ACTIVE, ItemStatus.WAITING, ItemStatus.PAUSED})
"""Items still on their way: a person or the workers will move them on."""
BACKLOG = IN_FLIGHT | {ItemStatus.FAILED}
"""Items that still sit in their state (the oldest of them is the state's age)."""

Figure = str | tuple[str, str] | float
"""A live figure: its text, its text and its tone (an alert level, for its colour), or a
moment (seconds since the epoch) that the page shows as an age.

An age is sent as its moment, not as text: text would change every second and make every
answer new, while the moment changes only when items move.
"""


@dataclass(frozen=True, slots=True)
class Endings:
    """How items ended in the last hour: finished well, escalated, failed or cancelled."""

    finished: int = 0
    escalated: int = 0
    failed: int = 0
    cancelled: int = 0

    @classmethod
    def of(cls, stats: Iterable[StateStats]) -> Endings:
        """The endings summed over ``stats`` (one state's, or a whole workflow's)."""
        rows = list(stats)
        return cls(
            sum(s.finished for s in rows),
            sum(s.escalated for s in rows),
            sum(s.failed for s in rows),
            sum(s.cancelled for s in rows),
        )

    @property
    def total(self) -> int:
        """Every ending, whichever way."""
        return self.finished + self.escalated + self.failed + self.cancelled

    def rates(self) -> str:
        """The completion rates as a person reads them, or why there are none."""
        if not self.total:
            return "none ended"
        parts = zip(
            (self.finished, self.escalated, self.failed, self.cancelled),
            ("well", "escalated", "failed", "cancelled"),
            strict=True,
        )
        return " · ".join(f"{round(100 * n / self.total)}% {label}" for n, label in parts)


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    """One workflow on the board: its newest version and what its items are doing now."""

    name: str
    version: int
    versions: int
    in_flight: int
    tasks_waiting: int
    failed_items: int
    failures_hour: int
    finished_hour: int
    endings: Endings
    alerts: Sequence[Alert]
    has_rules: bool

    def alert_figure(self) -> tuple[str, str]:
        """The worst alert and the states at that level; nothing when no rule watches."""
        if not self.has_rules:
            return "", "none"
        worst = max((a.severity for a in self.alerts), key=lambda s: s.rank, default=Severity.OK)
        states = sorted({a.state for a in self.alerts if a.severity is worst})
        text = worst.value if worst is Severity.OK else f"{worst.value}: {', '.join(states)}"
        return text, worst.value

    def figures(self) -> dict[str, Figure]:
        """The row's live figures by name."""
        shown: dict[str, Figure] = {
            "in_flight": f"{self.in_flight:,}",
            "tasks": f"{self.tasks_waiting:,}",
            "failed": _failed(self.failed_items),
            "failures": f"{self.failures_hour:,}",
            "finished": f"{self.finished_hour:,}",
            "rates": self.endings.rates(),
            "alerts": self.alert_figure(),
        }
        return {f"{self.name}/{name}": value for name, value in shown.items()}


@dataclass(frozen=True, slots=True)
class StateRow:
    """One state on a workflow's page: its items now and its flow in the last hour.

    ``alert`` is None for a state no rule watches: it shows nothing, not a green "ok".
    ``older`` marks a state only older versions have (items wait there until migrated).
    """

    workflow: str
    state: str
    count: int
    oldest: float | None
    left: int
    p50: str
    p95: str
    failed_items: int
    failures: int
    retries: int
    cost: str
    endings: Endings
    alert: tuple[str, str] | None = None
    alert_detail: str = ""
    older: bool = False

    def figures(self) -> dict[str, Figure]:
        """The row's live figures by name."""
        shown: dict[str, Figure] = {
            "count": f"{self.count:,}",
            "oldest": "" if self.oldest is None else self.oldest,
            "left": f"{self.left:,}",
            "p50": self.p50,
            "p95": self.p95,
            "failed": _failed(self.failed_items),
            "failures": f"{self.failures:,}",
            "retries": f"{self.retries:,}",
            "cost": self.cost,
            "finished": f"{self.endings.finished:,}",
            "escalated": f"{self.endings.escalated:,}",
            "ended_failed": f"{self.endings.failed:,}",
            "cancelled": f"{self.endings.cancelled:,}",
        }
        if self.alert is not None:
            shown["alert"] = self.alert
        return {f"{self.workflow}/{self.state}/{name}": value for name, value in shown.items()}


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One stored version of a workflow and its items per status."""

    workflow: str
    version: int
    items: Mapping[ItemStatus, int] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.workflow}@{self.version}"

    def figures(self) -> dict[str, Figure]:
        """The row's live figures by name."""
        return {
            f"{self.ref}/{status.value}": f"{self.items.get(status, 0):,}" for status in ItemStatus
        }


def newest(definitions: Iterable[Definition]) -> dict[str, Definition]:
    """The newest held definition of each workflow, by name, in name order."""
    chosen: dict[str, Definition] = {}
    for definition in definitions:
        held = chosen.get(definition.name)
        if held is None or definition.version > held.version:
            chosen[definition.name] = definition
    return dict(sorted(chosen.items()))


def board_rows(
    definitions: Sequence[Definition],
    stored_versions: Mapping[str, int],
    counts: Sequence[StateCount],
    stats: Sequence[StateStats],
    alerts: Sequence[Alert],
) -> list[WorkflowRow]:
    """One row per workflow (its newest held version), counting the items of every version.

    Waiting tasks are the items waiting in a ``kind: human`` state: each such visit holds one
    open task, so the per-state counts give them without reading the task table.
    """
    human = _human_states(definitions)
    rows = []
    for name, definition in newest(definitions).items():
        own = [row for row in counts if row.workflow == name]
        flow = [s for s in stats if s.workflow == name]
        rows.append(
            WorkflowRow(
                name=name,
                version=definition.version,
                versions=stored_versions.get(name, 1),
                in_flight=sum(r.count for r in own if r.status in IN_FLIGHT),
                tasks_waiting=sum(
                    r.count
                    for r in own
                    if r.status is ItemStatus.WAITING
                    and (r.state in human.get((name, r.version), human[(name, None)]))
                ),
                failed_items=sum(r.count for r in own if r.status is ItemStatus.FAILED),
                failures_hour=sum(s.failures for s in flow),
                finished_hour=sum(s.finished for s in flow),
                endings=Endings.of(flow),
                alerts=[a for a in alerts if a.workflow == name],
                has_rules=bool(definition.alerts),
            )
        )
    return rows


def _human_states(definitions: Iterable[Definition]) -> dict[tuple[str, int | None], set[str]]:
    """The human states of each held version; ``(name, None)`` is the newest's, for others."""
    found: dict[tuple[str, int | None], set[str]] = {}
    for definition in definitions:
        states = {n for n, s in definition.states.items() if s.kind is StateKind.HUMAN}
        found[(definition.name, definition.version)] = states
    for name, definition in newest(definitions).items():
        found[(name, None)] = found[(name, definition.version)]
    return found


def state_rows(
    definition: Definition,
    counts: Sequence[StateCount],
    stats: Sequence[StateStats],
    alerts: Sequence[Alert],
) -> list[StateRow]:
    """One row per state of ``definition``, then one per state only older versions have.

    Counts cover every version of the workflow, as the alert rules do: an operator watches
    the state, not a version (the versions table splits them).
    """
    own = [row for row in counts if row.workflow == definition.name]
    older = sorted({row.state for row in own} - set(definition.states))
    by_state = {s.state: s for s in stats if s.workflow == definition.name}
    rows = []
    for state in [*definition.states, *older]:
        here = [row for row in own if row.state == state]
        backlog = [row for row in here if row.status in BACKLOG]
        figures = by_state.get(state)
        watched = [a for a in alerts if a.workflow == definition.name and a.state == state]
        rows.append(
            StateRow(
                workflow=definition.name,
                state=state,
                count=sum(row.count for row in here),
                oldest=min(r.oldest_entered_at for r in backlog) if backlog else None,
                left=figures.left if figures else 0,
                p50=_seconds(figures.dwell_p50 if figures else None),
                p95=_seconds(figures.dwell_p95 if figures else None),
                failed_items=sum(r.count for r in here if r.status is ItemStatus.FAILED),
                failures=figures.failures if figures else 0,
                retries=figures.retries if figures else 0,
                cost=f"{figures.cost:.4f}" if figures and figures.cost else "",
                endings=Endings.of([figures] if figures else []),
                alert=_worst(watched),
                alert_detail="; ".join(_alert_text(a) for a in watched),
                older=state in older,
            )
        )
    return rows


def version_rows(summaries: Iterable[VersionSummary]) -> list[VersionRow]:
    """The versions table: each stored version, newest first, with its items per status."""
    rows = [VersionRow(s.stored.name, s.stored.version, dict(s.items)) for s in summaries]
    return sorted(rows, key=lambda row: -row.version)


def _worst(alerts: Sequence[Alert]) -> tuple[str, str] | None:
    """The worst level of a state's rules as text and tone, or None when no rule watches it."""
    if not alerts:
        return None
    worst = max((a.severity for a in alerts), key=lambda s: s.rank).value
    return worst, worst


def _alert_text(alert: Alert) -> str:
    """One rule's verdict in words: ``max_age 5.0h (limit 4.0h)``."""
    if alert.rule is RuleKind.MAX_AGE:
        seen, limit = age_text(alert.observed), age_text(alert.threshold)
    else:
        seen, limit = f"{alert.observed:.0f}", f"{alert.threshold:.0f}"
    return f"{alert.rule.value} {seen} (limit {limit})"


def _failed(count: int) -> tuple[str, str]:
    """A count of failed items, toned red when there are any: each needs an operator."""
    return f"{count:,}", "failed" if count else "none"


def _seconds(value: float | None) -> str:
    return "" if value is None else age_text(value)


def live_figures(*groups: Iterable[WorkflowRow | StateRow | VersionRow]) -> dict[str, Figure]:
    """Every figure of a page's rows by name, as the live endpoint sends them."""
    shown: dict[str, Figure] = {}
    for rows in groups:
        for row in rows:
            shown.update(row.figures())
    return shown
