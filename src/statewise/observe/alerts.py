"""Bottleneck alerts: the ``alerts:`` rules of each workflow judged against per-state counts.

Pure, with no I/O: the dashboard colours states with it and ``/metrics`` exports it, both from
the same :class:`~statewise.store.base.StateCount` rows, so the page and the alerting never
disagree. A rule watches the items that still need something in its state (working, waiting,
paused by an operator or quarantined); done and cancelled items are history, not a backlog.
Every version of a workflow counts, since an operator watches the state, not a version; the
rules are those of the newest definition given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from statewise.definition.model import AlertRule, Definition
from statewise.engine.item import ItemStatus
from statewise.store.base import StateCount

WARNING_RATIO = 0.8
FIRING_RATIO = 1.0
CRITICAL_RATIO = 2.0
BACKLOG = frozenset({ItemStatus.ACTIVE, ItemStatus.WAITING, ItemStatus.PAUSED, ItemStatus.FAILED})
"""The statuses of items a rule counts: those that still sit in their state."""


class RuleKind(StrEnum):
    """What a rule measures: the oldest item's age in the state, or how many items are there."""

    MAX_AGE = "max_age"
    MAX_ITEMS = "max_items"


class Severity(StrEnum):
    """How far a state is over its threshold, from the ratio observed / threshold."""

    OK = "ok"
    WARNING = "warning"
    FIRING = "firing"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position in the order ok < warning < firing < critical."""
        return list(Severity).index(self)

    @classmethod
    def of(cls, ratio: float) -> Severity:
        """The severity of a ratio: warning from 0.8, firing from 1, critical from 2."""
        if ratio >= CRITICAL_RATIO:
            return cls.CRITICAL
        if ratio >= FIRING_RATIO:
            return cls.FIRING
        if ratio >= WARNING_RATIO:
            return cls.WARNING
        return cls.OK


@dataclass(frozen=True, slots=True)
class Alert:
    """One rule's verdict on one state: the threshold, what was observed, and how bad it is.

    ``observed`` is seconds for ``max_age`` (0 with no item in the state) and items for
    ``max_items``; ``ratio`` is ``observed / threshold``.
    """

    workflow: str
    state: str
    rule: RuleKind
    threshold: float
    observed: float
    ratio: float
    severity: Severity

    @property
    def firing(self) -> bool:
        """Whether the threshold is reached (firing or critical)."""
        return self.severity.rank >= Severity.FIRING.rank


@dataclass(frozen=True, slots=True)
class _Backlog:
    count: int = 0
    oldest_entered_at: float | None = None


def evaluate(
    definitions: Iterable[Definition], counts: Iterable[StateCount], now: float
) -> list[Alert]:
    """Judge every rule of every workflow; one Alert per measure a rule sets, in rule order."""
    backlogs = _backlogs(counts)
    alerts: list[Alert] = []
    for definition in newest(definitions).values():
        for rule in definition.alerts:
            backlog = backlogs.get((definition.name, rule.state), _Backlog())
            alerts.extend(_judge(definition.name, rule, backlog, now))
    return alerts


def state_severity(alerts: Iterable[Alert]) -> dict[tuple[str, str], Severity]:
    """The worst severity of each (workflow, state) that has a rule, for colouring the graph."""
    worst: dict[tuple[str, str], Severity] = {}
    for alert in alerts:
        ref = (alert.workflow, alert.state)
        if ref not in worst or alert.severity.rank > worst[ref].rank:
            worst[ref] = alert.severity
    return worst


def newest(definitions: Iterable[Definition]) -> dict[str, Definition]:
    """The newest definition given of each workflow, by name."""
    chosen: dict[str, Definition] = {}
    for definition in definitions:
        held = chosen.get(definition.name)
        if held is None or definition.version > held.version:
            chosen[definition.name] = definition
    return chosen


def _backlogs(counts: Iterable[StateCount]) -> Mapping[tuple[str, str], _Backlog]:
    """Items still in each (workflow, state), over every version, and the oldest entry."""
    backlogs: dict[tuple[str, str], _Backlog] = {}
    for row in counts:
        if row.status not in BACKLOG or row.count <= 0:
            continue
        ref = (row.workflow, row.state)
        held = backlogs.get(ref, _Backlog())
        oldest = row.oldest_entered_at
        if held.oldest_entered_at is not None:
            oldest = min(oldest, held.oldest_entered_at)
        backlogs[ref] = _Backlog(held.count + row.count, oldest)
    return backlogs


def _judge(workflow: str, rule: AlertRule, backlog: _Backlog, now: float) -> list[Alert]:
    measures: list[tuple[RuleKind, float, float]] = []
    if rule.max_age is not None:
        age = 0.0 if backlog.oldest_entered_at is None else max(now - backlog.oldest_entered_at, 0)
        measures.append((RuleKind.MAX_AGE, rule.max_age, age))
    if rule.max_items is not None:
        measures.append((RuleKind.MAX_ITEMS, float(rule.max_items), float(backlog.count)))
    return [_alert(workflow, rule.state, kind, limit, seen) for kind, limit, seen in measures]


def _alert(workflow: str, state: str, kind: RuleKind, threshold: float, observed: float) -> Alert:
    # A zero threshold means "none at all": any item there is critical, none is fine.
    empty_ratio = CRITICAL_RATIO if observed > 0 else 0.0
    ratio = observed / threshold if threshold > 0 else empty_ratio
    return Alert(workflow, state, kind, threshold, observed, ratio, Severity.of(ratio))
