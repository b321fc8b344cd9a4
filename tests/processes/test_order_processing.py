"""examples/order_processing end to end: every sample order's path, and the people after it.

The example runs once for the module, on a real SQLite file and the offline model, with the
goods receipt of events.jsonl sent after the first run. The tests read where each order ended
and why, then decide the fraud reviews as a reviewer would (those tests come last: they move
items on). The last tests run it on the virtual clock of ``statewise.testing``: its due times.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ai.servers import Reply
from processes.conftest import AgentRequest, Ran, hosted_model, run_example
from statewise.errors import TaskError
from statewise.testing import MakeWorkflowTest, WorkflowTest

LOCAL_MODEL = "local:all-MiniLM-L6-v2"
HIGH = 'fraud_check.risk_level == "high"'
DECLINED = "checks.credit.approved == false"
OUT_OF_STOCK = "checks.inventory.in_stock == false"
TEMPLATE_MARK = "[Template - not written by a model]"

ENDS = {
    "ORD-10001": "fulfilled",
    "ORD-10002": "fulfilled",
    "ORD-10004": "fulfilled",
    "ORD-10005": "fulfilled",
    "ORD-10006": "fulfilled",
    "ORD-10007": "fulfilled",
    "ORD-10008": "fulfilled",
    "ORD-10010": "fulfilled",
    "ORD-10013": "fulfilled",
    "ORD-10014": "fulfilled",
    "ORD-10016": "fulfilled",
    "ORD-10017": "fulfilled",  # backordered, then restocked by events.jsonl
    "ORD-10018": "backordered",
    "ORD-10021": "customer_notified",
    "ORD-10022": "customer_notified",
    "ORD-10023": "customer_notified",
    "ORD-10025": "fraud_review",
    "ORD-10026": "fraud_review",
    "ORD-10027": "fraud_review",
    "ORD-10028": "fraud_review",
    "ORD-10029": "fraud_review",
    "ORD-10030": "escalated",
    "ORD-10032": "invalid_order",
    "ORD-10033": "invalid_order",
}
HELD = sorted(k for k, state in ENDS.items() if state == "fraud_review")
MEDIUM = ["ORD-10013", "ORD-10014"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    return run_example("order_processing", tmp_path_factory.mktemp("order_processing"))


def _errors(ran: Ran, key: str) -> list[str]:
    return [r.error["message"] for r in ran.history(key) if r.error]


def _condition_into(ran: Ran, key: str, state: str) -> str | None:
    """The condition of the (last) transition into ``state``."""
    into = [r for r in ran.history(key) if r.to_state == state and r.from_state != state]
    return into[-1].condition


def _agent_calls(ran: Ran, key: str, agent: str) -> list[dict[str, object]]:
    return [r.usage for r in ran.history(key) if r.usage and r.usage["agent"] == agent]


def test_every_order_ends_where_its_path_leads(ran: Ran) -> None:
    assert ran.states() == ENDS


def test_the_fraud_analyst_runs_on_the_local_model_for_every_valid_order(ran: Ran) -> None:
    for key, state in ENDS.items():
        calls = _agent_calls(ran, key, "fraud_analyst")
        if state == "invalid_order":
            assert calls == []
            continue
        assert len(calls) == 1, key
        assert calls[0]["model"] == LOCAL_MODEL and calls[0]["outcome"] == "ok"
        verdict = ran.item(key).context["fraud_check"]
        assert "rationale" not in verdict  # the local model writes no prose
        assert 0.0 <= verdict["risk"] <= 1.0 and 0.0 <= verdict["confidence"] <= 1.0


def test_several_warning_signs_make_the_analyst_hold_the_order_for_a_reviewer(ran: Ran) -> None:
    for key in HELD:
        item = ran.item(key)
        assert ran.why(key) == HIGH
        assert item.context["fraud_check"]["risk_level"] == "high"
        assert item.context["fraud_check"]["risk"] >= 0.8
        assert len(item.context["fraud_signals"]["signals"]) >= 3
        (task,) = ran.tasks(key)
        assert (task.queue, task.role, task.state) == ("fraud", "reviewer", "fraud_review")
        assert task.due_at is not None and task.due_at - task.created_at == 48 * 3600
    signals = ran.item("ORD-10025").context["fraud_signals"]
    assert signals["disposable_email"] is True and signals["countries_match"] is False
    assert signals["email_domain"] == "mailinator.com" and signals["resale_units"] == 3
    assert "billing country GB differs from shipping country US" in signals["signals"]


def test_clean_orders_are_low_risk_and_one_sign_is_medium_risk_and_both_go_on(
    ran: Ran,
) -> None:
    for key in MEDIUM:
        verdict = ran.item(key).context["fraud_check"]
        assert verdict["risk_level"] == "medium", key
        assert 0.3 < verdict["risk"] < 0.8
        assert ran.path(key)[:4] == ["received", "fraud_signals", "fraud_check", "checks"]
    assert ran.item("ORD-10014").context["fraud_signals"]["signals"] == [
        "young account, opened 47 days ago"
    ]
    for key in ("ORD-10001", "ORD-10008", "ORD-10010", "ORD-10030"):
        item = ran.item(key)
        assert item.context["fraud_signals"]["signals"] == []
        assert item.context["fraud_check"]["risk_level"] == "low", key
        assert item.context["fraud_check"]["risk"] < 0.3


def test_malformed_orders_stop_at_intake_with_the_reason(ran: Ran) -> None:
    assert _errors(ran, "ORD-10032") == ["order total 148.90 does not match its lines (168.90)"]
    assert _errors(ran, "ORD-10033") == ["line MS-220: quantity must be positive, not 0"]
    assert ran.path("ORD-10033") == ["received", "invalid_order"]


def test_a_declined_payment_sends_a_labelled_template_because_no_model_wrote_one(
    ran: Ran,
) -> None:
    reasons = {
        "ORD-10021": "the card on file expired in 2025-11",
        "ORD-10022": "the card on file expired in 2026-01",
        "ORD-10023": "2272.00 exceeds the available credit of 1600.00",
    }
    for key, reason in reasons.items():
        item = ran.item(key)
        assert item.context["checks"]["credit"]["reason"] == reason
        assert ran.path(key)[-4:] == [
            "notify",
            "notice_template",
            "send_notice",
            "customer_notified",
        ]
        (call,) = _agent_calls(ran, key, "notifier")
        assert call["model"] == LOCAL_MODEL
        assert item.context["notify"] == {}  # the local model left the prose fields empty
        sent = item.context["send_notice"]
        assert sent["written_by"] == "template"
        assert sent["body"].startswith(TEMPLATE_MARK) and reason in sent["body"]
        assert sent["to"] == item.context["customer"]["email"]
        assert "warehouse_routing" not in item.context
        assert _condition_into(ran, key, "notify") == DECLINED
    assert (
        "please settle your open invoices" in ran.item("ORD-10023").context["send_notice"]["body"]
    )


def test_an_order_out_of_stock_everywhere_waits_on_backorder(ran: Ran) -> None:
    assert ran.path("ORD-10018")[-3:] == ["checks", "backorder", "backordered"]
    assert _condition_into(ran, "ORD-10018", "backorder") == OUT_OF_STOCK
    item = ran.item("ORD-10018")
    assert item.context["checks"]["inventory"]["missing"] == [
        {"sku": "HP-300", "requested": 1, "on_hand": 0}
    ]
    backorder = item.context["backorder"]
    assert backorder["expected"] == "2026-03-09"  # the next delivery into Newark, serving US
    assert backorder["lines"][0]["warehouse"] == "EWR"


def test_the_goods_receipt_sends_a_backorder_back_through_the_checks_to_shipping(
    ran: Ran,
) -> None:
    path = ran.path("ORD-10017")
    start = path.index("backordered")
    assert path[start - 2 : start + 1] == ["checks", "backorder", "backordered"]
    assert path[start + 1 :] == ["checks", "warehouse_routing", "execute", "fulfilled"]
    item = ran.item("ORD-10017")
    assert item.context["backorder"]["expected"] == "2026-03-13"  # Frankfurt serves DE
    assert item.context["checks"]["inventory"]["available"]["HP-300"]["FRA"] == 60
    shipment = item.context["execute"]
    assert (shipment["warehouse"], shipment["ship_date"]) == ("FRA", "2026-03-13")
    assert shipment["reservations"] == [{"warehouse": "FRA", "sku": "HP-300", "qty": 1}]


def test_routing_picks_the_serving_warehouse_moves_stock_and_escalates_unserved(
    ran: Ran,
) -> None:
    routes = {
        key: ran.item(key).context["warehouse_routing"]["warehouse"]
        for key, state in ENDS.items()
        if state == "fulfilled"
    }
    assert routes["ORD-10001"] == "FRA" and routes["ORD-10005"] == "MAN"
    assert routes["ORD-10006"] == "MAN" and routes["ORD-10008"] == "EWR"
    chloe = ran.item("ORD-10016").context
    assert chloe["warehouse_routing"]["transfers"] == [{"sku": "WC-4K", "qty": 2, "from": "MAN"}]
    assert chloe["execute"]["reservations"] == [{"warehouse": "MAN", "sku": "WC-4K", "qty": 2}]
    assert chloe["execute"]["ship_date"] == "2026-02-24"  # after the cut-off, plus the transfer
    assert ran.path("ORD-10030")[-2:] == ["warehouse_routing", "escalated"]
    assert _errors(ran, "ORD-10030") == ["no warehouse ships to BR"]


def test_a_warehouse_system_timeout_is_retried_and_the_order_still_ships(ran: Ran) -> None:
    retried = []
    for key, state in ENDS.items():
        failures = [r for r in ran.history(key) if r.error and r.error["kind"] == "transient"]
        if failures:
            assert failures[0].command == "route_to_warehouse" and failures[0].attempt == 1
            assert state == "fulfilled"
            retried.append(key)
    assert "ORD-10016" in retried and 1 <= len(retried) < len(ENDS) // 2


def test_execution_reserves_stock_and_derives_carrier_and_tracking_number(ran: Ran) -> None:
    shipments = {
        key: ran.item(key).context["execute"] for key, state in ENDS.items() if state == "fulfilled"
    }
    assert shipments["ORD-10004"]["carrier"] == "DHL Express"  # express from Frankfurt
    assert re.fullmatch(r"\d{10}", shipments["ORD-10004"]["tracking_number"])
    assert shipments["ORD-10005"]["carrier"] == "Royal Mail"
    assert re.fullmatch(r"RM\d{9}GB", shipments["ORD-10005"]["tracking_number"])
    assert shipments["ORD-10007"]["carrier"] == "UPS Ground"
    assert re.fullmatch(r"1Z4R7E90\d{10}", shipments["ORD-10007"]["tracking_number"])
    assert shipments["ORD-10013"]["carrier"] == "UPS Next Day Air"
    assert shipments["ORD-10013"]["estimated_delivery"] == "2026-02-20"
    assert len({s["tracking_number"] for s in shipments.values()}) == len(shipments)
    assert shipments["ORD-10001"]["reservations"] == [
        {"warehouse": "FRA", "sku": "KB-100", "qty": 1},
        {"warehouse": "FRA", "sku": "MS-220", "qty": 1},
    ]
    assert shipments["ORD-10001"]["cleared_by"] == "fraud check"


def test_a_review_form_without_a_decision_is_refused_and_changes_nothing(ran: Ran) -> None:
    with pytest.raises(TaskError, match="decision"):
        ran.decide("ORD-10027", "approve", {"notes": "looks fine"})
    assert ran.item("ORD-10027").state == "fraud_review"
    assert len(ran.tasks("ORD-10027")) == 1


def test_a_reviewer_clears_one_held_order_and_cancels_another(ran: Ran) -> None:
    cleared = ran.decide(
        "ORD-10026",
        "approve",
        {"decision": "verified_customer", "notes": "called the customer, ID matches"},
    )
    assert cleared.state == "fulfilled"
    assert cleared.context["fraud_review"]["data"]["decision"] == "verified_customer"
    (review,) = ran.reviews("ORD-10026")  # clearing a held order overrides the analyst
    assert (review["agent"], review["state"], review["verdict"]) == (
        "fraud_analyst", "fraud_check", "override"
    )  # fmt: skip
    assert review["score"] == cleared.context["fraud_check"]["risk"]
    reviewer = cleared.context["fraud_review"]["by"]
    assert "dana" in reviewer and cleared.context["execute"]["cleared_by"] == reviewer
    assert cleared.context["execute"]["carrier"] == "DHL Express"
    assert ran.path("ORD-10026")[-5:] == [
        "fraud_review",
        "checks",
        "warehouse_routing",
        "execute",
        "fulfilled",
    ]
    rejected = ran.decide(
        "ORD-10025", "reject", {"decision": "confirmed_fraud", "notes": "card reported stolen"}
    )
    assert rejected.state == "cancelled"
    assert "checks" not in rejected.context
    assert [r["verdict"] for r in ran.reviews("ORD-10025")] == ["agree"]
    still_held = sorted(t.key for t in ran.tasks() if t.queue == "fraud")
    assert still_held == ["ORD-10027", "ORD-10028", "ORD-10029"]


def test_an_operator_cancels_the_order_no_warehouse_can_serve(ran: Ran) -> None:
    (task,) = ran.tasks("ORD-10030")
    assert (task.state, task.queue) == ("escalated", "escalations")
    assert ran.item("ORD-10030").status.value == "waiting"
    cancelled = ran.decide("ORD-10030", "reject", {"notes": "told the customer we cannot ship"})
    assert cancelled.state == "cancelled"
    assert cancelled.context["escalated"]["data"] == {"notes": "told the customer we cannot ship"}
    assert ran.tasks("ORD-10030") == []


NOTICE_PROSE = (
    "Dear Max, we could not take the payment for order ORD-10021 because the card on file "
    "expired in 2025-11. Please update your card details and we will ship at once. "
    "Your order team"
)


def _hosted_reply(request: AgentRequest) -> Reply:
    """What a hosted model answers each agent of order_processing, judged from its input."""
    fields, user = request.fields, request.user
    if "risk_level" in fields:
        high = "disposable" in user or "brand-new" in user
        arguments: dict[str, Any] = {
            "risk_level": "high" if high else "low",
            "risk": 0.92 if high else 0.08,
            "confidence": 0.9,
            "rationale": "New account and several warning signs." if high else "Usual order.",
        }
    elif fields == {"subject", "message"}:
        arguments = {"subject": "Your payment for ORD-10021", "message": NOTICE_PROSE}
    else:
        raise AssertionError(f"unexpected agent with fields {sorted(fields)}")
    return request.answer(arguments, prompt=300, completion=60)


def test_on_a_hosted_model_the_same_files_send_the_models_own_notice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with hosted_model(monkeypatch, _hosted_reply):
        hosted = run_example("order_processing", tmp_path)
    item = hosted.item("ORD-10021")
    assert hosted.path("ORD-10021")[-3:] == ["notify", "send_notice", "customer_notified"]
    assert _condition_into(hosted, "ORD-10021", "send_notice") == "has(notify.message)"
    assert item.context["send_notice"]["body"] == NOTICE_PROSE
    assert item.context["send_notice"]["written_by"] == "model"
    assert "notice_template" not in item.context
    held = hosted.item("ORD-10025").context["fraud_check"]
    assert held["rationale"] == "New account and several warning signs."
    assert hosted.states()["ORD-10025"] == "fraud_review"
    assert {u["model"] for u in _agent_calls(hosted, "ORD-10021", "notifier")} == {
        "openai:gpt-4.1-mini"
    }


def test_the_example_files_are_where_the_conventions_put_them() -> None:
    root = Path(__file__).resolve().parents[2] / "examples" / "order_processing"
    for name in ("workflow.yaml", "tools.py", "items.jsonl", "events.jsonl", "README.md"):
        assert (root / name).is_file(), name
    for table in ("stock.csv", "warehouses.csv", "customers.csv"):
        assert (root / "data" / table).is_file(), table


# The due times, on the virtual clock of statewise.testing, with the fraud analyst scripted.
EXAMPLE = Path(__file__).parents[2] / "examples" / "order_processing"
ORDERS = {
    order["key"]: order["data"]
    for order in map(json.loads, (EXAMPLE / "items.jsonl").read_text("utf-8").splitlines())
}
RISK = {
    "high": {"risk_level": "high", "risk": 0.9, "confidence": 0.8},
    "low": {"risk_level": "low", "risk": 0.05, "confidence": 0.9},
}


@pytest.fixture
def orders(workflow_test: MakeWorkflowTest) -> WorkflowTest:
    return workflow_test(EXAMPLE / "workflow.yaml", EXAMPLE / "tools.py")


def test_a_fraud_review_nobody_decides_in_48_hours_is_escalated(orders: WorkflowTest) -> None:
    orders.agent("fraud_analyst", RISK["high"])
    orders.start("ORD-10025", ORDERS["ORD-10025"])
    orders.assert_path("ORD-10025", ["received", "fraud_signals", "fraud_check", "fraud_review"])

    orders.advance(hours=24)
    assert orders.task("ORD-10025").reminded_at == orders.started_at + 24 * 3600
    orders.advance(hours=24)

    orders.assert_state("ORD-10025", "escalated", "waiting")
    overdue = orders.assert_audit("ORD-10025", from_state="fraud_review", to_state="escalated")
    assert overdue.at - orders.started_at == 48 * 3600
    with pytest.raises(TaskError, match="needs role 'operator'"):  # the reviewer's has expired
        orders.decide("ORD-10025", "reject", {"notes": "x"}, role="reviewer")
    orders.decide("ORD-10025", "reject", {"notes": "fraud ring"}, actor="ops")
    orders.assert_state("ORD-10025", "cancelled", "done")


def test_a_backorder_waits_30_days_for_its_goods_then_is_escalated(orders: WorkflowTest) -> None:
    orders.agent("fraud_analyst", RISK["low"])
    orders.start("ORD-10018", ORDERS["ORD-10018"])
    orders.assert_state("ORD-10018", "backordered", "waiting")

    orders.advance(days=29, hours=23)
    orders.assert_state("ORD-10018", "backordered")
    orders.advance(hours=1)

    orders.assert_path(
        "ORD-10018",
        [
            "received",
            "fraud_signals",
            "fraud_check",
            "checks",
            "backorder",
            "backordered",
            "escalated",
        ],
    )
    assert orders.item("ORD-10018").entered_at - orders.started_at == 30 * 86_400
