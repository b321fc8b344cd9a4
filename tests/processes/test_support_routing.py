"""support_routing end to end on the offline model: where every inquiry ends, and why.

The last tests run it on the virtual clock of ``statewise.testing``: its timers and due times.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from processes.conftest import Ran, run_example
from statewise.errors import TaskError
from statewise.testing import MakeWorkflowTest, WorkflowTest

LOCAL = "local:all-MiniLM-L6-v2"
VIP = 'history.tier == "vip" || history.lifetime_value > 10000.0'
TECHNICAL = 'classify.category == "technical"'
ANSWERED = "answer.confidence >= 0.45"


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return run_example("support_routing", tmp_path_factory.mktemp("support_routing"))


def test_every_inquiry_ends_where_its_classification_mood_and_history_send_it(ran: Ran) -> None:
    assert ran.states() == {
        # answered from the knowledge base, then the customer replied (events.jsonl)
        "TCK-5002": "closed",
        "TCK-5005": "closed",
        "TCK-5006": "closed",
        "TCK-5003": "priority_queue",  # "still stuck": escalated to a senior
        "TCK-5016": "priority_queue",  # asked for a real person
        # answered; no reply yet, the 72h timer follows up
        "TCK-5004": "awaiting_reply",
        "TCK-5007": "awaiting_reply",
        "TCK-5020": "awaiting_reply",
        # VIP customers go to the priority queue whatever they ask
        "TCK-5010": "priority_queue",
        "TCK-5011": "priority_queue",
        "TCK-5017": "priority_queue",
        # technical problems go to the specialists
        "TCK-5008": "specialist_queue",
        "TCK-5009": "specialist_queue",
        "TCK-5018": "specialist_queue",
        # upset, urgent, unsure, or nothing in the knowledge base: a person answers
        "TCK-5001": "standard_queue",
        "TCK-5012": "standard_queue",
        "TCK-5013": "standard_queue",
        "TCK-5014": "standard_queue",
        "TCK-5015": "standard_queue",
        "TCK-5019": "standard_queue",
    }


def test_the_audit_trail_names_the_condition_behind_each_route(ran: Ran) -> None:
    for key in ("TCK-5010", "TCK-5011", "TCK-5017"):
        assert ran.why(key) == VIP
    for key in ("TCK-5008", "TCK-5009", "TCK-5018"):
        assert ran.why(key) == TECHNICAL
    for key in ("TCK-5004", "TCK-5007", "TCK-5020"):
        assert ran.why(key) == ANSWERED
    assert ran.path("TCK-5003")[-3:] == ["awaiting_reply", "satisfaction", "priority_queue"]


def test_agents_classified_judged_and_answered_on_the_local_model(ran: Ran) -> None:
    sarcastic = ran.item("TCK-5013").context
    assert sarcastic["sentiment"]["sentiment"] == "negative"  # "Brilliant service, really."
    assert sarcastic["classify"]["category"] == "shipping"
    angry = ran.item("TCK-5012").context
    assert angry["sentiment"]["sentiment"] == "negative"
    assert ran.item("TCK-5015").context["classify"]["priority"] == "urgent"  # "I need it today"

    answer = ran.item("TCK-5005").context["answer"]
    assert answer["source"] == "Passwords"
    assert answer["answer"].startswith("To reset your password, click Forgot password")
    calls = {r.usage["agent"]: r.usage for r in ran.history("TCK-5005") if r.usage}
    assert set(calls) == {"classify", "sentiment", "answer", "satisfaction"}
    assert {u["model"] for u in calls.values()} == {LOCAL}
    assert all(u["cost"] == 0 and u["latency"] < 5 for u in calls.values())


def test_an_inquiry_nothing_in_the_knowledge_base_answers_goes_to_a_person(ran: Ran) -> None:
    gift = ran.item("TCK-5014")  # gift wrapping: no passage is relevant
    assert "answer" not in gift.context
    assert gift.context["classify"]["confidence"] < 0.5
    assert ran.why("TCK-5014") == "else"


def test_the_follow_up_is_a_labelled_template_not_a_models_writing(ran: Ran) -> None:
    follow_up = ran.item("TCK-5002").context["follow_up"]
    assert follow_up["written_by"] == "template"
    assert follow_up["message"].startswith("[Template - not written by a model] Hello Jonas Keller")


def test_people_resolve_the_queues_with_the_form_and_the_item_is_followed_up(ran: Ran) -> None:
    (task,) = ran.tasks("TCK-5012")
    assert (task.queue, task.role) == ("support", "reviewer")
    closed = ran.decide(
        "TCK-5012", "resolve", {"reply": "Refund sent today", "resolution": "refunded"}
    )
    assert closed.state == "closed"
    assert closed.context["standard_queue"]["data"]["resolution"] == "refunded"
    assert closed.context["standard_queue"]["by"] == "token:dana"
    assert closed.context["follow_up"]["written_by"] == "template"

    with pytest.raises(Exception, match="resolution"):
        ran.decide("TCK-5010", "resolve", {"reply": "done"})  # the form needs a resolution
    assert ran.item("TCK-5010").state == "priority_queue"


def test_a_late_customer_reply_after_the_follow_up_is_refused_and_changes_nothing(
    ran: Ran,
) -> None:
    with pytest.raises(Exception, match="accepts no more events"):
        ran.send("TCK-5006", "customer_replied", {"text": "one more thing"})
    assert ran.item("TCK-5006").state == "closed"


def test_the_demo_files_leave_nothing_in_the_repository(ran: Ran) -> None:
    assert not list(Path(ran.example.directory).glob("*.sqlite"))


# The same process on the virtual clock of statewise.testing: the agents answer from a script,
# so these tests are about the workflow's routes and due times, not about the model.
WORKFLOW = Path(__file__).parents[2] / "examples" / "support_routing" / "workflow.yaml"
TOOLS = WORKFLOW.parent / "tools.py"
ANNA = {
    "customer_id": "C-1001",  # a standard customer
    "channel": "email",
    "subject": "Charged twice",
    "message": "My statement shows two charges for order 88213.",
}


@pytest.fixture
def support(workflow_test: MakeWorkflowTest) -> WorkflowTest:
    flow = workflow_test(WORKFLOW, TOOLS)
    flow.agent("classify", {"category": "billing", "priority": "normal", "confidence": 0.9})
    flow.agent("sentiment", {"sentiment": "neutral", "confidence": 0.8})
    flow.agent(
        "answer",
        {
            "answer": "Two charges are a pre-authorisation.",
            "source": "Double charges",
            "confidence": 0.9,
        },
    )
    flow.agent("satisfaction", {"verdict": "satisfied", "confidence": 0.95})
    return flow


def test_an_unanswered_customer_is_followed_up_after_72_hours(support: WorkflowTest) -> None:
    support.start("TCK-1", ANNA)
    support.assert_state("TCK-1", "awaiting_reply", "waiting")

    support.advance(hours=71, minutes=59)
    support.assert_state("TCK-1", "awaiting_reply")
    support.advance(minutes=1)

    support.assert_path(
        "TCK-1",
        [
            "classify",
            "sentiment",
            "history",
            "route",
            "auto_resolve",
            "awaiting_reply",
            "follow_up",
            "closed",
        ],
    )
    timer = support.assert_audit("TCK-1", from_state="awaiting_reply", to_state="follow_up")
    assert timer.at - support.started_at == 72 * 3600
    support.assert_context("TCK-1", {"follow_up.written_by": "template"})


def test_a_reply_within_72_hours_is_read_for_satisfaction(support: WorkflowTest) -> None:
    support.start("TCK-1", ANNA)
    support.advance(hours=5)

    support.send("TCK-1", "customer_replied", {"text": "Thanks, that solved it"}, actor="customer")

    support.assert_state("TCK-1", "closed", "done")
    (reply,) = support.calls("satisfaction")
    assert reply.context["customer_replied"]["text"] == "Thanks, that solved it"
    support.advance(hours=72)  # the follow-up timer of awaiting_reply was cancelled
    assert support.item("TCK-1").updated_at - support.started_at == 5 * 3600


def test_a_queue_nobody_answers_is_reminded_at_12h_and_escalated_at_24h(
    support: WorkflowTest,
) -> None:
    support.agent("sentiment", {"sentiment": "negative", "confidence": 0.9})  # upset: a person

    support.start("TCK-2", ANNA)
    support.assert_state("TCK-2", "standard_queue", "waiting")
    support.advance(hours=12)
    assert support.task("TCK-2").reminded_at == support.started_at + 12 * 3600
    support.advance(hours=12)

    support.assert_state("TCK-2", "escalated", "waiting")
    lead = support.task("TCK-2")
    assert (lead.queue, lead.role) == ("escalations", "operator")
    with pytest.raises(TaskError, match="needs role 'operator'"):
        support.decide("TCK-2", "resolve", {"reply": "x", "resolution": "solved"}, role="reviewer")

    support.decide(
        "TCK-2", "resolve", {"reply": "Refunded", "resolution": "refunded"}, actor="lead"
    )
    support.assert_path(
        "TCK-2",
        [
            "classify",
            "sentiment",
            "history",
            "route",
            "standard_queue",
            "escalated",
            "follow_up",
            "closed",
        ],
    )
    support.assert_context(
        "TCK-2", {"escalated.by": "token:lead", "escalated.data.resolution": "refunded"}
    )
