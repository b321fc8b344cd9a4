"""examples/content_approval: marketing briefs through intake, copy, SEO and brand checks.

The example runs once per module on the offline model into a real SQLite file. The first
tests check where every sample brief ended and why; the later ones act as the editors on the
items waiting in the `editorial` queue and follow them to publication or rejection. The last
tests run it on the virtual clock of ``statewise.testing``, with scripted agents: the
editorial review's reminder and due time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ai.servers import Reply
from processes.conftest import AgentRequest, Ran, hosted_model, run_example
from statewise.errors import TaskError
from statewise.testing import MakeWorkflowTest, Receiver, WorkflowTest, webhook_receiver

LOCAL = "local:all-MiniLM-L6-v2"
TEMPLATE = "[Template - not written by a model]"
AUTO = 'brand_gate.score >= 80 && copy.written_by != "template"'
REVIEW = "brand_gate.score >= 60"

ENDED = {
    # clean agency drafts: the gate approves them by itself
    "CNT-3001": "published",  # blog, 87
    "CNT-3002": "published",  # newsletter, 87
    "CNT-3003": "published",  # product page, 85
    # 60..79 on the first check
    "CNT-3004": "human_review",  # "the best", a missing keyword: 73
    "CNT-3005": "human_review",  # "carbon neutral": 67
    "CNT-3012": "human_review",  # no draft: a template (77), never auto-approved
    # < 60, one revision, then 60..79
    "CNT-3006": "human_review",  # "world-class", a long meta, a 36-word sentence
    "CNT-3009": "human_review",  # "relieves pain"; sentences of 30 words stay
    "CNT-3013": "human_review",  # a template with "clinically proven" from the brief
    # < 60, one revision, then >= 80
    "CNT-3007": "published",  # "clinically proven", "cure", "guaranteed" removed
    "CNT-3008": "published",  # shouting, exclamation marks, "guaranteed", too long
    # < 60 after both revisions: the voice is the problem, no rule can fix it
    "CNT-3010": "human_review",  # hard sell
    "CNT-3011": "human_review",  # too casual
    # bad briefs
    "CNT-3014": "rejected_brief",  # no key messages
    "CNT-3015": "rejected_brief",  # word limit "TBC with the agency"
    "CNT-3016": "rejected_brief",  # channel "radio spot"
}


CMS_SECRET = "cms-test-secret"


@pytest.fixture(scope="module")
def cms() -> Iterator[Receiver]:
    """The CMS: a local receiver of the signed webhooks of state send_to_cms."""
    with webhook_receiver(["CMS_WEBHOOK_URL"], env={"CMS_WEBHOOK_SECRET": CMS_SECRET}) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def ran(cms: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return run_example("content_approval", tmp_path_factory.mktemp("content_approval"))


def sent_to_cms(cms: Receiver, key: str) -> dict[str, Any]:
    """The piece the CMS last accepted for ``key``, after checking the signature."""
    (*_, last) = [r for r in cms.received_by("cms_webhook_url") if r.json["key"] == key]
    assert last.signed_by(CMS_SECRET)
    assert str(last.idempotency_key).startswith(f"content_approval/{key}/send_to_cms/")
    return dict(last.json["payload"])


@pytest.fixture(scope="module")
def first(ran: Ran) -> dict[str, str]:
    """Every item's state right after the run, before any editor acted."""
    return ran.states()


def context(ran: Ran, key: str) -> dict[str, Any]:
    return dict(ran.item(key).context)


def gate_routes(ran: Ran, key: str) -> list[tuple[str, str | None]]:
    """Where each brand_gate visit sent the item, and on which condition."""
    return [
        (r.to_state, r.condition)
        for r in ran.history(key)
        if r.from_state == "brand_gate" and r.to_state != "brand_gate"
    ]


def calls(ran: Ran, key: str, agent: str) -> list[dict[str, Any]]:
    return [r.usage for r in ran.history(key) if r.usage and r.usage["agent"] == agent]


# --- where the run left every item, and why -----------------------------------------------------


def test_every_sample_brief_ends_where_its_copy_sends_it(first: dict[str, str]) -> None:
    assert first == ENDED


