"""The rate, stuck and entry rules judged from store figures, and what their messages say."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from hostile import HOSTILE_BUT_VALID_KEYS
from statewise.definition.model import AlertRule, Definition, Destination, Preset
from statewise.observe.alerts import RuleKind, Severity, evaluate_flow, rule_windows
from statewise.observe.delivery import DestinationError, chat_body, headline, request_for
from statewise.store.alerting import AlertEpisode, DeliveryKind
from statewise.store.base import StateStats, StuckItem
from worker.workflows import review_flow


def rules(*alerts: AlertRule) -> Definition:
    return replace(review_flow(), alerts=alerts)


def stats(state: str, *, entered: int = 0, left: int = 0, failures: int = 0) -> StateStats:
    return StateStats("review", state, 0.0, entered, left, failures, 0, None, None, None)


@pytest.mark.parametrize(
    ("failures", "left", "severity"),
    [(0, 0, Severity.OK), (3, 5, Severity.OK), (2, 8, Severity.FIRING), (1, 9, Severity.OK),
     (8, 2, Severity.CRITICAL)],
)  # fmt: skip
def test_failure_rate_is_failures_over_attempts_once_there_are_enough(
    failures: int, left: int, severity: Severity
) -> None:
    definition = rules(AlertRule("fetch", failure_rate=0.2, min_attempts=10))
    (alert,) = evaluate_flow(
        [definition], {900.0: [stats("fetch", left=left, failures=failures)]}, []
    )
    assert alert.rule is RuleKind.FAILURE_RATE and alert.severity is severity
    attempts = failures + left
    assert alert.observed == (failures / attempts if attempts else 0.0)
    assert alert.detail == {
        "failures": failures,
        "attempts": attempts,
        "min_attempts": 10,
        "window": 900.0,
    }


def test_stuck_counts_the_broken_items_of_its_state_or_of_every_state() -> None:
    stuck = [StuckItem("review", key, "fetch", 1) for key in HOSTILE_BUT_VALID_KEYS]
    stuck.append(StuckItem("other", "x", "fetch", 1))
    anywhere, in_review = evaluate_flow(
        [rules(AlertRule(stuck=True), AlertRule("review", stuck=True))], {}, stuck
    )
    assert anywhere.firing and anywhere.observed == len(HOSTILE_BUT_VALID_KEYS)
    assert anywhere.detail["keys"] == HOSTILE_BUT_VALID_KEYS
    assert not in_review.firing and in_review.observed == 0


def test_entering_fires_on_the_first_item_within_the_rules_window() -> None:
    definition = rules(AlertRule("review", on_enter=True, window=60, notify=("lead",)))
    assert rule_windows([definition]) == {60}
    (quiet,) = evaluate_flow([definition], {60: [stats("review")]}, [])
    (one,) = evaluate_flow([definition], {60: [stats("review", entered=1)]}, [])
    assert not quiet.firing and one.firing and one.notify == ("lead",)
    assert (one.threshold, one.observed, one.rule) == (1, 1, RuleKind.ENTERED)


def episode(keys: list[str]) -> AlertEpisode:
    return AlertEpisode(7, "review", "entered", "review", 1.0, None, 2, 1, {"keys": keys})


def test_the_chat_message_shows_hostile_keys_as_typed() -> None:
    keys = [*HOSTILE_BUT_VALID_KEYS, "<!channel> & co"]
    text = chat_body(episode(keys), DeliveryKind.OPENED, "https://sw.example")["text"]
    assert text.startswith("[FIRING] entered on review/review: 2 item(s) entered; items: inv%41")
    assert "naïve-日本" in text and "what?x=1" in text and "inv%41" in text
    assert "&lt;!channel&gt; &amp; co" in text and "<!channel>" not in text
    assert text.endswith("https://sw.example/dashboard/alerts")


def test_a_json_request_is_signed_and_names_the_episode() -> None:
    hook = Destination("hook", url_env="HOOK", secret_env="SECRET")
    request = request_for(
        hook,
        episode(["a/b"]),
        DeliveryKind.RESOLVED,
        100.0,
        environ={"HOOK": "https://h.example/x", "SECRET": "k"},
    )
    body = json.loads(request.body)
    assert (body["status"], body["episode"], body["detail"]) == ("resolved", 7, {"keys": ["a/b"]})
    assert request.headers["X-Statewise-Timestamp"] == "100"
    assert request.headers["X-Statewise-Signature"].startswith("sha256=")


@pytest.mark.parametrize(
    ("environ", "message"),
    [({}, "HOOK (the destination's URL) is unset"),
     ({"HOOK": "file:///etc/passwd"}, "not an http(s) address")],
)  # fmt: skip
def test_an_unusable_destination_says_which_variable(environ: dict[str, str], message: str) -> None:
    chat = Destination("chat", url_env="HOOK", preset=Preset.CHAT)
    with pytest.raises(DestinationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        request_for(chat, episode([]), DeliveryKind.OPENED, 1.0, environ=environ)


@pytest.mark.parametrize(
    ("rule", "observed", "threshold", "detail", "says"),
    [("entered", 3, 1, {"window": 1800.0}, "3 item(s) entered in the last 30m"),
     ("stuck", 2, 1, {}, "2 item(s) active with no pending work"),
     ("failure_rate", 0.25, 0.2, {"window": 900.0},
      "25% of attempts failed in the last 15m (threshold 20%)"),
     ("max_age", 3725.4, 3600, {}, "the oldest item waited 1h2m5s (threshold 1h)"),
     ("max_items", 60, 50, {}, "60 item(s) there (threshold 50)")],
)  # fmt: skip
def test_the_chat_headline_speaks_each_kind(
    rule: str, observed: float, threshold: float, detail: dict[str, float], says: str
) -> None:
    found = AlertEpisode(1, "w", rule, "s", 1.0, None, observed, threshold, detail)
    assert headline(found) == says
