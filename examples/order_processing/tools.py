"""Tools of order_processing: intake, fraud rules, stock, credit, routing, notices and execution.

None of them calls a model. They read the sample tables next to this file (``data/stock.csv``:
units per warehouse and SKU with the next delivery; ``data/warehouses.csv``: the countries each
warehouse serves, its cut-off and carriers; ``data/customers.csv``: credit accounts) and return
JSON objects, which the workflow stores under the state's name (or the branch's, in ``checks``).

``validate_order`` reports data problems (an unknown SKU, a quantity of 0, a total that does not
add up) as ``valid: false`` with the problems listed, so the data-quality team's task shows
them; the lines and total it returns (with that team's corrections applied) are what every
later step reads. ``PermanentError`` means retrying cannot help (a destination no warehouse
serves); the workflow's ``on: error`` routes decide where the order goes.
``route_to_warehouse`` raises a ``TransientError`` on its first attempt for about a third of the
orders, chosen by a hash of the key so every run is the same, to show the retry policy.
``notice_template`` fills a clearly labelled template: no model wrote that text.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from statewise.contract import CommandContext, CommandRegistry
from statewise.errors import PermanentError, TransientError

DATA = Path(__file__).parent / "data"
JSON = dict[str, Any]

registry = CommandRegistry()

DISPOSABLE_DOMAINS = frozenset(
    {"mailinator.com", "tempmail.dev", "guerrillamail.com", "10minutemail.net", "yopmail.com"}
)
RESALE_SKUS = frozenset({"GPU-4080", "PH-15P"})
"""Goods fraudsters resell: several units of them in one order are a warning sign."""
NEW_ACCOUNT_DAYS = 30
YOUNG_ACCOUNT_DAYS = 90
HIGH_VALUE = 500.0
NOTICE_TEMPLATE = (
    "[Template - not written by a model] Dear {name}, we could not take payment for order "
    "{order_id} ({total} {currency}): {reason}. To continue, {advice}. Your order is kept for "
    "7 days; after that it is cancelled and nothing is charged."
)
ADVICE = {
    "card": "please update your card details or pay with another card",
    "invoice": "please settle your open invoices or pay this order by card",
}
TRACKING_FORMATS = {
    "DHL Paket": ("", 20, ""),
    "DHL Express": ("", 10, ""),
    "Royal Mail": ("RM", 9, "GB"),
    "DPD Next Day": ("", 14, ""),
    "UPS Ground": ("1Z4R7E90", 10, ""),
    "UPS Next Day Air": ("1Z4R7E01", 10, ""),
}
"""Carrier -> (prefix, digits, suffix) of its tracking numbers."""


def stable_fraction(text: str) -> float:
    """A number in [0, 1) drawn from ``text``: the same on every run and every machine."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def stable_digits(text: str, count: int) -> str:
    """``count`` decimal digits drawn from ``text``, deterministically."""
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    return str(int.from_bytes(digest, "big")).zfill(count)[-count:]


@dataclass(frozen=True, slots=True)
class Warehouse:
    """One row of data/warehouses.csv."""

    code: str
    name: str
    country: str
    serves: tuple[str, ...]
    cutoff: time
    carrier: str
    express_carrier: str


@dataclass(frozen=True, slots=True)
class StockRow:
    """One row of data/stock.csv: a SKU in one warehouse."""

    warehouse: str
    sku: str
    name: str
    on_hand: int
    incoming: int
    incoming_date: str


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@cache
def _warehouses() -> dict[str, Warehouse]:
    return {
        row["code"]: Warehouse(
            code=row["code"],
            name=row["name"],
            country=row["country"],
            serves=tuple(row["serves"].split()),
            cutoff=time.fromisoformat(row["cutoff_utc"]),
            carrier=row["carrier"],
            express_carrier=row["express_carrier"],
        )
        for row in _rows("warehouses.csv")
    }


@cache
def _stock() -> dict[tuple[str, str], StockRow]:
    return {
        (row["warehouse"], row["sku"]): StockRow(
            warehouse=row["warehouse"],
            sku=row["sku"],
            name=row["name"],
            on_hand=int(row["on_hand"]),
            incoming=int(row["incoming"]),
            incoming_date=row["incoming_date"],
        )
        for row in _rows("stock.csv")
    }


@cache
def _customers() -> dict[str, dict[str, str]]:
    return {row["customer_id"]: row for row in _rows("customers.csv")}


def _skus() -> set[str]:
    return {sku for _, sku in _stock()}


