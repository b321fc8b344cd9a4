"""statewise.testing on a real SQLite file: the virtual clock, scripted agents, fake commands."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from statewise import CommandContext, CommandRegistry, TransientError, Workflow, loads
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidInputError, StatewiseError, TaskError
from statewise.testing import MakeWorkflowTest, VirtualClock, WorkflowTest

HOUR = 3600.0

REVIEW = """\
workflow: review
events:
  approve: the editor approves
  reject: the editor rejects
agents:
  triage:
    instructions: Triage {{ title }}.
    output:
      type: object
      properties: {risk: {type: string, enum: [low, high]}}
      required: [risk]
states:
  triage:
    kind: initial
    agent: triage
    transitions:
      - to: publish
        when: triage.risk == "low"
      - to: human_review
        else: true
  human_review:
    kind: human
    task:
      queue: editorial
      form: {type: object, properties: {note: {type: string}}, required: [note]}
      remind: 24h
      due: 72h
      escalate_to: chase
    transitions:
      - on: approve
        to: publish
      - on: reject
        to: rejected
  chase:
    kind: waiting
    transitions:
      - on: approve
        to: publish
      - after: 2d
        to: rejected
  publish:
    command: publish
    transitions:
      - to: done
  done:
    kind: final
  rejected:
    kind: final
