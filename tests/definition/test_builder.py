from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from statewise.definition import Retry, Workflow, cmd, load, loads, to_yaml
from statewise.definition.model import (
    Command,
    Definition,
    ErrorKind,
    JoinKind,
    RetryPolicy,
    State,
    StateKind,
    Transition,
)
from statewise.errors import DefinitionError

ORDERS = Path(__file__).parent / "fixtures" / "order_processing.yaml"


def orders() -> Workflow:
    wf = Workflow(
        "orders",
        version=3,
        description="Orders, built in Python.",
        escalation="manual_review",
        events={"approve": "a reviewer approves", "reject": "a reviewer rejects"},
        inputs=["order_id", "product"],
    )
    wf.initial("received", command="validate_order", description="New.").to("fraud")
    wf.state(
        "fraud",
        command=cmd("fraud_score", result="risk", retry=Retry(attempts=5, backoff="2s")),
        max_visits=3,
        on_exhausted="manual_review",
    ).to("manual_review", when="risk.score > 0.8").otherwise("inventory").on_error("manual_review")
    wf.waiting("manual_review").on("approve", "inventory").on(
        "reject", "cancelled", when="reject.reason != ''"
    ).after("48h", "cancelled").after(90, "cancelled", on="sla_breach")
    wf.parallel(
        "inventory",
        branches={
            "stock": "check_stock",
            "price": cmd("check_price", retry=Retry(retry_on=[ErrorKind.PERMANENT], timeout=None)),
        },
        join=2,
    ).to("translate")
    wf.parallel(
        "translate", over="product.languages", command="translate", concurrency=2, join="any"
    ).to("done")
    wf.final("cancelled")
    wf.final("done", description="Shipped.")
    return wf


def test_builder_makes_the_model_directly() -> None:
    definition = orders().build(commands=None)

    assert definition.ref == "orders@3"
    assert definition.initial == "received"
    assert definition.escalation == "manual_review"
    fraud = definition.state("fraud")
    assert fraud.command == Command("fraud_score", "risk", RetryPolicy(attempts=5, backoff=2.0))
    assert [(t.on, t.target, t.is_else) for t in fraud.transitions] == [
        ("done", "manual_review", False),
        ("done", "inventory", True),
        ("error", "manual_review", False),
    ]
    review = definition.state("manual_review")
    assert review.kind is StateKind.WAITING
    assert [(t.on, t.after) for t in review.transitions] == [
        ("approve", None),
        ("reject", None),
        ("timer:48h", 172_800.0),
        ("sla_breach", 90.0),
    ]
    inventory = definition.state("inventory").parallel
    assert inventory is not None
    assert (inventory.join, inventory.n_of) == (JoinKind.N_OF, 2)
    price = inventory.branches[1].command
    assert price.retry == RetryPolicy(retry_on=frozenset({ErrorKind.PERMANENT}), timeout=None)
    translate = definition.state("translate").parallel
    assert translate is not None
    assert (translate.join, translate.concurrency) == (JoinKind.ANY, 2)


def test_builder_yaml_loads_back_to_an_equal_definition() -> None:
    wf = orders()
    built = wf.build()

    text = wf.to_yaml()

    assert loads(text) == built
    assert built.source == text
    assert "'on'" not in text
    assert "    transitions:\n      - to: fraud\n" in text


def test_to_yaml_round_trips_any_definition() -> None:
    loaded = load(ORDERS)
    built = orders().build()

    assert loads(to_yaml(loaded)) == loaded
    assert loads(to_yaml(built)) == built


def test_to_yaml_keeps_timer_names_and_declarations() -> None:
    wf = Workflow("timers", events={"poke": "someone pokes"}, inputs=["order"])
    wf.initial("start").to("wait")
    wf.waiting("wait").after(60, "done").after("1h30m", "done", on="late").after("90m", "done").on(
        "poke", "done"
    )
    wf.final("done")
    definition = wf.build()

    text = to_yaml(definition)

    assert [t.on for t in loads(text).state("wait").transitions] == [
        "timer:60",
        "late",
        "timer:90m",
        "poke",
    ]
    assert "events:\n  poke: someone pokes\n" in text
    assert "input:\n  - order\n" in text
    assert "escalated" not in text
    assert loads(text) == definition


