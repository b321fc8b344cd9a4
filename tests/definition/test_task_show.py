"""``show:`` on a human task and ``label``/``style`` on its outcome events: loaded, built,
written back, and refused with a clear message when malformed."""

from __future__ import annotations

from pathlib import Path

import pytest

from statewise.actions.tasks import outcome_choice
from statewise.definition import Workflow, load, loads, to_yaml
from statewise.errors import DefinitionError

EXAMPLES = Path(__file__).parents[2] / "examples"
YAML = """
workflow: answer
events:
  reply: {description: The agent answered the customer., label: Send the reply}
  deny_refund: {description: No refund is due., style: danger}
  escalate: Hand it to the lead.
states:
  start:
    kind: initial
    transitions:
      - to: answer
  answer:
    kind: human
    task:
      queue: support
      show: [inquiry.text, customer.tier, subject]
    transitions:
      - on: reply
        to: done
      - on: deny_refund
        to: done
      - on: escalate
        to: done
  done: {kind: final}
"""


def test_show_label_and_style_load_and_round_trip() -> None:
    definition = loads(YAML)
    task = definition.states["answer"].task
    assert task is not None and task.show == ("inquiry.text", "customer.tier", "subject")
    events = definition.events or {}
    assert (events["reply"].label, events["deny_refund"].style) == ("Send the reply", "danger")
    assert loads(to_yaml(definition)) == definition


def test_the_builder_takes_show() -> None:
    wf = Workflow("built")
    wf.initial("start").to("review")
    wf.human("review", queue="q", show=["inquiry.text"]).on("ok", "done")
    wf.final("done")
    built = wf.build()
    assert built.states["review"].task is not None
    assert built.states["review"].task.show == ("inquiry.text",)
    assert loads(to_yaml(built)) == built


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("show: [inquiry text]", "`show` lists context paths such as `inquiry.text`"),
        ("show: [.text]", "`show` lists context paths such as `inquiry.text`"),
        ("show: inquiry.text", "list"),
    ],
)
def test_a_malformed_show_is_refused_with_the_rule(line: str, message: str) -> None:
    with pytest.raises(DefinitionError, match="show") as refused:
        loads(YAML.replace("show: [inquiry.text, customer.tier, subject]", line))
    assert message in str(refused.value)


def test_an_unknown_style_is_refused() -> None:
    with pytest.raises(DefinitionError, match="style"):
        loads(YAML.replace("style: danger", "style: loud"))


def test_outcome_buttons_say_the_label_and_mark_destructive_ones() -> None:
    events = loads(YAML).events or {}
    choices = {e: outcome_choice(e, events.get(e)) for e in ("reply", "deny_refund", "escalate")}
    assert (choices["reply"].label, choices["reply"].danger) == ("Send the reply", False)
    assert (choices["deny_refund"].label, choices["deny_refund"].danger) == ("Deny refund", True)
    assert choices["escalate"].description == "Hand it to the lead."
    assert outcome_choice("reject_for_good", None).danger
    assert not outcome_choice("request_revision", None).danger
    assert outcome_choice("request_revision", None).label == "Request revision"


def test_show_of_a_field_a_declared_result_lacks_is_refused_with_a_suggestion(
    tmp_path: Path,
) -> None:
    source = (EXAMPLES / "support_routing" / "workflow.yaml").read_text()
    assert "coordinate.route, coordinate.summary" in source
    copy = tmp_path / "workflow.yaml"
    copy.write_text(source.replace("coordinate.route, coordinate.summary", "coordinate.rout", 1))
    with pytest.raises(DefinitionError) as refused:
        load(copy)
    assert (
        "`show` lists `coordinate.rout`, but the declared result `coordinate` has no field "
        "`rout`; did you mean `route`?"
    ) in str(refused.value)