def _on_hand(context: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Units per SKU and warehouse: the stock table plus a delivery the item was told about."""
    on_hand: dict[str, dict[str, int]] = {}
    for (warehouse, sku), row in _stock().items():
        on_hand.setdefault(sku, {})[warehouse] = row.on_hand
    delivery = context.get("restocked")
    if isinstance(delivery, Mapping):
        sku, warehouse = str(delivery["sku"]), str(delivery["warehouse"])
        if sku in on_hand and warehouse in on_hand[sku]:
            on_hand[sku][warehouse] += int(delivery["qty"])
    return on_hand


def lines_of(context: Mapping[str, Any]) -> list[JSON]:
    """The order's lines as intake validated them (with the data-quality team's fixes)."""
    return list(context["validation"]["lines"])


def total_of(context: Mapping[str, Any]) -> float:
    """The order's total as intake validated it (with the data-quality team's fixes)."""
    return float(context["validation"]["total"])


def _corrections(context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The data-quality team's last fix (its task's form), if the order was resubmitted."""
    decision = context.get("data_quality")
    if isinstance(decision, Mapping) and decision.get("outcome") == "resubmit":
        data = decision.get("data")
        return data if isinstance(data, Mapping) else {}
    return {}


@registry.command()
def validate_order(ctx: CommandContext) -> JSON:
    """Check the order is well formed: known SKUs, positive quantities, a total that adds up.

    The data-quality team's corrections (a total, quantities per SKU) replace the order's own
    values; the result carries the lines and total every later step reads.
    """
    order = ctx.context
    fix = _corrections(order)
    quantities = fix.get("quantities") or {}
    lines = [
        {**line, "qty": int(quantities.get(line["sku"], line["qty"]))}
        for line in order.get("lines") or []
    ]
    total = float(fix.get("total", order["total"]))
    problems = [] if lines else ["the order has no lines"]
    ordered = {line["sku"] for line in lines}
    problems += [
        f"the correction names SKU {sku}, which is not a line of this order"
        for sku in quantities
        if sku not in ordered
    ]
    known = _skus()
    for line in lines:
        if line["sku"] not in known:
            problems.append(f"line {line['sku']}: unknown SKU")
        if line["qty"] <= 0:
            problems.append(f"line {line['sku']}: quantity must be positive, not {line['qty']}")
    computed = round(sum(line["qty"] * line["unit_price"] for line in lines), 2)
    if abs(computed - total) > 0.01:
        problems.append(f"order total {total:.2f} does not match its lines ({computed:.2f})")
    return {
        "valid": not problems,
        "problems": problems,
        "lines": lines,
        "units": sum(line["qty"] for line in lines),
        "total": round(total, 2),
        "currency": order["currency"],
        "corrected": bool(fix),
    }


@registry.command()
def fraud_signals(ctx: CommandContext) -> JSON:
    """The hard rule signals of fraud, as facts and as plain-language warning signs.

    The fraud analyst agent reads them (its input template renders them); the rules alone do
    not hold an order.
    """
    order = ctx.context
    customer = order["customer"]
    age = int(customer["account_age_days"])
    previous = int(customer["previous_orders"])
    total = total_of(order)
    currency = order["currency"]
    domain = str(customer["email"]).rsplit("@", 1)[-1].lower()
    shipping = order["shipping"]
    countries_match = order["billing_country"] == shipping["country"]
    resale_units = sum(ln["qty"] for ln in lines_of(order) if ln["sku"] in RESALE_SKUS)
    new_account = age < NEW_ACCOUNT_DAYS
    disposable = domain in DISPOSABLE_DOMAINS
    weights: list[float] = []
    signals: list[str] = []

    def signal(weight: float, text: str) -> None:
        weights.append(weight)
        signals.append(text)

    if new_account:
        signal(0.25, f"brand-new account, opened {age} days ago")
    elif age < YOUNG_ACCOUNT_DAYS:
        signal(0.1, f"young account, opened {age} days ago")
    if disposable:
        signal(0.3, f"disposable e-mail address at {domain}")
    if not countries_match:
        signal(
            0.35,
            f"billing country {order['billing_country']} differs from "
            f"shipping country {shipping['country']}",
        )
    if previous == 0 and total > HIGH_VALUE:
        signal(0.2, f"first order, and of high value ({total:.2f} {currency})")
    if resale_units >= 2:
        signal(0.25, f"{resale_units} units of easily resold electronics")
    if shipping["method"] == "express" and new_account:
        signal(0.1, "express shipping on a new account")
    return {
        "account_age_days": age,
        "previous_orders": previous,
        "email_domain": domain,
        "disposable_email": disposable,
        "countries_match": countries_match,
        "new_account": new_account,
        "resale_units": resale_units,
        "signals": signals,
        "rule_score": round(min(1.0, sum(weights)), 2),
    }