"""

registry = CommandRegistry()


@registry.command()
def publish(ctx: CommandContext) -> dict[str, Any]:
    return {"url": f"https://example.com/{ctx.key}"}


@pytest.fixture
def flow(workflow_test: MakeWorkflowTest) -> WorkflowTest:
    flow = workflow_test(loads(REVIEW), commands=registry)
    flow.agent("triage", {"risk": "high"})
    return flow


def test_a_low_risk_item_is_published_at_once(flow: WorkflowTest) -> None:
    flow.agent("triage", {"risk": "low"})

    item = flow.start("a-1", {"title": "Hello"})

    assert item.status is ItemStatus.DONE
    flow.assert_path("a-1", ["triage", "publish", "done"])
    flow.assert_context("a-1", {"triage.risk": "low", "publish.url": "https://example.com/a-1"})
    (call,) = flow.calls("triage")
    assert call.context["title"] == "Hello"
    usage = flow.assert_audit("a-1", from_state="triage", to_state="publish").usage
    assert usage is not None and (usage["agent"], usage["model"]) == ("triage", "scripted")


def test_the_task_is_reminded_at_24h_and_expires_at_72h_in_time_order(flow: WorkflowTest) -> None:
    flow.start("a-1", {"title": "Hello"})
    task = flow.task("a-1")
    assert (task.remind_at, task.due_at) == (flow.clock.now + 24 * HOUR, flow.clock.now + 72 * HOUR)

    flow.advance(hours=23, minutes=59)
    assert flow.task("a-1").reminded_at is None

    flow.advance(hours=71)  # to 94h59m: past the reminder, then past the due time

    flow.assert_path("a-1", ["triage", "human_review", "chase"])
    reminded = flow.assert_audit("a-1", event="task_reminder")
    expired = flow.assert_audit("a-1", from_state="human_review", to_state="chase")
    assert reminded.at == flow.started_at + 24 * HOUR
    assert expired.at == flow.started_at + 72 * HOUR
    assert flow.tasks("a-1") == []

    flow.advance(days=2)  # the chase's own timer started when the task expired, at 72h
    flow.assert_path("a-1", ["triage", "human_review", "chase", "rejected"])
    assert flow.item("a-1").entered_at == flow.started_at + (72 + 48) * HOUR


def test_a_decision_moves_the_item_with_its_form_data_comment_and_actor(flow: WorkflowTest) -> None:
    flow.start("a-1", {"title": "Hello"})
    flow.advance(hours=30)

    item = flow.decide("a-1", "approve", {"note": "fine"}, comment="ship it", actor="dana")

    assert item.state == "done"
    flow.assert_context(
        "a-1",
        {
            "human_review.outcome": "approve",
            "human_review.data.note": "fine",
            "human_review.comment": "ship it",
            "human_review.by": "token:dana",
        },
    )
    flow.assert_audit("a-1", from_state="human_review", event="approve", actor="token:dana")


def test_a_decision_the_desk_refuses_changes_nothing(flow: WorkflowTest) -> None:
    flow.start("a-1", {"title": "Hello"})

    with pytest.raises(TaskError, match="does not fit its form"):
        flow.decide("a-1", "approve", {})
    with pytest.raises(TaskError, match="has no outcome 'aprove'"):
        flow.decide("a-1", "aprove", {"note": "x"})
    with pytest.raises(TaskError, match="needs role 'reviewer'"):
        flow.decide("a-1", "approve", {"note": "x"}, role="viewer")
    flow.assert_state("a-1", "human_review", "waiting")

    flow.advance(hours=72)
    with pytest.raises(AssertionError, match="has 0 open tasks"):
        flow.decide("a-1", "approve", {"note": "late"})


def test_an_event_moves_a_waiting_item(flow: WorkflowTest) -> None:
    flow.start("a-1", {"title": "Hello"})
    flow.advance(days=3)

    flow.send("a-1", "approve", actor="editor")

    flow.assert_path("a-1", ["triage", "human_review", "chase", "publish", "done"])
    flow.assert_audit("a-1", from_state="chase", event="approve", actor="editor")


def test_replies_answer_calls_in_turn_and_the_last_repeats(flow: WorkflowTest) -> None:
    flow.agent("triage", {"risk": "low"}, {"risk": "high"})

    flow.start("a-1", {"title": "first"})
    flow.start("a-2", {"title": "second"})
    flow.start("a-3", {"title": "third"})

    assert [flow.item(k).state for k in ("a-1", "a-2", "a-3")] == [
        "done",
        "human_review",
        "human_review",
    ]
    assert [c.key for c in flow.calls("triage")] == ["a-1", "a-2", "a-3"]


def test_a_reply_can_depend_on_the_item(flow: WorkflowTest) -> None:
    flow.agent("triage", lambda ctx: {"risk": "low" if "safe" in ctx.context["title"] else "high"})

    assert flow.start("a-1", {"title": "safe text"}).state == "done"
    assert flow.start("a-2", {"title": "risky text"}).state == "human_review"


def test_a_reply_that_breaks_the_output_fails_like_a_models(flow: WorkflowTest) -> None:
    flow.agent("triage", {"risk": "medium"})

    flow.start("a-1", {"title": "Hello"})
    flow.assert_state("a-1", "triage", "active")  # retrying: the backoff is time too
    flow.advance(minutes=5)

    item = flow.item("a-1")
    assert item.status is ItemStatus.FAILED
    (failure,) = [r for r in flow.history("a-1") if r.error and r.to_state == "triage"][-1:]
    assert failure.error is not None and "does not fit its output" in failure.error["message"]


def test_a_fake_command_that_fails_then_recovers_retries_on_the_virtual_clock(
    flow: WorkflowTest,
) -> None:
    answers: list[Any] = [TransientError("busy"), {"url": "https://cdn/a-1"}]

    def flaky(ctx: CommandContext) -> Any:
        reply = answers.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    flow.agent("triage", {"risk": "low"})
    flow.command("publish", flaky)

    flow.start("a-1", {"title": "Hello"})
    flow.assert_state("a-1", "publish", "active")
    flow.advance(seconds=2)

    flow.assert_path("a-1", ["triage", "publish", "done"])
    flow.assert_context("a-1", {"publish.url": "https://cdn/a-1"})
    assert [c.attempt for c in flow.calls("publish")] == [1, 2]


def test_a_fake_command_can_raise_for_good(flow: WorkflowTest) -> None:
    flow.agent("triage", {"risk": "low"})
    flow.command("publish", RuntimeError("the CDN is gone"))

    flow.start("a-1", {"title": "Hello"})

    flow.assert_state("a-1", "publish", "failed")  # an unexpected exception is a defect
    flow.assert_audit("a-1", command="publish")


def test_a_failed_assertion_shows_the_actual_path_and_the_audit(flow: WorkflowTest) -> None:
    flow.start("a-1", {"title": "Hello"})
    flow.advance(hours=72)

    with pytest.raises(AssertionError) as info:
        flow.assert_path("a-1", ["triage", "publish", "done"])

    message = str(info.value)
    assert "item 'a-1' went triage -> human_review -> chase" in message
    assert "expected triage -> publish -> done" in message
    assert "+3d00h00m  human_review -> chase" in message
    with pytest.raises(AssertionError, match=r"triage\.risk: 'high', expected 'low'"):
        flow.assert_context("a-1", {"triage.risk": "low"})
    with pytest.raises(AssertionError, match=r"human_review\.outcome: missing"):
        flow.assert_context("a-1", {"human_review.outcome": "approve"})
    with pytest.raises(AssertionError, match="no audit row with event='approve'"):
        flow.assert_audit("a-1", event="approve")


def test_an_unscripted_agent_is_the_tests_mistake_and_says_how_to_script_it(
    workflow_test: MakeWorkflowTest,
) -> None:
    flow = workflow_test(loads(REVIEW), commands=registry)

    with pytest.raises(AssertionError, match=r"add `flow\.agent\('triage', \{\.\.\.\}\)`"):
        flow.start("a-1", {"title": "Hello"})


def test_unknown_names_and_missing_commands_are_refused_with_the_fix(
    workflow_test: MakeWorkflowTest,
) -> None:
    flow = workflow_test(loads(REVIEW))
    flow.agent("triage", {"risk": "low"})

    with pytest.raises(StatewiseError, match="declares no agent 'triag'"):
        flow.agent("triag", {"risk": "low"})
    with pytest.raises(StatewiseError, match="runs no command 'publsh'"):
        flow.command("publsh", {})
    with pytest.raises(StatewiseError, match=r"'publish' is neither registered nor faked"):
        flow.start("a-1", {"title": "Hello"})
    with pytest.raises(ValueError, match="forward only"):
        flow.advance(hours=-1)


def test_a_workflow_file_and_command_modules_by_path(
    workflow_test: MakeWorkflowTest, tmp_path: Path
) -> None:
    (tmp_path / "review.yaml").write_text(REVIEW, encoding="utf-8")
    (tmp_path / "review_tools.py").write_text(
        "from statewise import CommandRegistry\n"
        "registry = CommandRegistry()\n"
        "@registry.command()\n"
        "def publish(ctx):\n"
        "    return {'url': 'file'}\n",
        encoding="utf-8",
    )
    clock = VirtualClock(now=1_000_000.0)
    flow = workflow_test(tmp_path / "review.yaml", tmp_path / "review_tools.py", clock=clock)
    flow.agent("triage", {"risk": "low"})

    flow.start("key with / and % and ü", {"title": "Hello"})

    flow.assert_context("key with / and % and ü", {"publish.url": "file"})
    assert flow.item("key with / and % and ü").created_at == 1_000_000.0
    with pytest.raises(ValueError, match="cannot go back"):
        clock.move_to(0.0)
    with pytest.raises(InvalidInputError):
        flow.start("nul\x00key", {"title": "Hello"})
    assert [task.key for task in flow.tasks()] == []


def test_starting_a_key_twice_is_refused(flow: WorkflowTest) -> None:
    flow.start("a-1", {"title": "Hello"})

    with pytest.raises(StatewiseError, match="exists already"):
        flow.start("a-1", {"title": "again"})


def chained() -> Workflow:
    wf = Workflow("chained")
    wf.initial("start").to("first")
    wf.waiting("first").after("1h", "second")
    wf.waiting("second").after("1h", "done")
    wf.final("done")
    return wf


def test_timers_fire_in_time_order_across_items_and_chain_from_when_they_fired(
    tmp_path: Path,
) -> None:
    with WorkflowTest(chained(), tmp_path / "chained.sqlite") as flow:
        flow.start("early")
        flow.advance(minutes=30)
        flow.start("late")

        flow.advance(hours=2, minutes=30)  # one jump; each timer still fires at its own time

        fired = sorted(
            (record.at - flow.started_at, key, record.to_state)
            for key in ("early", "late")
            for record in flow.history(key)
            if record.event_kind == "timer"
        )
        assert fired == [
            (1 * HOUR, "early", "second"),
            (1.5 * HOUR, "late", "second"),
            (2 * HOUR, "early", "done"),
            (2.5 * HOUR, "late", "done"),
        ]


def test_an_item_left_without_work_fails_the_test(tmp_path: Path) -> None:
    db = tmp_path / "stuck.sqlite"
    with WorkflowTest(loads(REVIEW), db, registry) as flow:
        flow.agent("triage", TransientError("busy"))
        flow.start("a-1", {"title": "Hello"})  # active, its retry's backoff timer pending
        with sqlite3.connect(db) as raw:
            raw.execute("DELETE FROM timers")
        raw.close()

        with pytest.raises(AssertionError, match="hold no pending command or timer"):
            flow.settle()
