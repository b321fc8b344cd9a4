"""A human task's ``reviews:``: the agent stage it grades, checked like every other reference."""

from __future__ import annotations

import inspect
import textwrap

import pytest

from statewise.definition import Workflow, loads, to_yaml
from statewise.definition.model import Review, Verdict
from statewise.errors import DefinitionError

SCORER = {"type": "object", "properties": {"risk": {"type": "number"}, "label": {"type": "string"}}}
WORKFLOW = """
workflow: screening
input: [amount]
agents:
  scorer:
    instructions: Score the order.
    output:
      type: object
      properties:
        risk: {type: number}
        label: {type: string}
states:
  prepare:
    kind: initial
    command: prepare
    transitions: [{to: scoring}]
  scoring:
    agent: scorer
    transitions:
      - to: hold
        when: scoring.risk >= 0.5
      - to: done
        else: true
  hold:
    kind: human
    task:
      queue: fraud
      reviews: REVIEWS
    transitions:
      - on: approve
        to: done
      - on: reject
        to: done
      - on: ask
        to: done
  done: {kind: final}
"""
LINE = 28  # the line of `reviews:` in WORKFLOW


def _with(reviews: str) -> str:
    return textwrap.dedent(WORKFLOW).replace("REVIEWS", reviews)


def test_a_task_names_the_agent_stage_it_reviews_and_maps_its_outcomes() -> None:
    text = _with("{state: scoring, agree: [reject], override: [approve], score: scoring.risk}")
    task = loads(text).state("hold").task
    assert task is not None
    assert task.reviews == Review("scoring", ("reject",), ("approve",), "scoring.risk")
    verdicts = [task.reviews.verdict(outcome) for outcome in ("reject", "approve", "ask")]
    assert verdicts == [Verdict.AGREE, Verdict.OVERRIDE, Verdict.NEITHER]


@pytest.mark.parametrize(
    ("reviews", "message", "column"),
    [
        (
            "{state: scorng, agree: [reject]}",
            "`reviews` names unknown state `scorng`; did you mean `scoring`? "
            "(the states that run an agent: `scoring`)",
            24,
        ),
        (
            "{state: prepare, agree: [reject]}",
            "`reviews` names state `prepare`, which runs command `prepare`, not an agent; a task "
            "reviews a state with `agent: NAME` (here: `scoring`)",
            24,
        ),
        (
            "{state: scoring, agree: [rejct]}",
            "`reviews.agree` lists `rejct`, which is not an outcome of task `hold`; did you mean "
            "`reject`? (its outcomes: approve, reject, ask)",
            41,
        ),
        (
            "{state: scoring, agree: [reject], override: [reject]}",
            "outcome `reject` is under both `agree` and `override`; keep it in one",
            7,
        ),
        (
            "{state: scoring}",
            "`reviews` needs the outcomes that agree with the agent (`agree: [...]`) or override "
            "it (`override: [...]`)",
            7,
        ),
        (
            "{state: scoring, agree: [reject], score: scoring.rsk}",
            "`score` reads `scoring.rsk`, but the output of agent `scorer` does not declare "
            "`rsk`; did you mean `risk`? (it declares: `label`, `risk`)",
            57,
        ),
        (
            "{state: scoring, agree: [reject], score: scoring.label}",
            "`score` reads `scoring.label`, but the output of agent `scorer` declares `label` as "
            "`string`, not a number",
            57,
        ),
        (
            "{state: scoring, agree: [reject], score: amont}",
            "`score` reads `amont`, but `amont` is not a command result or input key; did you "
            "mean `amount`? (point it at the agent's score, e.g. `scoring.<field>`)",
            57,
        ),
        (
            "{state: scoring, agree: [reject], score: 'risk?'}",
            "`score` must be a context path such as `fraud_check.risk` (names joined by dots), "
            "not `risk?`",
            57,
        ),
        (
            "{state: scoring, agree: [reject], scores: scoring.risk}",
            "unknown key `scores`; did you mean `score`?",
            50,
        ),
    ],
)
def test_a_bad_reviews_is_reported_at_its_line_with_a_fix(
    reviews: str, message: str, column: int
) -> None:
    with pytest.raises(DefinitionError) as info:
        loads(_with(reviews), file="screening.yaml", commands=frozenset({"prepare"}))
    ((problem),) = info.value.problems
    assert (problem.message, problem.file, problem.line, problem.column) == (
        message, "screening.yaml", LINE, column
    )  # fmt: skip


def _screening(reviews: dict[str, object]) -> Workflow:
    wf = Workflow("screening", inputs=["amount"])
    wf.agent("scorer", instructions="Score the order.", output=SCORER)
    wf.initial("prepare", command="prepare").to("scoring")
    wf.state("scoring", agent="scorer").to("hold", when="scoring.risk >= 0.5").otherwise("done")
    wf.human("hold", queue="fraud", role="operator", due="48h", remind="1d", reviews=reviews).on(
        "approve", "done"
    ).on("reject", "done").on("ask", "done")
    wf.final("done")
    return wf


def test_the_builder_declares_reviews_and_exports_them_as_a_file_would() -> None:
    written = "{state: scoring, agree: [reject], override: [approve], score: scoring.risk}"
    reviews = {"state": "scoring", "agree": ["reject"], "override": ["approve"]}
    definition = _screening({**reviews, "score": "scoring.risk"}).build()

    task, file_task = definition.state("hold").task, loads(_with(written)).state("hold").task
    assert task is not None and file_task is not None and task.reviews == file_task.reviews
    assert (task.role.value, task.due, task.remind) == ("operator", 172_800.0, 86_400.0)
    text = to_yaml(definition, inputs=["amount"])
    assert "      reviews:\n        state: scoring\n        agree:\n          - reject\n" in text
    assert loads(text) == definition


def test_the_builder_points_a_bad_reviews_at_the_python_line() -> None:
    wf = _screening({"state": "prepare", "agree": ["reject"]})
    line = inspect.getsourcelines(_screening)[1] + 5  # the wf.human(...) call

    with pytest.raises(DefinitionError) as info:
        wf.build()

    ((problem),) = info.value.problems
    assert problem.message.startswith("`reviews` names state `prepare`, which runs command")
    assert (problem.file, problem.line) == (__file__, line)