@registry.command()
def check_inventory(ctx: CommandContext) -> JSON:
    """Branch of ``checks``: is every line on hand, counting all warehouses together?"""
    on_hand = _on_hand(ctx.context)
    missing = []
    lines = lines_of(ctx.context)
    for line in lines:
        units = sum(on_hand[line["sku"]].values())
        if units < line["qty"]:
            missing.append({"sku": line["sku"], "requested": line["qty"], "on_hand": units})
    available = {line["sku"]: on_hand[line["sku"]] for line in lines}
    return {"in_stock": not missing, "missing": missing, "available": available}


@registry.command()
def check_credit(ctx: CommandContext) -> JSON:
    """Branch of ``checks``: a card must not have expired, an invoice must fit the credit line.

    A new payment the customer gave during the hold (event ``payment_updated``) replaces the
    order's own.
    """
    order = ctx.context
    updated = order.get("payment_updated")
    payment: Mapping[str, Any] = order["payment"]
    if isinstance(updated, Mapping) and updated.get("method"):
        payment = updated
    method = str(payment["method"])
    total = total_of(order)
    if method == "card":
        month = str(order["placed_at"])[:7]
        expiry = str(payment["card_expiry"])
        approved = expiry >= month
        reason = "card valid" if approved else f"the card on file expired in {expiry}"
        return {"approved": approved, "method": method, "reason": reason}
    if method == "invoice":
        account = _customers().get(str(order["customer"]["id"]))
        if account is None or float(account["credit_limit"]) <= 0:
            return {"approved": False, "method": method, "reason": "no credit account on file"}
        headroom = round(float(account["credit_limit"]) - float(account["outstanding"]), 2)
        approved = total <= headroom
        relation = "within" if approved else "exceeds"
        reason = f"{total:.2f} {relation} the available credit of {headroom:.2f}"
        return {"approved": approved, "method": method, "reason": reason, "headroom": headroom}
    return {"approved": True, "method": method, "reason": f"{method} payment pre-authorised"}


@registry.command()
def create_backorder(ctx: CommandContext) -> JSON:
    """Put the missing lines on backorder, with the next delivery that covers each.

    A delivery into a warehouse that serves the destination is preferred to an earlier one
    elsewhere, which would need a transfer.
    """
    missing = ctx.context["checks"]["inventory"]["missing"]
    country = ctx.context["shipping"]["country"]
    warehouses = _warehouses()
    lines = []
    for entry in missing:
        shortfall = entry["requested"] - entry["on_hand"]
        deliveries = sorted(
            (country not in warehouses[row.warehouse].serves, row.incoming_date, row.warehouse)
            for row in _stock().values()
            if row.sku == entry["sku"] and row.incoming >= shortfall and row.incoming_date
        )
        expected, warehouse = deliveries[0][1:] if deliveries else (None, None)
        lines.append({**entry, "expected": expected, "warehouse": warehouse})
    dates = [line["expected"] for line in lines]
    return {
        "lines": lines,
        "expected": None if None in dates else max(dates),
        "reference": f"BO-{ctx.key}",
    }


@registry.command()
def notice_template(ctx: CommandContext) -> JSON:
    """The payment-declined notice from a labelled template, for when no model wrote one."""
    order = ctx.context
    credit = order["checks"]["credit"]
    body = NOTICE_TEMPLATE.format(
        name=order["customer"]["name"],
        order_id=order["order_id"],
        total=f"{total_of(order):.2f}",
        currency=order["currency"],
        reason=credit["reason"],
        advice=ADVICE.get(credit["method"], "please choose another payment method"),
    )
    return {
        "subject": f"[Template] Payment for order {order['order_id']} could not be taken",
        "message": body,
        "written_by": "template",
    }


@registry.command()
def send_notice(ctx: CommandContext) -> JSON:
    """Queue the e-mail to the customer: the notifier's message, else the labelled template."""
    order = ctx.context
    notice = order.get("notice_template") or order["notify"]
    written_by = notice.get("written_by", "model")
    return {
        "to": order["customer"]["email"],
        "subject": notice.get("subject") or f"Payment for order {order['order_id']}",
        "body": notice["message"],
        "written_by": written_by,
        "message_id": f"MSG-{stable_digits(ctx.key + ':notice', 8)}",
    }


@registry.command()
def expedite(ctx: CommandContext) -> JSON:
    """The priority lane of a high-value customer: express at no charge, picked first."""
    customer = ctx.context["customer"]
    return {
        "lifetime_value": float(customer["lifetime_value"]),
        "shipping_upgrade": ctx.context["shipping"]["method"] != "express",
        "pick_queue": "priority",
        "reason": f"lifetime value {float(customer['lifetime_value']):.2f} is over 10000",
    }