def test_the_builder_takes_an_event_data_schema_and_exports_it() -> None:
    amount = {"amount": {"type": "number"}}
    schema = {"type": "object", "required": ["amount"], "properties": amount}
    wf = Workflow("payment", events={"pay": {"description": "paid", "data": schema}, "nudge": "hi"})
    wf.initial("start").to("wait")
    wf.waiting("wait").on("pay", "done", when="event.data.amount > 10").on("pay", "done").on(
        "nudge", "done"
    )
    wf.final("done")
    definition = wf.build()

    assert definition.events is not None and definition.events["pay"].data == schema
    text = to_yaml(definition)
    assert "  nudge: hi\n" in text and "      required:\n        - amount\n" in text
    assert loads(text) == definition
    assert loads(text).events == definition.events


def test_the_builder_checks_event_data_schemas_like_a_file() -> None:
    wf = Workflow("payment", events={"pay": {"data": {"type": "object", "properties": {}}}})
    wf.initial("start").to("wait")
    wf.waiting("wait").on("pay", "done", when="event.data.amount > 10").on("pay", "done")
    wf.final("done")
    with pytest.raises(
        DefinitionError, match=r"reads `event\.data\.amount`, which the `data` schema"
    ):
        wf.build()


def test_default_escalation_state_is_added_by_the_builder_too() -> None:
    wf = Workflow("small")
    wf.initial("start", command="work").to("done")
    wf.final("done")

    definition = wf.build()

    assert list(definition.states) == [
        "start",
        "done",
        "escalated",
        "escalation_resolved",
        "escalation_abandoned",
    ]
    assert definition.state("escalated").kind is StateKind.HUMAN
    assert loads(wf.to_yaml()) == definition
    assert "escalat" not in to_yaml(definition)  # the added states are added again on loading
    assert loads(to_yaml(definition)) == definition


def test_problems_point_at_the_python_line_that_caused_them() -> None:
    wf = Workflow("broken")
    wf.initial("start").to("nowhere")
    line = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]
    wf.final("done")

    with pytest.raises(DefinitionError) as info:
        wf.build()

    problems = info.value.problems
    assert [(p.message.split(";")[0], p.file, p.line) for p in problems] == [
        ("transition goes to unknown state `nowhere`", __file__, line),
        ("state `done` can never be reached from the initial state `start`", __file__, line + 2),
    ]


def test_schema_problems_fall_back_to_the_state_line() -> None:
    wf = Workflow("broken")
    wf.initial("start", max_visits=0).after("soon", "start")
    line = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]

    with pytest.raises(DefinitionError) as info:
        wf.build()

    assert [(p.message.split(";")[0], p.line) for p in info.value.problems] == [
        ("`soon` is not a duration", line),
    ]


def test_state_defined_twice_in_python() -> None:
    wf = Workflow("dupes")
    wf.initial("start").to("done")
    first = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]
    wf.final("done")
    wf.final("start")

    with pytest.raises(DefinitionError) as info:
        wf.build()

    (problem,) = info.value.problems
    assert problem.message == f"state `start` is defined twice (first at line {first}); rename one"
    assert problem.line == first + 3


def test_builder_runs_registry_event_and_variable_checks() -> None:
    wf = Workflow("checks", events={"approve": "ok"}, inputs=["order"])
    wf.initial("start", command="scor").to("wait", when="ordr.total > 0").otherwise("wait")
    wf.waiting("wait").on("aprove", "done").on("approve", "done")
    wf.final("done")

    with pytest.raises(DefinitionError) as info:
        wf.build(commands=frozenset({"score"}))

    assert sorted(p.message for p in info.value.problems) == [
        "command `scor` is not registered; did you mean `score`? (registered: score)",
        "condition `ordr.total > 0` reads `ordr`, which is not an input key, a command "
        "result, a task decision, an event or an engine fact; did you mean `order`?",
        "event `aprove` is not declared under `events:`; did you mean `approve`?",
    ]


