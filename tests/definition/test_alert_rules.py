"""Alert kinds and destinations in YAML and the builder: read, checked with lines, written back."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from statewise.definition import Workflow, loads, to_yaml
from statewise.definition.model import AlertRule, Destination, Preset
from statewise.errors import DefinitionError
from statewise.observe.delivery import request_for
from statewise.store.alerting import AlertEpisode, DeliveryKind

FLOW = """\
workflow: watched
destinations:
  lead: {url_env: LEAD_HOOK, preset: chat}
  ops: {url: "https://hooks.example.com/a?b=1", secret_env: OPS_SECRET}
alerts:
  - {state: work, failure_rate: 0.2, window: 10m, min_attempts: 5}
  - {stuck: true, notify: [ops]}
  - {state: escalated, on_enter: true, notify: [lead]}
  - {state: work, max_age: 4h}
states:
  start: {kind: initial, command: begin, transitions: [{to: work}]}
  work: {command: work, transitions: [{to: end}]}
  end: {kind: final}
"""


def test_every_kind_and_destination_is_read_and_written_back() -> None:
    definition = loads(FLOW)

    assert definition.alerts == (
        AlertRule("work", failure_rate=0.2, window=600, min_attempts=5),
        AlertRule(stuck=True, notify=("ops",)),
        AlertRule("escalated", on_enter=True, notify=("lead",)),
        AlertRule("work", max_age=4 * 3600),
    )
    assert definition.destinations == {
        "lead": Destination("lead", url_env="LEAD_HOOK", preset=Preset.CHAT),
        "ops": Destination("ops", "https://hooks.example.com/a?b=1", secret_env="OPS_SECRET"),
    }
    assert loads(to_yaml(definition)) == definition


def test_the_builder_takes_every_alert_key() -> None:
    wf = Workflow(
        "watched",
        alerts=[
            {"state": "work", "failure_rate": 0.5, "window": "5m", "min_attempts": 3},
            {"stuck": True},
            {"state": "work", "on_enter": True, "notify": ["lead"]},
        ],
        destinations={"lead": {"url": "http://127.0.0.1:9/hook", "secret_env": "LEAD_SECRET"}},
    )
    wf.initial("start", command="begin").to("work")
    wf.state("work", command="work").to("end")
    wf.final("end")
    built = wf.build()

    assert built.alerts[0].lookback == 300 and built.alerts[1].state == ""
    assert loads(to_yaml(built)) == built


@pytest.mark.parametrize(
    ("rule", "where", "message"),
    [
        ("{state: work, failure_rate: 2}", "6:5", "`failure_rate` is a fraction"),
        ("{state: work, failure_rate: 0}", "6:5", "above 0 and at most 1"),
        ("{state: work, stuck: true, on_enter: true}", "6:5", "split stuck and on_enter"),
        ("{on_enter: true}", "6:5", "needs `state`"),
        ("{state: work}", "6:5", "an alert needs one of"),
        ("{state: work, max_age: 1h, window: 5m}", "6:5", "`window` applies to"),
        ("{state: work, max_items: 3, min_attempts: 2}", "6:5", "`min_attempts` applies to"),
        ("{state: wrk, on_enter: true}", "6:13", "unknown state `wrk`; did you mean `work`?"),
        ("{state: work, on_enter: true, notify: [opz]}", "6:44", "did you mean `ops`?"),
    ],
)
def test_a_bad_rule_is_reported_at_its_line(rule: str, where: str, message: str) -> None:
    text = FLOW.replace(
        "  - {state: work, failure_rate: 0.2, window: 10m, min_attempts: 5}", f"  - {rule}"
    )
    with pytest.raises(DefinitionError) as raised:
        loads(text, file="watched.yaml")
    assert f"watched.yaml:{where}: " in str(raised.value)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ('{url: "https://x.example", secret: hunter2}', "never goes into the workflow file"),
        ('{url: "ftp://x.example", preset: chat}', "http:// or https:// address"),
        ("{preset: chat}", "exactly one of `url` or `url_env`"),
        ('{url: "https://x.example", url_env: X}', "exactly one of `url` or `url_env`"),
        ('{url: "https://x.example"}', "name the environment variable holding its HMAC"),
        ("{url_env: 'not a var', preset: chat}", "must name an environment variable"),
        ("{url_env: HOOK, preset: pager}", "must be one of json, chat"),
    ],
)
def test_a_bad_destination_is_reported_at_its_line(destination: str, message: str) -> None:
    text = FLOW.replace("{url_env: LEAD_HOOK, preset: chat}", destination)
    with pytest.raises(DefinitionError) as raised:
        loads(text, file="watched.yaml")
    assert "watched.yaml:3:" in str(raised.value)
    assert message in str(raised.value)


def test_the_readme_alerts_example_loads_and_its_verifier_accepts_a_signed_request() -> None:
    text = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Alerts") : text.index("### Webhooks")]
    (yml,) = re.findall(r"```yml\n(.*?)```", section, re.DOTALL)
    (python,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    definition = loads("workflow: watched\n" + yml + "states:" + FLOW.split("states:")[1])
    assert set(definition.destinations) == {"lead", "ops"}

    namespace: dict[str, object] = {}
    exec(python, namespace)
    authentic = namespace["authentic"]
    ops = definition.destinations["ops"]
    environ = {"OPS_HOOK_SECRET": "k"}
    episode = AlertEpisode(1, "watched", "stuck", "", 1.0, None, 1, 1, {"keys": ["a/b"]})
    request = request_for(ops, episode, DeliveryKind.OPENED, time.time(), environ=environ)
    assert authentic(b"k", dict(request.headers), request.body)  # type: ignore[operator]
    assert not authentic(b"k", dict(request.headers), request.body + b"x")  # type: ignore[operator]
