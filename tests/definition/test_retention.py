"""A workflow's retention policy: read from YAML and the builder, exported back, checked."""

from __future__ import annotations

import pytest

from statewise.definition import Workflow, loads, to_yaml
from statewise.definition.model import Retention
from statewise.errors import DefinitionError

WORKFLOW = """\
workflow: kept
retention: {policy}
states:
  start: {{kind: initial, transitions: [{{to: done}}]}}
  done: {{kind: final}}
"""


def test_a_policy_reads_durations_and_round_trips_through_yaml_and_the_builder() -> None:
    loaded = loads(WORKFLOW.format(policy="{outputs: 30d, history: 365d}"))
    assert loaded.retention == Retention(outputs=30 * 86_400.0, history=365 * 86_400.0)
    assert "retention:\n  outputs: 30d\n  history: 365d\n" in to_yaml(loaded)
    assert loads(to_yaml(loaded)) == loaded

    wf = Workflow("kept", retention={"history": "90d"})
    wf.initial("start").to("done")
    wf.final("done")
    built = wf.build()
    assert built.retention == Retention(history=90 * 86_400.0)
    assert loads(wf.to_yaml()) == built
    assert loads(WORKFLOW.format(policy="").replace("retention: \n", "")).retention is None


@pytest.mark.parametrize(
    ("policy", "column", "message"),
    [
        ("{outputs: -3d}", 22, "`-3d` is not a duration; write it like 500ms"),
        ("{outputs: abc}", 22, "`abc` is not a duration"),
        ("{history: 0}", 22, "`history` must be a positive duration such as 30d or 365d, not 0"),
        ("{outputs: -3}", 22, "`outputs` must be a positive duration"),
        ("{outputs: 90d, history: 30d}", 1, "`history` is kept for less time than `outputs`"),
        ("{}", 1, "`retention` needs `outputs`, `history` or both"),
        ("{output: 3d}", 13, "unknown key `output`; did you mean `outputs`?"),
    ],
)
def test_a_bad_policy_is_reported_at_its_line(policy: str, column: int, message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        loads(WORKFLOW.format(policy=policy), file="kept.yaml")
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.column) == ("kept.yaml", 2, column)
    assert problem.message.startswith(message), problem.message