def test_parallel_map_without_over_is_a_schema_problem() -> None:
    wf = Workflow("fan")
    wf.initial("start").to("fan")
    wf.parallel("fan", command="each").to("done")
    wf.final("done")

    with pytest.raises(DefinitionError) as info:
        wf.build()

    assert [p.message for p in info.value.problems] == ["`over` is required"]


def test_transition_equality_ignores_where_it_was_written() -> None:
    wf = Workflow("eq")
    wf.initial("start").to("done")
    wf.final("done")

    (transition,) = wf.build().state("start").transitions

    assert transition == Transition("done")


def test_to_yaml_writes_an_explicit_event_for_odd_timer_names() -> None:
    wf = Workflow("timers")
    wf.initial("start").to("wait")
    wf.waiting("wait").after("5s", "done")
    wf.final("done")
    definition = wf.build()
    wait = definition.state("wait")
    odd = Transition("done", on="timer:soon", after=5.0)
    states = {**definition.states, "wait": State(wait.name, wait.kind, transitions=(odd,))}
    odd_definition = Definition(definition.name, 1, states, definition.initial)

    assert "      - on: timer:soon\n        after: 5s\n" in to_yaml(odd_definition)


EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*/workflow.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_to_yaml_round_trips_every_example(path: Path) -> None:
    loaded = load(path)

    again = loads(to_yaml(loaded))

    assert again == loaded
    assert again.alerts == loaded.alerts and loaded.alerts  # every example declares alerts
    tasks = {name: state.task for name, state in loaded.states.items() if state.task}
    assert tasks and {name: again.states[name].task for name in tasks} == tasks


def test_the_examples_are_all_checked() -> None:
    assert len(EXAMPLES) >= 5


EVERY_KEY = """\
workflow: review
version: 2
description: Every key of the file format, written once.
escalation: escalated
input: [title]
events:
  approve: the editor approves
  reject:
    description: the editor rejects
    data: {type: object, required: [reason], properties: {reason: {type: string}}}
alerts:
  - {state: human_review, max_age: 4h}
  - {state: write, max_items: 500}
retention: {outputs: 30d, history: 365d}
budget: {tokens: 20000, cost: 0.5, on_exceeded: human_review}
agents:
  writer:
    model: local
    instructions: Write about {{ title }}.
    output:
      type: object
      properties: {text: {type: string}, score: {type: number}}
      required: [text, score]
states:
  write:
    kind: initial
    agent: writer
    budget: {tokens: 6000, on_exceeded: human_review}
    transitions:
      - to: human_review
  human_review:
    kind: human
    description: An editor reads the draft.
    task:
      queue: editorial
      role: operator
      title: Review the draft
      form: {type: object, properties: {note: {type: string}}}
      remind: 24h
      due: 72h
      escalate_to: escalated
      claim: 1h
      result: review
      reviews: {state: write, agree: [approve], override: [reject], score: write.score}
    transitions:
      - on: approve
        to: published
      - on: reject
        to: rejected
  published:
    kind: final
  rejected:
    kind: final
  escalated:
    kind: human
    task: {queue: escalations}
    transitions:
      - on: approve
        to: published
"""