def test_agent_stages_ran_on_the_local_model(ran: Ran, first: dict[str, str]) -> None:
    for key in ("CNT-3001", "CNT-3012"):
        agents = {r.usage["agent"] for r in ran.history(key) if r.usage}
        models = {r.usage["model"] for r in ran.history(key) if r.usage}
        assert models == {LOCAL}
        expected = {"intake", "brand_reviewer"} | ({"copywriter"} if key == "CNT-3012" else set())
        assert agents == expected
    assert all(call["outcome"] == "ok" for call in calls(ran, "CNT-3007", "brand_reviewer"))
    assert len(calls(ran, "CNT-3007", "brand_reviewer")) == 2  # the first check and the re-check


def test_intake_extracts_the_brief_and_check_brief_normalises_it(ran: Ran) -> None:
    item = context(ran, "CNT-3007")
    assert item["intake"]["word_limit"] == 120 and item["intake"]["channel"] == "product page"
    facts = item["facts"]
    assert facts["channel"] == "product_page" and facts["valid"] is True
    assert facts["key_messages"] == [
        "graduated compression from ankle to calf",
        "merino blend",
        "clinically proven faster recovery",
    ]
    assert facts["keywords"] == ["compression socks"] and facts["supplied_draft"] is True
    assert context(ran, "CNT-3008")["facts"]["channel"] == "newsletter"  # "e-mail"


def test_bad_briefs_are_rejected_with_sentences_for_the_requester(ran: Ran) -> None:
    # The intake agent leaves out what the brief lacks; it neither fails nor is retried.
    for key in ("CNT-3014", "CNT-3015", "CNT-3016"):
        assert ran.path(key) == ["intake", "check_brief", "rejected_brief"]
        assert ran.why(key) == "!facts.valid"
        assert not [r for r in ran.history(key) if r.error]
    assert context(ran, "CNT-3014")["facts"]["problems"] == [
        "The brief does not give the key messages. Add a line such as 'Key messages: lighter "
        "foam midsole; recycled upper; in stores from 3 March' (the messages separated by "
        "semicolons), and send it again."
    ]
    assert context(ran, "CNT-3015")["facts"]["problems"] == [
        "The brief does not give a word limit as a number. Add a line such as "
        "'Word limit: 250', and send it again."
    ]
    assert context(ran, "CNT-3016")["facts"]["problems"] == [
        "We do not publish to 'radio spot'. Choose one of our channels: blog, landing page, "
        "product page, newsletter or social."
    ]


def test_clean_drafts_are_auto_approved_and_published(ran: Ran, cms: Receiver) -> None:
    for key in ("CNT-3001", "CNT-3002", "CNT-3003"):
        assert gate_routes(ran, key) == [("publish", AUTO)]
        assert ran.path(key)[-3:] == ["publish", "send_to_cms", "published"]
        assert sent_to_cms(cms, key) == context(ran, key)["publish"]
        item = context(ran, key)
        assert item["brand_gate"]["score"] >= 80 and item["brand_gate"]["findings"] == []
        assert item["seo_check"]["passed"] is True
        assert item["copy"]["written_by"] == "supplied"
    published = context(ran, "CNT-3001")["publish"]
    assert published["url"] == (
        "https://northwind.example/journal/strider-3-lighter-kilometres-for-your-half-marathon"
    )
    assert published["approved_by"] == "auto-approved (brand score 87)"
    assert published["body"].startswith("Training for your first half marathon")
    assert context(ran, "CNT-3002")["publish"]["slug"] == "your-packing-list-for-a-first-hut-trek"


def test_supplied_drafts_are_checked_verbatim(ran: Ran) -> None:
    copy = context(ran, "CNT-3004")["copy"]
    assert copy["written_by"] == "supplied" and copy["supplied_by"] == "Ridgeline Creative"
    assert copy["headline"] == "Kestrel: a rain jacket for wet weekends"
    assert "It is the best rain jacket we have made." in copy["body"]
    assert copy["body"] in context(ran, "CNT-3004")["brief"]  # verbatim, paragraphs and all
    assert "draft" not in context(ran, "CNT-3004")  # the copywriter did not run
    assert "copywriter" not in {r.usage["agent"] for r in ran.history("CNT-3004") if r.usage}


