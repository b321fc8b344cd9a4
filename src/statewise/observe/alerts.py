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
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from statewise.definition.model import DEFAULT_MIN_ATTEMPTS, AlertRule, Definition
from statewise.engine.item import ItemStatus
from statewise.store.base import StateCount, StateStats, StuckItem

WARNING_RATIO = 0.8
FIRING_RATIO = 1.0
CRITICAL_RATIO = 2.0
BACKLOG = frozenset({ItemStatus.ACTIVE, ItemStatus.WAITING, ItemStatus.PAUSED, ItemStatus.FAILED})
"""The statuses of items a rule counts: those that still sit in their state."""


class RuleKind(StrEnum):
    """What a rule measures.

    The oldest item's age in the state, how many items are there, the share of failed
    attempts, items breaking the store's invariant, or items entering the state.
    """

    MAX_AGE = "max_age"
    MAX_ITEMS = "max_items"
    FAILURE_RATE = "failure_rate"
    STUCK = "stuck"
    ENTERED = "entered"


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

    ``observed`` is seconds for ``max_age`` (0 with no item in the state), items for
    ``max_items``, ``stuck`` and ``entered`` (whose threshold is 1: any item fires), and the
    failed share of attempts for ``failure_rate``; ``ratio`` is ``observed / threshold``.
    ``state`` is empty for a ``stuck`` rule over every state; ``detail`` holds what a message
    adds (the attempts counted, the keys involved). ``notify`` is the rule's.
    """

    workflow: str
    state: str
    rule: RuleKind
    threshold: float
    observed: float
    ratio: float
    severity: Severity
    detail: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    notify: tuple[str, ...] | None = None

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
    return [
        replace(_alert(workflow, rule.state, kind, limit, seen), notify=rule.notify)
        for kind, limit, seen in measures
    ]


def _alert(workflow: str, state: str, kind: RuleKind, threshold: float, observed: float) -> Alert:
    # A zero threshold means "none at all": any item there is critical, none is fine.
    empty_ratio = CRITICAL_RATIO if observed > 0 else 0.0
    ratio = observed / threshold if threshold > 0 else empty_ratio
    return Alert(workflow, state, kind, threshold, observed, ratio, Severity.of(ratio))


KEYS_SHOWN = 20
"""Keys a stuck alert names in its detail; the dashboard lists every one."""


def evaluate_flow(
    definitions: Iterable[Definition],
    stats: Mapping[float, Iterable[StateStats]],
    stuck: Iterable[StuckItem],
) -> list[Alert]:
    """Judge the rate, stuck and entry rules of every workflow, in rule order.

    ``stats`` holds the audit figures per window length the rules read (``rules_windows``).
    """
    figures = {window: {(s.workflow, s.state): s for s in rows} for window, rows in stats.items()}
    stuck_items = list(stuck)
    alerts: list[Alert] = []
    for definition in newest(definitions).values():
        for rule in definition.alerts:
            found = _flow_alert(definition.name, rule, figures, stuck_items)
            if found is not None:
                alerts.append(replace(found, notify=rule.notify))
    return alerts


def rule_windows(definitions: Iterable[Definition]) -> set[float]:
    """The window lengths the rate and entry rules read the audit trail over."""
    return {
        rule.lookback
        for definition in newest(definitions).values()
        for rule in definition.alerts
        if rule.failure_rate is not None or rule.on_enter
    }


def _flow_alert(
    workflow: str,
    rule: AlertRule,
    figures: Mapping[float, Mapping[tuple[str, str], StateStats]],
    stuck: list[StuckItem],
) -> Alert | None:
    if rule.stuck:
        keys = [s.key for s in stuck if s.workflow == workflow and rule.state in ("", s.state)]
        found = _alert(workflow, rule.state, RuleKind.STUCK, 1.0, float(len(keys)))
        return replace(found, detail={"keys": keys[:KEYS_SHOWN]})
    stats = figures.get(rule.lookback, {}).get((workflow, rule.state))
    if rule.on_enter:
        entered = 0 if stats is None else stats.entered
        found = _alert(workflow, rule.state, RuleKind.ENTERED, 1.0, float(entered))
        return replace(found, detail={"window": rule.lookback})
    if rule.failure_rate is not None:
        return _rate_alert(workflow, rule, rule.failure_rate, stats)
    return None


def _rate_alert(workflow: str, rule: AlertRule, limit: float, stats: StateStats | None) -> Alert:
    """Failed attempts over attempts (failed ones plus departures), once enough were made."""
    failures = 0 if stats is None else stats.failures
    attempts = failures + (0 if stats is None else stats.left)
    needed = DEFAULT_MIN_ATTEMPTS if rule.min_attempts is None else rule.min_attempts
    rate = failures / attempts if attempts else 0.0
    found = _alert(workflow, rule.state, RuleKind.FAILURE_RATE, limit, rate)
    if attempts < needed:
        found = replace(found, ratio=0.0, severity=Severity.OK)
    detail = {"failures": failures, "attempts": attempts, "min_attempts": needed}
    return replace(found, detail={**detail, "window": rule.lookback})
