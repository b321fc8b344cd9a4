"""Tools of support_routing: the customer lookup, the answer agent's order tools, the survey.

None calls a model. ``lookup_customer`` (a command: a branch of ``analyse``) reads the sample
CRM table next to this file. ``lookup_order`` and ``track_parcel`` are *tools*: the answer agent
calls them itself when the customer names an order (they read ``data/orders.csv``, the sample
order system), and each call is kept in the audit trail with its arguments and result.
``follow_up`` fills a survey template and says so, so nobody mistakes it for written text.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path
from typing import Any

from statewise.contract import CommandContext, CommandRegistry

CUSTOMERS = Path(__file__).parent / "data" / "customers.csv"
ORDERS = Path(__file__).parent / "data" / "orders.csv"
SURVEY_TEMPLATE = (
    "[Template - not written by a model] Hello {name}, we hope your question about "
    "{category} is answered. How did we do? Rate us from 1 to 5: {link}"
)

registry = CommandRegistry()


@cache
def _customers() -> dict[str, dict[str, str]]:
    with CUSTOMERS.open(encoding="utf-8", newline="") as handle:
        return {row["customer_id"]: row for row in csv.DictReader(handle)}


@cache
def _orders() -> dict[str, dict[str, str]]:
    with ORDERS.open(encoding="utf-8", newline="") as handle:
        return {row["order_id"]: row for row in csv.DictReader(handle)}


def _order(order_id: str) -> dict[str, str] | None:
    """The order by its number, however the customer wrote it (``#88213``, ``order 88213``)."""
    digits = "".join(c for c in order_id if c.isdigit())
    return _orders().get(digits) if digits else None


@registry.tool()
def lookup_order(order_id: str) -> dict[str, Any]:
    """The order's status and the charges on it, from the order system.

    Args:
        order_id: The order number the customer gives, such as 88213.
    """
    row = _order(order_id)
    if row is None:
        return {"found": False, "order_id": order_id}
    return {
        "found": True,
        "order_id": row["order_id"],
        "customer_id": row["customer_id"],
        "placed_at": row["placed_at"],
        "total": float(row["total"]),
        "currency": row["currency"],
        "status": row["status"],
        "charges": [charge.strip() for charge in row["charges"].split(";")],
    }


@registry.tool()
def track_parcel(order_id: str) -> dict[str, Any]:
    """Where the order's parcel is: carrier, tracking number and the latest scan.

    Args:
        order_id: The order number the customer gives, such as 88451.
    """
    row = _order(order_id)
    if row is None:
        return {"found": False, "order_id": order_id}
    return {
        "found": True,
        "order_id": row["order_id"],
        "carrier": row["carrier"],
        "tracking_number": row["tracking_number"],
        "status": row["tracking_status"],
        "last_scan_at": row["last_scan_at"],
    }


@registry.command()
def lookup_customer(ctx: CommandContext) -> dict[str, Any]:
    """The customer's tier, lifetime value and recent contacts; an unknown id is a new customer."""
    customer_id = str(ctx.context.get("customer_id", ""))
    row = _customers().get(customer_id)
    if row is None:
        return {
            "known": False,
            "tier": "new",
            "lifetime_value": 0.0,
            "orders": 0,
            "open_tickets": 0,
            "contacts_30d": 0,
        }
    return {
        "known": True,
        "name": row["name"],
        "tier": row["tier"],
        "lifetime_value": float(row["lifetime_value"]),
        "orders": int(row["orders"]),
        "open_tickets": int(row["open_tickets"]),
        "contacts_30d": int(row["contacts_30d"]),
        "customer_since": row["customer_since"],
    }


@registry.command()
def follow_up(ctx: CommandContext) -> dict[str, Any]:
    """The satisfaction survey for the customer, from a labelled template."""
    analysis = ctx.context.get("analyse", {})
    history = analysis.get("history", {})
    category = analysis.get("classify", {}).get("category", "your order")
    message = SURVEY_TEMPLATE.format(
        name=history.get("name", "there"),
        category=category,
        link=f"https://shop.example/survey/{ctx.key}",
    )
    return {
        "customer_id": ctx.context.get("customer_id"),
        "channel": ctx.context.get("channel", "email"),
        "message": message,
        "written_by": "template",
    }