def test_the_gate_combines_reviewer_rules_and_seo(ran: Ran) -> None:
    gate = context(ran, "CNT-3004")["brand_gate"]
    assert (gate["reviewer_score"], gate["score"]) == (88, 73)
    assert gate["penalties"] == {"rules": 10, "reviewer": 0, "seo": 5}
    assert [f["found"] for f in gate["findings"]] == ["the best"]
    assert gate["reasons"] == [  # what the editor's task shows
        "'the best' is a superlative; our voice shows the fact instead (-10).",
        "The search keyword 'breathable' is not in the headline or the body.",
    ]
    assert ran.why("CNT-3004") == REVIEW

    green = context(ran, "CNT-3005")["brand_gate"]
    assert green["findings"][0]["rule"] == "environmental_claim" and green["score"] == 67
    assert {t.queue for t in ran.tasks("CNT-3005")} == {"editorial"}


def test_a_revision_removes_health_claims_and_the_recheck_publishes(ran: Ran) -> None:
    assert gate_routes(ran, "CNT-3007") == [("revise", "else"), ("publish", AUTO)]
    # Both rounds' scores stay in the record, though the context keeps only the last.
    history = ran.history("CNT-3007")
    gates = [(r.visit, r.output["score"]) for r in history if r.command == "brand_gate"]
    assert [visit for visit, _ in gates] == [1, 2] and gates[0][1] < 60 and gates[1][1] >= 80
    reviews = [r for r in history if r.usage and r.usage["agent"] == "brand_reviewer"]
    assert [(r.visit, type(r.output["brand_score"])) for r in reviews] == [(1, int), (2, int)]
    first_gate = next(r for r in history if r.command == "brand_gate")
    assert first_gate.rejected and first_gate.rejected[0]["values"]["brand_gate.score"] < 60
    item = context(ran, "CNT-3007")
    assert item["copy"]["revision"] == 1
    assert item["copy"]["edits"] == [
        "health_claim: removed the sentence with 'clinically proven'",
        "absolute_claim: removed the sentence with 'guaranteed'",
        "health_claim: removed the sentence with 'cure'",
    ]
    body = item["publish"]["body"]
    assert "clinically" not in body and "cure" not in body and "guaranteed" not in body
    assert "They come in five sizes, from 35 to 48." in body
    assert item["publish"]["revisions"] == 1

    newsletter = context(ran, "CNT-3008")["copy"]
    assert "shouting: lowered 'FREE'" in newsletter["edits"]
    assert "Join us for free guided runs" in newsletter["body"] and "!" not in newsletter["body"]
    assert newsletter["words"] <= 90 and newsletter["body"].endswith("to see what is new.")


def test_a_revision_that_reaches_60_goes_to_an_editor(ran: Ran) -> None:
    for key in ("CNT-3006", "CNT-3009", "CNT-3013"):
        assert gate_routes(ran, key) == [("revise", "else"), ("human_review", REVIEW)]
    insoles = context(ran, "CNT-3009")
    assert insoles["copy"]["last_edits"] == [
        "health_claim: removed the sentence with 'relieves pain'"
    ]
    assert insoles["brand_gate"]["seo_failed"][0].startswith(
        "The sentences are hard to read: 30.7 words on average"
    )


def test_copy_the_rules_cannot_fix_exhausts_the_revision_budget(ran: Ran) -> None:
    for key, tone in (("CNT-3010", "hard_sell"), ("CNT-3011", "too_casual")):
        assert ran.path(key).count("revise") == 2
        into = [r for r in ran.history(key) if r.to_state == "human_review"]
        assert into[-1].note == "visit budget of 'revise' (2) exhausted"
        item = context(ran, key)
        assert item["brand_gate"]["tone"] == tone and item["brand_gate"]["score"] < 60
        assert item["copy"]["last_edits"] == ["nothing left that a program can fix"]
    assert "shouting: lowered 'FLASH'" in context(ran, "CNT-3010")["copy"]["edits"]
    assert context(ran, "CNT-3010")["brand_gate"]["reasons"] == [
        "The brand reviewer reads the voice as a hard sell: pressure, urgency and hype (-15)."
    ]


