"""examples/compliance_review end to end: every sample document's path, and the people after it.

The example runs once for the module, on a real SQLite file and the offline model, with the
authors' revisions of events.jsonl sent after the first run; compliance reports go to a
temporary archive directory (``STATEWISE_ARCHIVE``), never into the repository. The tests read
where each document ended and why, then decide the reviews as the compliance officers, the
senior reviewer and the legal team would (those tests come last: they move items on). The
last tests run it on the virtual clock of ``statewise.testing``, with scripted agents and a
fake archive: the reviews' due times and the author's 14 days.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai.servers import Reply
from processes.conftest import AgentRequest, Ran, hosted_model, run_example
from statewise.errors import InvalidEventError, TaskError
from statewise.testing import MakeWorkflowTest, WorkflowTest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "compliance_review"
LOCAL_MODEL = "local:all-MiniLM-L6-v2"
TEMPLATE_MARK = "[Template - not written by a model]"
HIGH = 'assessment.level == "high"'
LOW = 'assessment.level == "low"'
INCOMPLETE = "size(checks.missing) > 0"

ENDS = {
    "CMP-1001": "high_risk_review",  # "cures arthritis", "reverses cartilage damage"
    "CMP-1002": "approved",  # authorised vitamin C claim, complete label
    "CMP-1003": "standard_review",  # "clinically proven to reduce wrinkles by 47%"
    "CMP-1004": "high_risk_review",  # guaranteed, risk-free returns
    "CMP-1005": "standard_review",  # compliant, but the local model's finding is major
    "CMP-1006": "approved",  # complete privacy notice
    "CMP-1007": "standard_review",  # revised, still no right of objection: minor, a person
    "CMP-1008": "approved",  # returned for the FDA disclaimer, revised, then approved
    "CMP-1009": "approved",  # signed, dated REACH declaration
    "CMP-1010": "standard_review",  # revised, but the screener matched no rule: a person screens
    "CMP-1011": "high_risk_review",  # refer-a-friend bonus in Bitcoin
    "CMP-1012": "high_risk_review",  # shampoo that "regrows" hair
    "CMP-1013": "standard_review",  # credit card offer
    "CMP-1014": "standard_review",  # "eco-friendly, chemical-free"
    "CMP-1015": "standard_review",  # influencer: "looks ten years younger"
    "CMP-1016": "approved",  # complete cosmetic label
    "CMP-1017": "revision",  # unsigned, undated declaration: with the supplier
}
AUTO = ["CMP-1002", "CMP-1006", "CMP-1009", "CMP-1016"]
REVISED = ["CMP-1007", "CMP-1008"]
SENIOR = ["CMP-1001", "CMP-1004", "CMP-1011", "CMP-1012"]
STANDARD = ["CMP-1003", "CMP-1005", "CMP-1007", "CMP-1013", "CMP-1014", "CMP-1015"]
RULES = {
    "CMP-1001": "R-01 Disease claims",
    "CMP-1002": "R-02 Health claims for food supplements",
    "CMP-1003": "R-03 Substantiation of efficacy claims",
    "CMP-1004": "R-08 Guarantees and risk-free claims",
    "CMP-1005": "R-06 Financial promotions and risk warnings",
    "CMP-1006": "R-11 Privacy notices",
    "CMP-1007": "R-11 Privacy notices",
    "CMP-1008": "R-02 Health claims for food supplements",
    "CMP-1009": "R-14 Supplier declarations",
    "CMP-1011": "R-10 Crypto-asset promotions",
    "CMP-1012": "R-04 Cosmetic or medicine",
    "CMP-1013": "R-09 Credit advertising",
    "CMP-1014": "R-05 Natural and free-from claims",
    "CMP-1015": "R-17 Testimonials and endorsements",
    "CMP-1016": "R-13 Product labelling",
    "CMP-1017": "R-14 Supplier declarations",
}
REVIEW = {"rationale": "Checked against the rule quoted in the screening report."}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("archive")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STATEWISE_ARCHIVE", str(directory))
        yield directory


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, archive: Path) -> Ran:
    return run_example("compliance_review", tmp_path_factory.mktemp("compliance_review"))


def _knowledge() -> dict[str, str]:
    workflow = yaml.safe_load((EXAMPLE / "workflow.yaml").read_text(encoding="utf-8"))
    return {doc["title"]: doc["text"] for doc in workflow["agents"]["screener"]["knowledge"]}


def _agent_calls(ran: Ran, key: str, agent: str) -> list[dict[str, Any]]:
    return [r.usage for r in ran.history(key) if r.usage and r.usage["agent"] == agent]


def _condition_into(ran: Ran, key: str, state: str) -> str | None:
    """The condition of the (last) transition into ``state``."""
    into = [r for r in ran.history(key) if r.to_state == state and r.from_state != state]
    return into[-1].condition


def _report(ran: Ran, key: str) -> dict[str, Any]:
    path = Path(ran.item(key).context["archive"]["path"])
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return report


def test_every_document_ends_where_its_path_leads(ran: Ran) -> None:
    assert ran.states() == ENDS


def test_both_agents_run_on_the_local_model_and_quote_a_rule_verbatim(ran: Ran) -> None:
    knowledge = _knowledge()
    for key, source in RULES.items():
        screening = ran.item(key).context["screening"]
        assert screening["source"] == source, key
        assert screening["rule"] in " ".join(knowledge[source].split()), key
        assert "issue" not in screening  # the local model writes no prose
        assert 0.35 <= screening["confidence"] <= 1.0
        calls = _agent_calls(ran, key, "screener")
        assert calls and {c["model"] for c in calls} == {LOCAL_MODEL}, key
        scored = _agent_calls(ran, key, "risk_scorer")
        assert scored and {c["outcome"] for c in scored} == {"ok"}, key
        assert "rationale" not in ran.item(key).context["risk_scoring"]


def test_banned_claims_raise_the_risk_and_open_both_reviews_at_once(ran: Ran) -> None:
    for key in SENIOR:
        item = ran.item(key)
        assert ran.why(key) == HIGH
        assessment = item.context["assessment"]
        assert assessment["risk"] >= 70 and assessment["level"] == "high"
        assert item.context["screening"]["finding"] == "major"
        assert any(b["severity"] == "major" for b in item.context["checks"]["banned"])
        senior, legal = sorted(ran.tasks(key), key=lambda task: task.id)  # open together
        assert (senior.queue, senior.state, senior.branch) == (
            "compliance_senior", "high_risk_review", "senior"
        )  # fmt: skip
        assert (legal.queue, legal.branch) == ("legal", "legal")
        assert legal.created_at == senior.created_at
        assert senior.due_at is not None and senior.due_at - senior.created_at == 3 * 86400
    shampoo = ran.item("CMP-1012").context["assessment"]
    assert shampoo["model_risk"] < 70 <= shampoo["risk"]  # the hard finding sets the floor
    assert shampoo["floor_reasons"] == ['major banned claim "regrows"']
    banned = [b["matched"] for b in ran.item("CMP-1004").context["checks"]["banned"]]
    assert banned == ["guaranteed returns", "risk-free", "cannot lose"]
    assert [b["matched"] for b in ran.item("CMP-1001").context["checks"]["banned"]] == [
        "cures",
        "reverses cartilage damage",
        "Doctors hate",
    ]  # the FDA disclaimer's "cure" is not a claim and is not flagged


def test_medium_risk_goes_to_the_standard_review(ran: Ran) -> None:
    for key in STANDARD:
        assessment = ran.item(key).context["assessment"]
        assert ran.why(key) == "else"
        assert assessment["level"] == "medium" and 30 <= assessment["risk"] < 70, key
        (task,) = ran.tasks(key)
        assert (task.queue, task.role, task.state) == ("compliance", "reviewer", "standard_review")
    # Vague green and free-from claims are what the screener's "minor" describes; the two
    # minor banned claims and that finding each set the floor of a medium risk on their own.
    gel = ran.item("CMP-1014").context
    assert gel["screening"]["finding"] == "minor"
    assert [b["term"] for b in gel["checks"]["banned"]] == [
        "chemical-free",
        "generic environmental claim",
    ]
    assert gel["assessment"]["floor"] == 30 and gel["assessment"]["floor_reasons"] == [
        'minor banned claim "chemical-free"',
        'minor banned claim "eco-friendly"',
        "screening finding minor",
    ]
    # A false positive of the local model: the compliant factsheet reads "major" to it.
    factsheet = ran.item("CMP-1005").context
    assert factsheet["checks"]["hard_findings"] == []
    assert factsheet["screening"]["finding"] == "major"


def test_low_risk_is_approved_automatically_and_archived_outside_the_repo(
    ran: Ran, archive: Path
) -> None:
    for key in AUTO:
        item = ran.item(key)
        assert _condition_into(ran, key, "auto_approve") == LOW
        assert ran.path(key)[-4:] == ["assessment", "auto_approve", "archive", "approved"]
        path = Path(item.context["archive"]["path"])
        assert path == archive / f"{key}-v1.json" and ROOT not in path.parents
        report = _report(ran, key)
        assert report["outcome"] == "approved" and report["version"] == 1
        assert report["rule_hit"]["source"] == RULES[key]
        assert report["risk"]["combined"] < 30 and report["risk"]["level"] == "low"
        assert report["rule_checks"]["missing"] == report["rule_checks"]["banned"] == []
        (decision,) = report["decisions"]
        assert decision["by"] == "statewise:auto-approval" and decision["outcome"] == "approve"
        assert decision["rationale"].startswith(f"risk {report['risk']['combined']} below 30")
        assert report["earlier_rounds"] == []
    summary = ran.item("CMP-1002").context["archive"]["summary"]
    assert summary == (
        "CMP-1002 version 1 approved: risk 11 (low); rule R-02 Health claims for food "
        "supplements (finding none); decided by statewise:auto-approval; 0 earlier round(s)"
    )


def test_a_missing_disclosure_sends_the_document_back_with_a_labelled_request(ran: Ran) -> None:
    item = ran.item("CMP-1017")
    assert ran.path("CMP-1017")[-3:] == ["assessment", "feedback", "revision"]
    assert _condition_into(ran, "CMP-1017", "feedback") == INCOMPLETE
    feedback = item.context["feedback"]
    assert feedback["changes"] == [
        "Add a signature (R-14 Supplier declarations).",
        "Add the date of the declaration (R-14 Supplier declarations).",
    ]
    assert feedback["requested_by"] == ["statewise:completeness-check"]
    assert feedback["written_by"] == "template" and "issue" not in feedback
    assert feedback["message"].startswith(TEMPLATE_MARK)
    assert "1. Add a signature" in feedback["message"]
    assert ran.tasks("CMP-1017") == []  # nobody reviews an incomplete document


def test_the_authors_revisions_go_through_screening_again_and_are_approved(ran: Ran) -> None:
    rescreened = ["resubmission", "checks", "screening", "risk_scoring", "assessment"]
    decided = {
        "CMP-1007": ["standard_review", "archive", "approved"],
        "CMP-1008": ["auto_approve", "archive", "approved"],
    }
    # The revised privacy notice has every disclosure the hard checks look for, but R-11 also
    # asks for the right of objection, which it still leaves out: the screener's "minor" sets
    # the floor of a medium risk and a compliance officer approves it.
    notice = ran.item("CMP-1007").context
    assert notice["checks"]["missing"] == notice["checks"]["banned"] == []
    assert notice["screening"]["finding"] == "minor"
    assert notice["assessment"]["version"] == 2
    assert notice["assessment"]["model_risk"] < 30 == notice["assessment"]["risk"]
    assert notice["assessment"]["floor_reasons"] == ["screening finding minor"]
    assert "objection" not in notice["document"]["text"]
    consent = {"rationale": "Withdrawing consent covers objecting to the newsletter."}
    approved = ran.decide("CMP-1007", "approve", consent)
    assert approved.state == "approved"
    for key in REVISED:
        path = ran.path(key)
        start = path.index("revision")
        assert path[start - 2 : start + 1] == ["assessment", "feedback", "revision"]
        assert path[start + 1 :] == [*rescreened, *decided[key]]
        assert ran.item(key).context["document"]["version"] == 2
        report = _report(ran, key)
        assert report["version"] == 2
        assert Path(ran.item(key).context["archive"]["path"]).name == f"{key}-v2.json"
        (earlier,) = report["earlier_rounds"]
        assert earlier["version"] == 1 and earlier["requested_by"] == [
            "statewise:completeness-check"
        ]
        assert earlier["text"] != report["text"]
    assert _report(ran, "CMP-1007")["earlier_rounds"][0]["changes"] == [
        "Add how long the data is kept (R-11 Privacy notices).",
        "Add the right to complain to a supervisory authority (R-11 Privacy notices).",
    ]
    assert "Food and Drug Administration" in _report(ran, "CMP-1008")["text"]


def test_a_revision_no_rule_fits_goes_to_a_person(ran: Ran) -> None:
    """The signed declaration of origin matches no rule passage well enough on the local model."""
    assert ran.path("CMP-1010")[-6:] == [
        "revision",
        "resubmission",
        "checks",
        "screening",
        "manual_screening",
        "standard_review",
    ]
    into = [r for r in ran.history("CMP-1010") if r.to_state == "manual_screening"]
    assert [(r.from_state, r.event) for r in into] == [("screening", "error")]
    errors = [r.error for r in ran.history("CMP-1010") if r.error]
    assert len(errors) == 1  # it would fail the same way again: not retried
    assert "cannot fill required output field(s) rule, source" in errors[0]["message"]
    shown = ran.item("CMP-1010").context["screening"]  # what the reviewer reads: plain words
    assert shown["finding"] == "not screened"
    assert shown["reason"] == (
        "The automatic compliance screening could not reach a result for version 2 of this "
        "supplier declaration, so a compliance officer will check it against the written rules "
        "and decide."
    )
    item = ran.item("CMP-1010")
    assert item.context["document"]["version"] == 2
    assert item.context["checks"]["version"] == 2 and item.context["checks"]["missing"] == []
    assert item.context["assessment"]["version"] == 1  # from the first round: not current


def test_a_review_without_a_rationale_is_refused_and_changes_nothing(ran: Ran) -> None:
    with pytest.raises(TaskError, match="rationale"):
        ran.decide("CMP-1013", "approve", {"changes": "none"})
    assert ran.item("CMP-1013").state == "standard_review"
    assert len(ran.tasks("CMP-1013")) == 1


def test_the_compliance_officer_approves_rejects_and_asks_for_a_revision(ran: Ran) -> None:
    approved = ran.decide(
        "CMP-1013", "approve", {"rationale": "Representative APR shown most prominently."}
    )
    assert approved.state == "approved"
    report = _report(ran, "CMP-1013")
    (decision,) = report["decisions"]
    assert (decision["step"], decision["outcome"], decision["by"]) == (
        "standard_review",
        "approve",
        "token:dana",
    )
    assert decision["rationale"] == "Representative APR shown most prominently."
    assert report["risk"]["level"] == "medium" and report["rule_hit"]["source"] == RULES["CMP-1013"]

    rejected = ran.decide(
        "CMP-1014", "reject", {"rationale": "Chemical-free is never true.", "rules": ["R-05"]}
    )
    assert rejected.state == "rejected" and "archive" not in rejected.context
    assert rejected.context["standard_review"]["data"]["rules"] == ["R-05"]

    unscreened = ran.decide("CMP-1010", "approve", {"rationale": "Origin declaration complete."})
    assert unscreened.state == "approved"
    report = _report(ran, "CMP-1010")
    assert report["version"] == 2 and report["rule_checks"]["missing"] == []
    assert report["rule_hit"]["source"] is None and report["risk"]["combined"] is None
    assert [d["step"] for d in report["decisions"]] == ["standard_review"]
    assert "not scored (the screener matched no rule)" in unscreened.context["archive"]["summary"]


def test_the_revised_text_is_screened_again_and_reviewed_again(ran: Ran) -> None:
    # The revision is asked for here, not in the officer's test: under xdist the two may run
    # on different workers, each with its own run of the example.
    revise = ran.decide(
        "CMP-1003",
        "request_revision",
        {"rationale": "No study on file.", "changes": "Cite the study or drop the 47%."},
    )
    assert revise.state == "revision"
    feedback = revise.context["feedback"]
    assert feedback["requested_by"] == ["token:dana"]
    assert feedback["changes"] == ["Standard review (token:dana): Cite the study or drop the 47%."]
    assert feedback["message"].startswith(TEMPLATE_MARK)
    assert 'Rule R-03 Substantiation of efficacy claims: "Claims about measurable' in str(
        feedback["message"]
    )

    revised = ran.send(
        "CMP-1003",
        "revised",
        {
            "text": (
                "AgeLess Retinol Night Cream with 0.3% retinol. In an independent study of 32 "
                "women over 8 weeks (Dermscan 2025, available on request), 72% saw smoother "
                "skin. Apply a pea-sized amount every evening to clean, dry skin."
            ),
            "note": "Study cited, percentage replaced.",
        },
    )
    assert revised.context["document"]["version"] == 2
    assert revised.state == "standard_review"
    assert ran.path("CMP-1003")[-6:] == [
        "resubmission",
        "checks",
        "screening",
        "risk_scoring",
        "assessment",
        "standard_review",
    ]
    approved = ran.decide("CMP-1003", "approve", {"rationale": "Study on file, claim matches."})
    assert approved.state == "approved"
    report = _report(ran, "CMP-1003")
    assert report["version"] == 2
    assert [d["outcome"] for d in report["decisions"]] == ["approve"]  # this round only
    (earlier,) = report["earlier_rounds"]
    assert [d["outcome"] for d in earlier["decisions"]] == ["request_revision"]
    assert earlier["changes"] == ["Standard review (token:dana): Cite the study or drop the 47%."]


def test_high_risk_needs_both_reviews_and_either_can_reject_or_revise(ran: Ran) -> None:
    legal = {**REVIEW, "legal_basis": "Reg. (EC) 1223/2009"}
    first = ran.decide("CMP-1012", "approve", legal, actor="lee.legal", branch="legal")
    assert first.state == "high_risk_review"  # the join waits for the senior review
    (task,) = ran.tasks("CMP-1012")
    assert (task.queue, task.branch) == ("compliance_senior", "senior")
    approved = ran.decide("CMP-1012", "approve", REVIEW, actor="sam.senior", branch="senior")
    assert approved.state == "approved"
    assert approved.context["joint_decision"] == {
        "outcome": "approve",
        "senior": "approve",
        "legal": "approve",
    }
    decisions = _report(ran, "CMP-1012")["decisions"]
    assert [(d["step"], d["by"]) for d in decisions] == [
        ("high_risk_review.legal", "token:lee.legal"),
        ("high_risk_review.senior", "token:sam.senior"),
    ]
    assert decisions[0]["legal_basis"] == "Reg. (EC) 1223/2009"
    (review,) = ran.reviews("CMP-1012")  # the senior's approval overrides the "high"; legal's
    assert (review["agent"], review["verdict"]) == ("risk_scorer", "override")  # grades nothing
    assert review["score"] == approved.context["assessment"]["risk"] >= 70

    # The senior reviewer's reject does not skip the legal review; the join decides.
    rejecting = ran.decide("CMP-1004", "reject", REVIEW, actor="sam.senior", branch="senior")
    assert rejecting.state == "high_risk_review"
    rejected = ran.decide("CMP-1004", "approve", REVIEW, actor="lee.legal", branch="legal")
    assert rejected.state == "rejected"
    assert _condition_into(ran, "CMP-1004", "rejected") == 'joint_decision.outcome == "reject"'
    assert rejected.context["joint_decision"]["senior"] == "reject"
    assert [r["verdict"] for r in ran.reviews("CMP-1004")] == ["agree"]

    ran.decide("CMP-1011", "approve", REVIEW, actor="sam.senior", branch="senior")
    revise = ran.decide(
        "CMP-1011",
        "request_revision",
        {**REVIEW, "changes": "Drop the referral bonus."},
        actor="lee.legal",
        branch="legal",
    )
    assert revise.state == "revision"
    assert revise.context["feedback"]["requested_by"] == ["token:lee.legal"]
    assert revise.context["feedback"]["changes"] == [
        'Remove or reword "for every friend you refer" (R-10 Crypto-asset promotions).',
        "Legal review (token:lee.legal): Drop the referral bonus.",
    ]
    assert {t.branch for t in ran.tasks("CMP-1001")} == {"senior", "legal"}  # still open


def test_three_revision_rounds_are_the_budget_then_the_lead_takes_over(ran: Ran) -> None:
    unsigned = (
        "Supplier: Porto Ceramica Lda. Goods: stoneware mugs, items MG-12 and MG-14. We declare "
        "that the goods originate in Portugal. Porto, 9 February 2026."
    )
    for version in (2, 3):
        item = ran.send("CMP-1017", "revised", {"text": unsigned})
        assert item.state == "revision" and item.context["document"]["version"] == version
        assert item.context["feedback"]["changes"] == [
            "Add a signature (R-14 Supplier declarations)."
        ]
    assert ran.item("CMP-1017").visits["revision"] == 3
    item = ran.send("CMP-1017", "revised", {"text": unsigned})
    assert item.state == "escalated"
    assert ran.path("CMP-1017")[-2:] == ["feedback", "escalated"]
    assert ran.history("CMP-1017")[-1].note == "visit budget of 'revision' (3) exhausted"
    assert [entry["version"] for entry in item.context["feedback"]["log"]] == [1, 2, 3, 4]
    (task,) = ran.tasks("CMP-1017")  # the compliance lead decides it
    assert (task.state, task.queue, item.status.value) == ("escalated", "escalations", "waiting")
    approved = ran.decide("CMP-1017", "approve", {"rationale": "signed copy on file"}, "lea")
    assert approved.state == "approved"
    (decision,) = _report(ran, "CMP-1017")["decisions"]
    assert decision["review"] == "compliance lead (escalation)"
    assert decision["rationale"] == "signed copy on file"


def _hosted_reply(request: AgentRequest) -> Reply:
    """What a hosted model answers each agent of compliance_review, judged from its input."""
    fields, user = request.fields, request.user
    bad = "cures" in user or "guaranteed" in user
    if "rule" in fields:
        arguments: dict[str, Any] = {
            "rule": "Food supplements and cosmetics must not claim to prevent, treat or cure a "
            "disease, or refer to such properties.",
            "source": "R-01 Disease claims",
            "finding": "major" if bad else "none",
            "confidence": 0.9,
        }
        if bad:
            arguments["issue"] = '"Cures arthritis pain in 7 days" is a disease claim.'
    elif "risk" in fields:
        arguments = {
            "risk": 92 if bad else 8,
            "confidence": 0.9,
            "rationale": "A disease claim." if bad else "Factual wording.",
        }
    else:
        raise AssertionError(f"unexpected agent with fields {sorted(fields)}")
    return request.answer(arguments, prompt=400, completion=60)


def test_on_a_hosted_model_the_same_files_carry_the_models_own_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STATEWISE_ARCHIVE", str(tmp_path / "archive"))
    with hosted_model(monkeypatch, _hosted_reply) as server:
        hosted = run_example("compliance_review", tmp_path)
    joint = hosted.item("CMP-1001").context
    assert joint["screening"]["issue"] == '"Cures arthritis pain in 7 days" is a disease claim.'
    assert joint["risk_scoring"]["rationale"] == "A disease claim."
    assert hosted.states()["CMP-1001"] == "high_risk_review"
    assert {u["model"] for u in _agent_calls(hosted, "CMP-1001", "screener")} == {
        "openai:gpt-4.1-mini"
    }
    assert hosted.states()["CMP-1002"] == "approved"
    report = json.loads(Path(hosted.item("CMP-1002").context["archive"]["path"]).read_text())
    assert report["risk"]["model"] == 8
    prompt = json.dumps(server.bodies()[0]["messages"])
    assert "R-17 Testimonials and endorsements" in prompt  # the rules are quoted to the model


def test_the_example_files_are_where_the_conventions_put_them() -> None:
    for name in ("workflow.yaml", "tools.py", "items.jsonl", "events.jsonl", "README.md"):
        assert (EXAMPLE / name).is_file(), name
    for table in ("disclosures.csv", "banned_terms.csv"):
        assert (EXAMPLE / "data" / table).is_file(), table
    assert len(_knowledge()) == 17


# --- the review due times and the author's 14 days, on the virtual clock of statewise.testing ---
# The agents answer from a script and `archive` is faked (no report is written); the other tools
# are the example's own.

DOCUMENTS = {
    line["key"]: line["data"]
    for line in map(json.loads, (EXAMPLE / "items.jsonl").read_text("utf-8").splitlines())
}
DISEASE_CLAIM = {
    "rule": "Food supplements and cosmetics must not claim to prevent, treat or cure a disease.",
    "source": "R-01 Disease claims",
    "finding": "major",
    "confidence": 0.9,
}
UNSIGNED = {
    "rule": "Unsigned or undated declarations are not accepted.",
    "source": "R-14 Supplier declarations",
    "finding": "minor",
    "confidence": 0.7,
}
ARCHIVED = {"path": "archive/report.json", "summary": "archived by the test"}
TO_SCREENING = ["intake", "checks", "screening", "risk_scoring", "assessment"]
DAY = 86_400


@pytest.fixture
def compliance(workflow_test: MakeWorkflowTest) -> WorkflowTest:
    flow = workflow_test(EXAMPLE / "workflow.yaml", EXAMPLE / "tools.py")
    flow.command("archive", ARCHIVED)
    return flow


def test_a_legal_review_nobody_decides_in_3_days_goes_to_the_compliance_lead(
    compliance: WorkflowTest,
) -> None:
    compliance.agent("screener", DISEASE_CLAIM)
    compliance.agent("risk_scorer", {"risk": 90, "confidence": 0.9})
    compliance.start("CMP-1001", DOCUMENTS["CMP-1001"])
    compliance.assert_path("CMP-1001", [*TO_SCREENING, "high_risk_review"])
    compliance.assert_context("CMP-1001", {"assessment.level": "high", "assessment.risk": 90})
    for branch in ("senior", "legal"):  # both open at once, each with its own due time
        assert compliance.task("CMP-1001", branch).due_at == compliance.started_at + 3 * DAY

    compliance.advance(days=1)
    assert compliance.task("CMP-1001", "legal").reminded_at == compliance.started_at + DAY
    compliance.advance(days=1)
    compliance.decide("CMP-1001", "approve", REVIEW, actor="sam.senior", branch="senior")
    compliance.assert_state("CMP-1001", "high_risk_review", "waiting")

    compliance.advance(days=1)  # the legal review's due time
    compliance.assert_state("CMP-1001", "escalated", "waiting")
    overdue = compliance.assert_audit(
        "CMP-1001", from_state="high_risk_review", to_state="escalated"
    )
    assert (overdue.branch, overdue.at - compliance.started_at) == ("legal", 3 * DAY)
    assert compliance.calls("archive") == []
    compliance.decide("CMP-1001", "approve", {"rationale": "claims removed offline"}, actor="lea")

    compliance.assert_path(
        "CMP-1001", [*TO_SCREENING, "high_risk_review", "escalated", "archive", "approved"]
    )
    compliance.assert_context(
        "CMP-1001",
        {
            "escalated.by": "token:lea",
            "archive": ARCHIVED,
            "high_risk_review.senior.by": "token:sam.senior",
        },
    )
    (archived,) = compliance.calls("archive")
    assert archived.context["escalated"]["outcome"] == "approve"
    assert "legal" not in archived.context["high_risk_review"]  # nobody decided it


def test_an_author_who_does_not_revise_in_14_days_has_withdrawn(compliance: WorkflowTest) -> None:
    compliance.agent("screener", UNSIGNED)
    compliance.agent("risk_scorer", {"risk": 40, "confidence": 0.6})
    compliance.start("CMP-1017", DOCUMENTS["CMP-1017"])
    compliance.assert_path("CMP-1017", [*TO_SCREENING, "feedback", "revision"])
    compliance.assert_context(
        "CMP-1017", {"feedback.requested_by": ["statewise:completeness-check"]}
    )
    assert compliance.tasks("CMP-1017") == []  # the author has it, not a reviewer

    compliance.advance(days=13, hours=23, minutes=59)
    compliance.assert_state("CMP-1017", "revision", "waiting")
    compliance.advance(minutes=1)

    compliance.assert_state("CMP-1017", "withdrawn", "done")
    timer = compliance.assert_audit("CMP-1017", from_state="revision", to_state="withdrawn")
    assert timer.at - compliance.started_at == 14 * DAY
    assert compliance.calls("archive") == []
    with pytest.raises(InvalidEventError, match="accepts no more events"):  # too late to revise
        compliance.send("CMP-1017", "revised", {"text": "Signed and dated."}, actor="supplier")
    compliance.assert_state("CMP-1017", "withdrawn", "done")