def every_key() -> Workflow:
    """EVERY_KEY, built in Python."""
    wf = Workflow(
        "review",
        version=2,
        description="Every key of the file format, written once.",
        escalation="escalated",
        inputs=["title"],
        events={
            "approve": "the editor approves",
            "reject": {
                "description": "the editor rejects",
                "data": {
                    "type": "object",
                    "required": ["reason"],
                    "properties": {"reason": {"type": "string"}},
                },
            },
        },
        alerts=[{"state": "human_review", "max_age": "4h"}, {"state": "write", "max_items": 500}],
        retention={"outputs": "30d", "history": "365d"},
        budget={"tokens": 20000, "cost": 0.5, "on_exceeded": "human_review"},
    )
    wf.agent(
        "writer",
        model="local",
        instructions="Write about {{ title }}.",
        output={
            "type": "object",
            "properties": {"text": {"type": "string"}, "score": {"type": "number"}},
            "required": ["text", "score"],
        },
    )
    wf.initial("write", agent="writer", budget={"tokens": 6000, "on_exceeded": "human_review"}).to(
        "human_review"
    )
    wf.human(
        "human_review",
        description="An editor reads the draft.",
        queue="editorial",
        role="operator",
        title="Review the draft",
        form={"type": "object", "properties": {"note": {"type": "string"}}},
        remind="24h",
        due="72h",
        escalate_to="escalated",
        claim="1h",
        result="review",
        reviews={
            "state": "write",
            "agree": ["approve"],
            "override": ["reject"],
            "score": "write.score",
        },
    ).on("approve", "published").on("reject", "rejected")
    wf.final("published")
    wf.final("rejected")
    wf.human("escalated", queue="escalations").on("approve", "published")
    return wf


def test_the_builder_writes_every_key_of_the_file_format() -> None:
    from_file = loads(EVERY_KEY)

    built = every_key().build()

    assert built == from_file
    assert built.alerts == from_file.alerts and len(built.alerts) == 2
    review = built.state("human_review").task
    assert review is not None and (review.due, review.remind, review.claim) == (
        72 * 3600,
        24 * 3600,
        3600,
    )
    assert loads(to_yaml(built, inputs=["title"])) == built
    assert loads(every_key().to_yaml()) == built


def test_an_alert_on_an_unknown_state_points_at_the_workflow_line() -> None:
    wf = Workflow("alerting", alerts=[{"state": "revew", "max_age": "1h"}])
    line = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]
    wf.initial("review").to("done")
    wf.final("done")

    with pytest.raises(DefinitionError) as info:
        wf.build()

    (problem,) = info.value.problems
    assert "revew" in problem.message and "review" in problem.message
    assert (problem.file, problem.line) == (__file__, line)


def test_a_result_schema_from_the_builder_is_checked_and_round_trips() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    wf = Workflow("typed", inputs=["order"])
    wf.initial("check", command=cmd("check_order", result_schema=schema)).to(
        "done", when="check.ok"
    ).otherwise("done")
    wf.final("done")
    definition = wf.build()
    command = definition.state("check").command
    assert command is not None and command.result_schema == schema
    assert loads(to_yaml(definition)) == definition

    wrong = Workflow("typed", inputs=["order"])
    wrong.initial("check", command=cmd("check_order", result_schema=schema)).to(
        "done", when="check.okay"
    ).otherwise("done")
    wrong.final("done")
    with pytest.raises(DefinitionError, match="has no field `okay`; did you mean `ok`"):
        wrong.build()


def test_builder_takes_branches_that_are_tasks_or_steps_and_exports_them_as_written() -> None:
    wf = Workflow("reviews")
    wf.initial("start").to("review")
    wf.parallel(
        "review",
        branches={
            "senior": {"task": {"queue": "senior", "due": "3d"}, "outcomes": ["approve", "reject"]},
            "legal": {
                "steps": [
                    {"step": "scan", "command": "scan_text"},
                    {"step": "sign_off", "task": {"queue": "legal"}, "outcomes": ["ok"]},
                ]
            },
        },
        join="any",
    ).to("done")
    wf.final("done")
    built = wf.build()

    senior, legal = built.state("review").parallel.branches  # type: ignore[union-attr]
    assert (senior.task.queue, senior.outcomes) == ("senior", ("approve", "reject"))  # type: ignore[union-attr]
    assert [s.name for s in legal.steps] == ["scan", "sign_off"]
    assert loads(wf.to_yaml()) == built
    assert loads(to_yaml(built)) == built