def test_the_local_model_writes_no_copy_and_the_template_says_so(ran: Ran) -> None:
    item = context(ran, "CNT-3012")
    assert set(item["draft"]) == {"angle"} and item["draft"]["angle"] == "guide"
    assert ran.path("CNT-3012")[:4] == ["intake", "check_brief", "draft", "template_copy"]
    copy = item["copy"]
    assert copy["written_by"] == "template" and copy["body"].startswith(TEMPLATE)
    assert "Read the comfort rating, not the limit rating." in copy["body"]
    assert item["brand_gate"]["reasons"][0].startswith("No one has written this copy yet")
    knee = context(ran, "CNT-3013")["copy"]
    assert knee["body"].startswith(TEMPLATE) and "clinically" not in knee["body"]


# --- the editors ----------------------------------------------------------------------------


def test_an_editor_approves_and_the_piece_is_published(ran: Ran, cms: Receiver) -> None:
    cms.fail(1, 422)  # the CMS refuses the first send: a 4xx is not retried
    item = ran.decide("CNT-3004", "approve", {"risk": "low", "notes": "Superlative is ours."})
    assert item.state == "publish_failed"
    assert ran.tasks("CNT-3004")[0].queue == "escalations"
    item = ran.decide("CNT-3004", "resend", {"notes": "CMS fixed"}, actor="ops")
    assert item.state == "published"
    assert item.context["cms_delivery"]["idempotency_key"].endswith("/send_to_cms/2")
    assert sent_to_cms(cms, "CNT-3004")["approved_by"] == "token:dana (editor)"
    published = item.context["publish"]
    assert published["approved_by"] == "token:dana (editor)" and published["brand_score"] == 73
    assert "It is the best rain jacket we have made." in published["body"]
    assert ran.reviews("CNT-3004") == [
        {"agent": "brand_reviewer", "state": "brand_check", "visit": 1, "verdict": "agree",
         "score": 73}
    ]  # fmt: skip


def test_the_review_form_is_checked(ran: Ran) -> None:
    with pytest.raises(TaskError, match="risk"):
        ran.decide("CNT-3005", "approve", {"risk": "none"})
    assert ran.item("CNT-3005").state == "human_review"


def test_editors_reject(ran: Ran) -> None:
    note = {"risk": "high", "notes": "Carbon neutral claim without a certificate."}
    assert ran.decide("CNT-3005", "reject", note).state == "rejected"
    assert ran.decide("CNT-3010", "reject", {"risk": "medium"}).state == "rejected"
    (review,) = ran.reviews("CNT-3005")
    assert (review["verdict"], review["score"]) == ("override", 67)


def test_requested_changes_are_applied_and_checked_again(ran: Ran) -> None:
    before = len(calls(ran, "CNT-3006", "brand_reviewer"))
    changes = {
        "risk": "low",
        "remove": ["Our repair service is high-quality. "],
        "add": "Zips, seams and soles: we repair all three.",
    }
    item = ran.decide("CNT-3006", "request_changes", changes)
    copy = item.context["copy"]
    assert copy["last_edits"] == [
        "editor token:dana: removed 'Our repair service is high-quality. '",
        "editor token:dana: added 'Zips, seams and soles: we repair all three.'",
    ]
    assert "high-quality" not in copy["body"]
    assert copy["body"].endswith(
        "Zips, seams and soles: we repair all three.\n\nStart a repair at northwind.example/repair."
    )
    rechecked = ["apply_changes", "brand_check", "brand_gate", "human_review"]
    assert ran.path("CNT-3006")[-4:] == rechecked
    assert len(calls(ran, "CNT-3006", "brand_reviewer")) == before + 1
    # the cut sentence held the keyword: the re-check says so, and the editor sees it again
    assert item.context["brand_gate"]["seo_failed"][0] == (
        "The search keyword 'repair service' is not in the headline or the body."
    )
    assert item.state == "human_review" and ran.why("CNT-3006") == REVIEW
    assert ran.decide("CNT-3006", "approve", {"risk": "low"}).state == "published"