def _ready_at(context: Mapping[str, Any]) -> datetime:
    """When the order could first be picked: placed, or when the awaited stock arrived."""
    restocked = context.get("restocked")
    if isinstance(restocked, Mapping) and restocked.get("received_at"):
        stamp = str(restocked["received_at"])
    else:
        stamp = str(context["placed_at"])
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def _working_day(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _add_working_days(day: date, count: int) -> date:
    for _ in range(count):
        day = _working_day(day + timedelta(days=1))
    return day


@registry.command()
def route_to_warehouse(ctx: CommandContext) -> JSON:
    """Pick the warehouse that serves the destination and holds the order, and its ship date.

    Flaky on purpose: the warehouse system times out on the first attempt for about a third
    of the orders (decided by the order key), so the retry policy has something to do.
    """
    order = ctx.context
    country = order["shipping"]["country"]
    warehouses = _warehouses()
    serving = [wh for wh in warehouses.values() if country in wh.serves]
    if not serving:
        raise PermanentError(f"no warehouse ships to {country}")
    if ctx.attempt == 1 and stable_fraction(f"{ctx.key}:wms") < 0.34:
        raise TransientError(f"the {serving[0].name} warehouse system timed out")
    available = order["checks"]["inventory"]["available"]
    lines = lines_of(order)

    def holds_all(code: str) -> bool:
        return all(available[ln["sku"]].get(code, 0) >= ln["qty"] for ln in lines)

    complete = [wh for wh in serving if holds_all(wh.code)]
    chosen = complete[0] if complete else serving[0]
    transfers = []
    if not complete:
        for line in lines:
            here = available[line["sku"]].get(chosen.code, 0)
            if here >= line["qty"]:
                continue
            source = max(available[line["sku"]].items(), key=lambda pair: pair[1])[0]
            transfers.append({"sku": line["sku"], "qty": line["qty"] - here, "from": source})
    ready = _ready_at(order)
    same_day = ready.weekday() < 5 and ready.time() < chosen.cutoff
    ship_date = ready.date() if same_day else _add_working_days(ready.date(), 1)
    if transfers:
        ship_date = _add_working_days(ship_date, 2)
    priority = isinstance(order.get("priority_lane"), Mapping)
    express = order["shipping"]["method"] == "express" or priority
    reason = f"{chosen.name} serves {country}"
    if transfers:
        reason += "; stock moved in from " + ", ".join(sorted({t["from"] for t in transfers}))
    return {
        "warehouse": chosen.code,
        "name": chosen.name,
        "carrier": chosen.express_carrier if express else chosen.carrier,
        "transfers": transfers,
        "cutoff_utc": chosen.cutoff.strftime("%H:%M"),
        "ship_date": ship_date.isoformat(),
        "priority": priority,
        "reason": reason,
    }


def _tracking_number(carrier: str, key: str) -> str:
    prefix, digits, suffix = TRACKING_FORMATS.get(carrier, ("SW", 12, ""))
    return f"{prefix}{stable_digits(f'{carrier}:{key}', digits)}{suffix}"


@registry.command()
def execute_order(ctx: CommandContext) -> JSON:
    """Reserve the stock and create the shipment record; the idempotency key de-duplicates."""
    order = ctx.context
    route = order["warehouse_routing"]
    moved = {t["sku"]: t for t in route["transfers"]}
    reservations = []
    for line in lines_of(order):
        transfer = moved.get(line["sku"])
        here = line["qty"] - (transfer["qty"] if transfer else 0)
        if here:
            reservations.append({"warehouse": route["warehouse"], "sku": line["sku"], "qty": here})
        if transfer:
            reservations.append(
                {"warehouse": transfer["from"], "sku": line["sku"], "qty": transfer["qty"]}
            )
    express = order["shipping"]["method"] == "express" or route.get("priority", False)
    destination = order["shipping"]["country"]
    domestic = _warehouses()[route["warehouse"]].country == destination
    transit = 1 if express else 2 if domestic else 3
    ship_date = date.fromisoformat(route["ship_date"])
    review = order.get("fraud_review")
    return {
        "shipment_id": f"SHP-{route['warehouse']}-{order['order_id'].split('-')[-1]}",
        "warehouse": route["warehouse"],
        "carrier": route["carrier"],
        "tracking_number": _tracking_number(route["carrier"], ctx.key),
        "ship_date": ship_date.isoformat(),
        "estimated_delivery": _add_working_days(ship_date, transit).isoformat(),
        "reservations": reservations,
        "cleared_by": review["by"] if isinstance(review, Mapping) else "fraud check",
        "pick_queue": "priority" if route.get("priority") else "standard",
        "request_id": ctx.idempotency_key,
    }
