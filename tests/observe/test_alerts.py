from __future__ import annotations

from dataclasses import replace

import pytest

from statewise.definition.model import AlertRule, Definition
from statewise.engine.item import ItemStatus
from statewise.observe.alerts import Alert, RuleKind, Severity, evaluate, state_severity
from statewise.store.base import StateCount
from worker.workflows import review_flow

NOW = 10_000.0


def rules(*alerts: AlertRule, version: int = 1) -> Definition:
    return replace(review_flow(), alerts=alerts, version=version)


def count(
    state: str, n: int, entered: float, status: ItemStatus = ItemStatus.WAITING
) -> StateCount:
    return StateCount("review", 1, state, status, n, entered)


@pytest.mark.parametrize(
    ("observed", "severity"),
    [(0, Severity.OK), (79, Severity.OK), (80, Severity.WARNING), (99, Severity.WARNING),
     (100, Severity.FIRING), (199, Severity.FIRING), (200, Severity.CRITICAL)],
)  # fmt: skip
def test_max_items_severity_follows_the_ratio(observed: int, severity: Severity) -> None:
    definition = rules(AlertRule(state="review", max_items=100))
    counts = [count("review", observed, NOW - 5)] if observed else []
    (alert,) = evaluate([definition], counts, NOW)
    assert alert == Alert(
        "review", "review", RuleKind.MAX_ITEMS, 100, observed, observed / 100, severity
    )
    assert alert.firing is (severity in (Severity.FIRING, Severity.CRITICAL))


def test_max_age_measures_the_oldest_item_over_statuses_and_versions() -> None:
    definition = rules(AlertRule(state="review", max_age=3600))
    counts = [
        count("review", 3, NOW - 1800),
        replace(count("review", 1, NOW - 4000, ItemStatus.PAUSED), version=2),
        count("review", 9, NOW - 99_999, ItemStatus.DONE),  # history, not backlog
        count("review", 9, NOW - 99_999, ItemStatus.CANCELLED),
        count("fetch", 1, NOW - 99_999, ItemStatus.ACTIVE),  # another state
    ]
    (alert,) = evaluate([definition], counts, NOW)
    assert alert.rule is RuleKind.MAX_AGE
    assert alert.observed == pytest.approx(4000)
    assert alert.ratio == pytest.approx(4000 / 3600)
    assert alert.severity is Severity.FIRING


def test_an_empty_state_is_ok_for_both_measures() -> None:
    definition = rules(AlertRule(state="review", max_age=60, max_items=10))
    alerts = evaluate([definition], [], NOW)
    assert [(a.rule, a.observed, a.severity) for a in alerts] == [
        (RuleKind.MAX_AGE, 0.0, Severity.OK),
        (RuleKind.MAX_ITEMS, 0.0, Severity.OK),
    ]


def test_a_zero_threshold_is_critical_with_any_item() -> None:
    definition = rules(AlertRule(state="review", max_items=0))
    assert evaluate([definition], [], NOW)[0].severity is Severity.OK
    assert evaluate([definition], [count("review", 1, NOW)], NOW)[0].severity is Severity.CRITICAL


def test_the_newest_version_holds_the_rules() -> None:
    old = rules(AlertRule(state="review", max_items=1))
    new = rules(AlertRule(state="fetch", max_items=1000), version=2)
    alerts = evaluate([new, old], [count("review", 50, NOW)], NOW)
    assert [(a.state, a.severity) for a in alerts] == [("fetch", Severity.OK)]


def test_state_severity_is_the_worst_rule_of_each_state() -> None:
    definition = rules(
        AlertRule(state="review", max_age=100_000),
        AlertRule(state="review", max_items=2),
        AlertRule(state="fetch", max_items=10),
    )
    counts = [count("review", 5, NOW - 10), count("fetch", 8, NOW, ItemStatus.ACTIVE)]
    assert state_severity(evaluate([definition], counts, NOW)) == {
        ("review", "review"): Severity.CRITICAL,
        ("review", "fetch"): Severity.WARNING,
    }