SLEEPING_BAGS = """\
Look at the comfort rating first. It is the temperature at which most people sleep well \
through the night; the limit rating is only what you survive.

Down packs smaller and weighs less, so it suits hut trips and long walks. Synthetic fill \
copes better with a damp tent and dries overnight.

A liner adds a few degrees on a cold night and keeps the bag clean for longer.

Read the full guide and find your size at northwind.example."""

TRAILHAWK = """\
The Trailhawk trail shoes grip in mud. Deep lugs and a soft rubber compound hold on wet \
roots and steep grass, and the new colours come in sand, moss and storm blue.

Link in bio."""


def test_a_template_cannot_be_approved_but_an_editors_copy_is_published(ran: Ran) -> None:
    refused = ran.decide("CNT-3012", "approve", {"risk": "low"})  # a template is not copy
    assert refused.state == "human_review" and "publish" not in ran.path("CNT-3012")
    assert refused.context["refused"]["reason"].startswith(
        "This is a template of the brief's facts, not copy, so it cannot be published. Write"
    )

    headline = "How to choose your first sleeping bag"
    changes = {"risk": "low", "headline": headline, "body": SLEEPING_BAGS}
    item = ran.decide("CNT-3012", "request_changes", changes, actor="jonas")
    assert item.state == "published"
    assert (item.context["copy"]["written_by"], item.context["copy"]["editor"]) == (
        "editor",
        "token:jonas",
    )
    assert gate_routes(ran, "CNT-3012")[-1] == ("publish", AUTO)
    assert item.context["brand_gate"]["score"] == 84
    published = item.context["publish"]
    assert published["written_by"] == "editor" and published["body"] == SLEEPING_BAGS
    assert published["url"] == (
        "https://northwind.example/journal/how-to-choose-your-first-sleeping-bag"
    )
    assert published["approved_by"].startswith("auto-approved")


def test_an_editor_rewrites_copy_whose_revisions_ran_out(ran: Ran) -> None:
    item = ran.decide("CNT-3011", "request_changes", {"risk": "low", "body": TRAILHAWK})
    assert item.state == "published"
    assert item.context["brand_gate"]["tone"] == "on_brand"
    assert item.context["brand_gate"]["score"] >= 80
    assert (
        item.context["publish"]["url"]
        == "https://northwind.example/social/northwind-trailhawk-trail-shoe"
    )


def test_three_rounds_of_changes_then_the_content_lead_takes_over(ran: Ran) -> None:
    for added in ("Fits knees of 32 to 48 cm.", "Wash at 30 degrees.", "Made in Portugal."):
        item = ran.decide("CNT-3013", "request_changes", {"risk": "medium", "add": added})
        assert item.state == "human_review"  # still a template: an editor must write it
        assert item.context["copy"]["body"].startswith(TEMPLATE)
        assert added in item.context["copy"]["body"]
    item = ran.decide("CNT-3013", "request_changes", {"risk": "medium"})
    assert item.state == "escalated"
    into = [r for r in ran.history("CNT-3013") if r.to_state == "escalated"]
    assert into[-1].note == "visit budget of 'apply_changes' (3) exhausted"
    # The content lead rejects the escalated template: in the same test, since the tests of a
    # module may run on different pytest-xdist workers, each with its own module fixture.
    (task,) = ran.tasks("CNT-3013")
    assert (task.state, task.queue) == ("escalated", "escalations")
    refused = ran.decide("CNT-3013", "approve", {"notes": "ship it"})  # a template is not copy
    assert refused.state == "escalated"
    assert refused.context["refused"]["reason"].endswith(
        "ask the requester for copy or a new brief."
    )
    assert ran.decide("CNT-3013", "reject", {"notes": "rewrite the brief"}).state == "rejected"


# The items the tests above decide; which of them are decided when the next test runs depends on
# how pytest-xdist shares this module's tests out, so it leaves them aside.
DECIDED_ABOVE = {f"CNT-30{n:02d}" for n in (4, 5, 6, 10, 11, 12, 13)}


def test_the_editorial_queue_holds_what_is_left(ran: Ran) -> None:
    left = {t.key for t in ran.tasks() if t.queue == "editorial"} - DECIDED_ABOVE
    assert left == {"CNT-3009"}
    (task,) = ran.tasks("CNT-3009")
    assert task.queue == "editorial"


