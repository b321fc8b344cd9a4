"""Commands of order_processing.yaml: receive, fraud check, stock and credit, route, dispatch.

Plain, deterministic Python standing in for agents: each command reads the order and what
earlier stages stored from ``ctx.context`` and returns a JSON object, which the workflow stores
under the state's name. Run with ``statewise run examples/order_processing.yaml --commands
examples/order_processing.py``.

``PermanentError`` means retrying cannot help (an order whose total does not add up, a
destination no warehouse ships to); the workflow's ``on: error`` route decides where the order
goes. ``route_to_warehouse`` raises a ``TransientError`` on its first attempt for about a third
of the orders, decided by a hash of the key so every run is the same, to show retries in the
audit trail.
"""

from __future__ import annotations

import hashlib
from typing import Any

from statewise.errors import PermanentError, TransientError
from statewise.worker.registry import CommandContext, CommandRegistry

JSON = Any

registry = CommandRegistry()
command = registry.command


def stable_fraction(text: str) -> float:
    """A number in [0, 1) drawn from ``text``: the same on every run and every machine."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


WAREHOUSES: dict[str, dict[str, Any]] = {
    "FRA": {"name": "Frankfurt", "serves": ["DE", "AT", "CH", "NL", "BE", "LU", "FR", "PL", "DK"]},
    "MAN": {"name": "Manchester", "serves": ["GB", "IE"]},
    "EWR": {"name": "Newark", "serves": ["US", "CA"]},
}

# Units on hand per SKU and warehouse.
STOCK: dict[str, dict[str, int]] = {
    "KB-100": {"FRA": 40, "MAN": 12, "EWR": 25},  # mechanical keyboard
    "MS-220": {"FRA": 80, "MAN": 30, "EWR": 60},  # wireless mouse
    "MN-270": {"FRA": 6, "MAN": 2, "EWR": 9},  # 27-inch monitor
    "GPU-4080": {"FRA": 3, "MAN": 0, "EWR": 4},  # graphics card
    "HP-300": {"FRA": 0, "MAN": 0, "EWR": 0},  # noise-cancelling headphones, sold out
    "DK-USB4": {"FRA": 15, "MAN": 5, "EWR": 0},  # USB4 dock
    "CB-USBC": {"FRA": 300, "MAN": 120, "EWR": 200},  # USB-C cable
    "PH-15P": {"FRA": 5, "MAN": 3, "EWR": 8},  # smartphone
    "CH-ERGO": {"FRA": 4, "MAN": 1, "EWR": 0},  # ergonomic chair
    "WC-4K": {"FRA": 0, "MAN": 7, "EWR": 0},  # 4K webcam
}
RESTOCK_DAYS = {"HP-300": 21, "GPU-4080": 14, "CH-ERGO": 10, "WC-4K": 7}
HIGH_RESALE_SKUS = {"GPU-4080", "PH-15P"}
DISPOSABLE_DOMAINS = {"mailinator.com", "tempmail.dev", "guerrillamail.com", "10minutemail.net"}
HIGH_RISK = 0.6


@command()
def receive_order(ctx: CommandContext) -> JSON:
    """Check the order is well formed: known SKUs, positive quantities, a total that adds up."""
    order = ctx.context
    lines = order.get("lines") or []
    if not lines:
        raise PermanentError("the order has no lines")
    for line in lines:
        if line["sku"] not in STOCK:
            raise PermanentError(f"line {line['sku']}: unknown SKU")
        if line["qty"] <= 0:
            raise PermanentError(
                f"line {line['sku']}: quantity must be positive, not {line['qty']}"
            )
    computed = round(sum(line["qty"] * line["unit_price"] for line in lines), 2)
    if abs(computed - order["total"]) > 0.01:
        raise PermanentError(
            f"order total {order['total']:.2f} does not match its lines ({computed:.2f})"
        )
    return {
        "lines": len(lines),
        "units": sum(line["qty"] for line in lines),
        "total": computed,
        "currency": order["currency"],
    }


@command()
def check_fraud(ctx: CommandContext) -> JSON:
    """Score fraud indicators into a risk between 0 and 1, keeping the reasons."""
    order = ctx.context
    customer = order["customer"]
    weights: list[float] = []
    signals: list[str] = []

    def signal(weight: float, reason: str) -> None:
        weights.append(weight)
        signals.append(f"{reason} (+{weight})")

    if order["billing_country"] != order["shipping"]["country"]:
        signal(0.35, "billing and shipping countries differ")
    if customer["account_age_days"] < 30:
        signal(0.25, f"account is {customer['account_age_days']} days old")
    if customer["previous_orders"] == 0 and order["total"] > 500:
        signal(0.2, "first order above 500")
    domain = customer["email"].rsplit("@", 1)[-1].lower()
    if domain in DISPOSABLE_DOMAINS:
        signal(0.3, f"disposable e-mail domain {domain}")
    if order["shipping"]["method"] == "express" and customer["account_age_days"] < 30:
        signal(0.1, "express shipping on a new account")
    bulk = [ln["sku"] for ln in order["lines"] if ln["sku"] in HIGH_RESALE_SKUS and ln["qty"] >= 3]
    if bulk:
        signal(0.25, f"bulk high-resale items: {', '.join(bulk)}")
    risk = round(min(1.0, sum(weights)), 2)
    level = "high" if risk >= HIGH_RISK else "medium" if risk >= 0.3 else "low"
    return {"risk_score": float(risk), "level": level, "signals": signals}


@command()
def check_inventory(ctx: CommandContext) -> JSON:
    """Branch of the parallel checks: is every line on hand in some warehouse?"""
    missing = []
    available = {}
    for line in ctx.context["lines"]:
        by_warehouse = STOCK[line["sku"]]
        available[line["sku"]] = by_warehouse
        on_hand = sum(by_warehouse.values())
        if on_hand < line["qty"]:
            missing.append({"sku": line["sku"], "requested": line["qty"], "on_hand": on_hand})
    return {"in_stock": not missing, "missing": missing, "available": available}


@command()
def check_credit(ctx: CommandContext) -> JSON:
    """Branch of the parallel checks: can the customer pay for this order?"""
    order = ctx.context
    payment = order["payment"]
    total = order["receive_order"]["total"] if "receive_order" in order else order["total"]
    method = payment["method"]
    if method == "card":
        ordered_month = order["placed_at"][:7]
        approved = payment["card_expiry"] >= ordered_month
        reason = "card valid" if approved else f"card expired {payment['card_expiry']}"
        return {"approved": approved, "method": method, "reason": reason}
    if method == "invoice":
        headroom = round(payment["credit_limit"] - payment["outstanding"], 2)
        approved = total <= headroom
        reason = (
            f"{total:.2f} within available credit {headroom:.2f}"
            if approved
            else f"{total:.2f} exceeds available credit {headroom:.2f}"
        )
        return {"approved": approved, "method": method, "reason": reason, "headroom": headroom}
    return {"approved": True, "method": method, "reason": f"{method} pre-authorised"}


@command()
def create_backorder(ctx: CommandContext) -> JSON:
    """Reserve incoming stock for the missing lines and tell the customer when it arrives."""
    missing = ctx.context["checks"]["inventory"]["missing"]
    eta = max(RESTOCK_DAYS.get(m["sku"], 10) for m in missing)
    skus = ", ".join(m["sku"] for m in missing)
    return {
        "skus": [m["sku"] for m in missing],
        "eta_days": eta,
        "message": f"{skus} back in stock in about {eta} days; we will ship then.",
    }


@command()
def notify_customer(ctx: CommandContext) -> JSON:
    """Tell the customer the payment was declined and how to fix it."""
    order = ctx.context
    credit = order["checks"]["credit"]
    advice = {
        "card": "please update your card details",
        "invoice": "please pay open invoices or choose card payment",
    }.get(credit["method"], "please choose another payment method")
    return {
        "to": order["customer"]["email"],
        "template": "payment_declined",
        "message": f"Order {order['order_id']}: payment declined ({credit['reason']}); {advice}.",
    }


@command()
def route_to_warehouse(ctx: CommandContext) -> JSON:
    """Pick the warehouse that serves the destination and holds the whole order.

    Flaky on purpose: the warehouse system times out on the first attempt for about a third of
    the orders (decided by the order key), so the retry policy has something to do.
    """
    order = ctx.context
    country = order["shipping"]["country"]
    serving = [code for code, wh in WAREHOUSES.items() if country in wh["serves"]]
    if not serving:
        raise PermanentError(f"no warehouse ships to {country}")
    if ctx.attempt == 1 and stable_fraction(f"{ctx.key}:wms") < 0.34:
        raise TransientError(f"{WAREHOUSES[serving[0]]['name']} warehouse system timed out")
    available = order["checks"]["inventory"]["available"]

    def holds_all(code: str) -> bool:
        return all(available[ln["sku"]].get(code, 0) >= ln["qty"] for ln in order["lines"])

    complete = [code for code in serving if holds_all(code)]
    if complete:
        code, transfer = complete[0], None
    else:
        code = serving[0]
        transfer = next((c for c in WAREHOUSES if holds_all(c)), "several warehouses")
    return {
        "warehouse": code,
        "name": WAREHOUSES[code]["name"],
        "transfer_from": transfer,
        "reason": f"serves {country}" + (f"; stock moved in from {transfer}" if transfer else ""),
    }


@command()
def send_to_warehouse(ctx: CommandContext) -> JSON:
    """Hand the order to the warehouse for picking; the idempotency key de-duplicates resends."""
    order = ctx.context
    route = order["warehouse_routing"]
    express = order["shipping"]["method"] == "express"
    carrier = (
        "DHL Express"
        if express
        else {"FRA": "DHL", "MAN": "Royal Mail", "EWR": "UPS"}[route["warehouse"]]
    )
    eta = (1 if express else 3) + (2 if route["transfer_from"] else 0)
    return {
        "pick_ticket": f"PT-{route['warehouse']}-{order['order_id'].split('-')[-1]}",
        "carrier": carrier,
        "eta_days": eta,
        "request_id": ctx.idempotency_key,
        "cleared_by": order.get("approve", {}).get("reviewer", "automatic fraud check"),
    }
