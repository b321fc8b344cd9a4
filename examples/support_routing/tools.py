"""Tools of support_routing: the customer-history lookup and the follow-up survey.

Neither calls a model. ``lookup_customer`` reads the sample CRM table next to this file;
``follow_up`` fills a survey template and says so, so nobody mistakes it for written text.
A hosted model's agents may call ``lookup_customer`` too (list it under an agent's ``tools:``).
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path
from typing import Any

from statewise.contract import CommandContext, CommandRegistry

CUSTOMERS = Path(__file__).parent / "data" / "customers.csv"
SURVEY_TEMPLATE = (
    "[Template - not written by a model] Hello {name}, we hope your question about "
    "{category} is answered. How did we do? Rate us from 1 to 5: {link}"
)

registry = CommandRegistry()


@cache
def _customers() -> dict[str, dict[str, str]]:
    with CUSTOMERS.open(encoding="utf-8", newline="") as handle:
        return {row["customer_id"]: row for row in csv.DictReader(handle)}


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
    history = ctx.context.get("history", {})
    category = ctx.context.get("classify", {}).get("category", "your order")
    message = SURVEY_TEMPLATE.format(
        name=history.get("name", "there"),
        category=category,
        link=f"https://shop.example/survey/{ctx.key}",
    )
    return {
        "channel": ctx.context.get("channel", "email"),
        "message": message,
        "written_by": "template",
    }