# --- the same files on a hosted model -----------------------------------------------------------

WRITTEN = {  # what the hosted copywriter writes, by product
    "sleeping bags": (
        "How to choose a sleeping bag",
        "Comfort rating, down or synthetic fill, and a liner: what to look for when you buy "
        "your first sleeping bag for camping.",
        "Start with the comfort rating: it is the temperature at which most people sleep "
        "well. Down packs smaller for hut trips; synthetic fill copes with a damp tent.\n\n"
        "Read the full guide and find your size at northwind.example.",
    ),
    "knee support": (
        "Balance knee support",
        "A breathable knit knee support with a silicone grip that stays in place on steep "
        "descents. In sizes S to XL.",
        "A breathable knit that stays in place on steep descents, held by a silicone grip. "
        "In sizes S to XL.\n\nChoose your size and order at northwind.example.",
    ),
}
RISKY = (
    "Merino keeps you warm on the climb and dry on the descent.",
    "It stays fresh for days, so one top is enough for a weekend in the hills.",
)


def _hosted(request: AgentRequest) -> Reply:
    """Each agent of content_approval as a hosted model would answer it."""
    fields, text = request.fields, request.user
    arguments: dict[str, Any]
    if "word_limit" in fields:  # intake: the brief's fields, as written; no draft
        brief = text.split("\nDraft:")[0]
        found = dict(re.findall(r"^([A-Za-z ]+): (.+)$", brief, re.MULTILINE))
        arguments = {f: found[k] for k, f in INTAKE.items() if k in found}
        if arguments.get("word_limit", "").isdigit():
            arguments["word_limit"] = int(arguments["word_limit"])
        else:
            arguments.pop("word_limit", None)  # "TBC": the model leaves it out
    elif "angle" in fields:  # copywriter: it writes
        product = "sleeping bags" if "sleeping bags" in text else "knee support"
        headline, meta, body = WRITTEN[product]
        arguments = {"angle": "guide", "headline": headline, "meta_description": meta}
        arguments["body"] = body
    elif "tone" in fields:  # brand_reviewer: it quotes the claims it would need evidence for
        quoted = [sentence for sentence in RISKY if sentence in text]
        arguments = {"tone": "on_brand", "brand_score": 70 if quoted else 88}
        arguments |= {"risky_claims": quoted, "feedback": "Cut the unproven claims."}
    else:
        raise AssertionError(f"unexpected agent with fields {sorted(fields)}")
    return request.answer(arguments, completion=80)


INTAKE = {
    "Product": "product",
    "Audience": "audience",
    "Channel": "channel",
    "Key messages": "key_messages",
    "Tone": "tone",
    "Word limit": "word_limit",
    "Keywords": "keywords",
    "Agency": "agency",
}


def test_the_same_files_run_on_a_hosted_model_that_writes_and_quotes_claims(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cms: Receiver
) -> None:
    with hosted_model(monkeypatch, _hosted):
        hosted = run_example("content_approval", tmp_path)

        written = hosted.item("CNT-3012")
        assert hosted.path("CNT-3012")[2:4] == ["draft", "model_copy"]  # has(draft.body)
        assert written.context["copy"]["written_by"] == "model"
        assert written.context["copy"]["body"] == WRITTEN["sleeping bags"][2]
        assert written.state == "published"  # model copy may be auto-approved; a template not

        # the reviewer quoted two claims (70 - 2 x 10 = 50): the revision drops both sentences
        merino = hosted.item("CNT-3003")
        assert gate_routes(hosted, "CNT-3003") == [("revise", "else"), ("publish", AUTO)]
        assert merino.context["copy"]["edits"] == [f"risky_claim: removed {s!r}" for s in RISKY]
        assert all(sentence not in merino.context["publish"]["body"] for sentence in RISKY)

        assert hosted.states()["CNT-3015"] == "rejected_brief"  # no word limit to give
        usage = [r.usage for r in hosted.history("CNT-3012") if r.usage]
        assert {u["agent"] for u in usage} == {"intake", "copywriter", "brand_reviewer"}
        assert {u["model"] for u in usage} == {"openai:gpt-4.1-mini"}


# --- the editorial due time, on the virtual clock of statewise.testing --------------------------
# The agents answer from a script (what the offline model answers for the Kestrel brief), the
# tools are the example's own: these tests are about the review's reminder and due time.

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "content_approval"
KESTREL = json.loads((EXAMPLE / "items.jsonl").read_text(encoding="utf-8").splitlines()[3])
KESTREL_INTAKE = {
    "product": "Northwind Kestrel rain jacket",
    "audience": "weekend hikers in wet climates",
    "channel": "landing page",
    "key_messages": (
        "20,000 mm waterproof rating; taped seams and a stiff peaked hood; "
        "packs into its own pocket"
    ),
    "tone": "confident, friendly",
    "word_limit": 220,
    "keywords": "rain jacket, waterproof, breathable",
    "agency": "Ridgeline Creative",
}
TO_REVIEW = ["intake", "check_brief", "supplied_copy", "seo_check", "brand_check", "brand_gate"]


@pytest.fixture
def content(workflow_test: MakeWorkflowTest, cms: Receiver) -> WorkflowTest:
    flow = workflow_test(EXAMPLE / "workflow.yaml", EXAMPLE / "tools.py")
    flow.agent("intake", KESTREL_INTAKE)
    flow.agent("brand_reviewer", {"tone": "on_brand", "brand_score": 88, "confidence": 0.8})
    return flow


def test_copy_no_editor_decides_is_reminded_at_24h_and_escalated_to_the_lead_at_72h(
    content: WorkflowTest,
) -> None:
    assert KESTREL["key"] == "CNT-3004"
    content.start("CNT-3004", KESTREL["data"])
    content.assert_path("CNT-3004", [*TO_REVIEW, "human_review"])
    content.assert_context("CNT-3004", {"brand_gate.score": 73, "copy.written_by": "supplied"})
    review = content.task("CNT-3004")
    assert (review.queue, review.role) == ("editorial", "reviewer")
    assert review.due_at == content.started_at + 72 * 3600

    content.advance(hours=24)
    assert content.task("CNT-3004").reminded_at == content.started_at + 24 * 3600
    content.advance(hours=47, minutes=59)
    content.assert_state("CNT-3004", "human_review", "waiting")
    content.advance(minutes=1)

    content.assert_state("CNT-3004", "escalated", "waiting")
    overdue = content.assert_audit("CNT-3004", from_state="human_review", to_state="escalated")
    assert overdue.at - content.started_at == 72 * 3600
    lead = content.task("CNT-3004")
    assert (lead.queue, lead.role) == ("escalations", "operator")
    with pytest.raises(TaskError, match="needs role 'operator'"):  # the editor's chance is gone
        content.decide("CNT-3004", "approve", {"risk": "low"}, role="reviewer")

    content.decide("CNT-3004", "approve", {"notes": "Fine as it is."}, actor="lead")
    content.assert_path(
        "CNT-3004",
        [*TO_REVIEW, "human_review", "escalated", "publish", "send_to_cms", "published"],
    )
    content.assert_context(
        "CNT-3004",
        {
            "escalated.by": "token:lead",
            "publish.approved_by": "token:lead (content lead)",
            "publish.brand_score": 73,
        },
    )
    content.assert_audit("CNT-3004", from_state="escalated", to_state="publish", actor="token:lead")


def test_an_editor_who_decides_after_the_reminder_stops_the_escalation(
    content: WorkflowTest,
) -> None:
    content.start("CNT-3004", KESTREL["data"])
    content.advance(hours=30)
    assert content.task("CNT-3004").reminded_at is not None

    content.decide("CNT-3004", "approve", {"risk": "low"}, actor="editor")
    content.advance(days=5)  # the 72h due time was the open task's: nothing is escalated

    content.assert_path(
        "CNT-3004", [*TO_REVIEW, "human_review", "publish", "send_to_cms", "published"]
    )
    content.assert_state("CNT-3004", "published", "done")
    assert content.item("CNT-3004").updated_at - content.started_at == 30 * 3600
    content.assert_context("CNT-3004", {"publish.approved_by": "token:editor (editor)"})
    assert len(content.calls("brand_reviewer")) == 1
