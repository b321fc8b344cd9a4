"""Commands of support_routing.yaml: classify, sentiment, customer history, answer, follow-up.

Plain, deterministic Python standing in for agents: each command reads the inquiry and what
earlier stages stored from ``ctx.context`` and returns a JSON object, which the workflow stores
under the state's name. Run with ``statewise run examples/support_routing.yaml --commands
examples/support_routing.py``.
"""

from __future__ import annotations

import re
from typing import Any

from statewise.worker.registry import CommandContext, CommandRegistry

JSON = Any

registry = CommandRegistry()
command = registry.command


def _contains(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE) is not None


TOPICS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "technical",
        "technical",
        (
            "error",
            "crash",
            "not working",
            "firmware",
            "api",
            "integration",
            "sync",
            "bug",
            "outage",
            "down",
            "webhook",
            "timeout",
        ),
    ),
    (
        "faq",
        "order_status",
        (
            "where is my order",
            "tracking",
            "track my",
            "delivery date",
            "when will",
            "arrive",
            "shipped",
        ),
    ),
    ("faq", "returns", ("return policy", "how do i return", "return label", "exchange", "return")),
    ("faq", "password", ("reset my password", "forgot my password", "password reset", "log in")),
    ("faq", "opening_hours", ("opening hours", "store hours", "open on", "holiday hours")),
    (
        "billing",
        "billing",
        ("invoice", "charged twice", "refund", "double charge", "payment failed", "vat", "billing"),
    ),
    (
        "order_issue",
        "order_issue",
        ("wrong size", "wrong item", "damaged", "broke", "missing item", "quality"),
    ),
    (
        "account",
        "account",
        ("change my address", "delete my account", "update my email", "newsletter", "account"),
    ),
)
URGENT_WORDS = ("urgent", "asap", "immediately", "production", "outage", "critical", "right now")
POSITIVE_WORDS = ("thanks", "thank you", "great", "love", "appreciate", "happy", "cheers")
NEGATIVE_WORDS = (
    "angry",
    "terrible",
    "unacceptable",
    "disappointed",
    "worst",
    "cancel",
    "frustrated",
    "ridiculous",
    "still",
    "again",
    "useless",
)
CUSTOMERS: dict[str, dict[str, Any]] = {
    "CUS-100": {
        "name": "Amira Haddad",
        "tier": "enterprise",
        "lifetime_value": 48200,
        "tickets_90d": 4,
    },
    "CUS-101": {"name": "Jonas Berg", "tier": "standard", "lifetime_value": 860, "tickets_90d": 1},
    "CUS-102": {"name": "Priya Nair", "tier": "standard", "lifetime_value": 2310, "tickets_90d": 0},
    "CUS-103": {"name": "Tom Okafor", "tier": "gold", "lifetime_value": 15750, "tickets_90d": 2},
    "CUS-104": {"name": "Sofia Rossi", "tier": "standard", "lifetime_value": 420, "tickets_90d": 3},
    "CUS-105": {"name": "Chen Wei", "tier": "business", "lifetime_value": 9800, "tickets_90d": 5},
    "CUS-106": {"name": "Lucía Gómez", "tier": "gold", "lifetime_value": 22400, "tickets_90d": 1},
    "CUS-107": {"name": "Mark Jansen", "tier": "standard", "lifetime_value": 150, "tickets_90d": 0},
    "CUS-108": {
        "name": "Hannah Schulz",
        "tier": "enterprise",
        "lifetime_value": 126000,
        "tickets_90d": 7,
    },
    "CUS-109": {"name": "Ravi Patel", "tier": "standard", "lifetime_value": 1240, "tickets_90d": 2},
}
ORDERS: dict[str, dict[str, Any]] = {
    "10042": {"status": "shipped", "carrier": "DHL", "eta": "2026-02-26"},
    "10057": {"status": "out for delivery", "carrier": "UPS", "eta": "2026-02-24"},
    "10063": {"status": "processing", "carrier": None, "eta": "2026-02-27"},
    "10071": {"status": "delivered", "carrier": "DPD", "eta": "2026-02-20"},
}
KNOWLEDGE_BASE = {
    "order_status": (
        "KB-12",
        "Orders ship within two working days; tracking links arrive by e-mail.",
    ),
    "returns": ("KB-31", "Returns are free within 30 days: print the label from your account."),
    "password": (
        "KB-07",
        "Use 'Forgot password' on the sign-in page; the link is valid for an hour.",
    ),
    "opening_hours": (
        "KB-03",
        "Stores open Mon-Sat 9:00-19:00; holiday hours are on each store page.",
    ),
}


def _count(text: str, phrases: tuple[str, ...]) -> list[str]:
    return [p for p in phrases if _contains(text, p)]


@command()
def classify_inquiry(ctx: CommandContext) -> JSON:
    """Determine the inquiry's type, topic, complexity and whether it is urgent."""
    text = f"{ctx.context['subject']}\n{ctx.context['message']}"
    scored = [
        (len(_count(text, phrases)), -i, kind, topic)
        for i, (kind, topic, phrases) in enumerate(TOPICS)
    ]
    hits, _, kind, topic = max(scored)
    if hits == 0:
        kind, topic = "general", "general"
    error_code = re.search(r"\b[A-Z]{2,}-?\d{3,}\b", text)
    if kind == "technical":
        complex_signals = bool(error_code) or bool(
            _count(text, ("api", "integration", "webhook", "sync", "production", "firmware"))
        )
        complexity = "complex" if complex_signals else "standard"
    else:
        complexity = "simple" if kind == "faq" else "standard"
    return {
        "type": kind,
        "topic": topic,
        "complexity": complexity,
        "urgent": bool(_count(text, URGENT_WORDS)),
        "error_code": error_code[0] if error_code else None,
        "matched": _count(text, dict(((t, p) for _, t, p in TOPICS))[topic]) if hits else [],
    }


@command()
def analyze_sentiment(ctx: CommandContext) -> JSON:
    """Assess emotion and urgency from word lists, shouting and exclamation marks."""
    text = f"{ctx.context['subject']}\n{ctx.context['message']}"
    positive, negative = _count(text, POSITIVE_WORDS), _count(text, NEGATIVE_WORDS)
    shouting = len(re.findall(r"\b[A-Z]{4,}\b", text)) + text.count("!!")
    score = (len(positive) - len(negative) - shouting) / max(
        1, len(positive) + len(negative) + shouting
    )
    label = "positive" if score > 0.2 else "negative" if score < -0.2 else "neutral"
    urgent = ctx.context["classify"]["urgent"] or (label == "negative" and shouting >= 2)
    return {
        "label": label,
        "score": round(score, 2),
        "urgency": "high" if urgent else "normal",
        "cues": {"positive": positive, "negative": negative, "shouting": shouting},
    }


@command()
def check_history(ctx: CommandContext) -> JSON:
    """Look the customer up in the CRM: value, tier and how often they contacted us lately."""
    customer = CUSTOMERS.get(ctx.context["customer_id"])
    if customer is None:
        return {
            "known": False,
            "tier": "new",
            "lifetime_value": 0,
            "tickets_90d": 0,
            "high_value": False,
            "repeat_contact": False,
        }
    return {
        "known": True,
        "name": customer["name"],
        "tier": customer["tier"],
        "lifetime_value": customer["lifetime_value"],
        "tickets_90d": customer["tickets_90d"],
        "high_value": customer["lifetime_value"] > 10000,
        "repeat_contact": customer["tickets_90d"] >= 3,
    }


@command()
def generate_answer(ctx: CommandContext) -> JSON:
    """Answer from the knowledge base, looking the order up when the question is about one."""
    context = ctx.context
    topic = context["classify"]["topic"]
    article, answer = KNOWLEDGE_BASE.get(topic, ("KB-00", "Our team will get back to you."))
    tools = []
    confidence = 0.9 if topic in KNOWLEDGE_BASE else 0.4
    if topic == "order_status":
        tools.append("order_lookup")
        match = re.search(r"\b(\d{5})\b", context["message"])
        number = match[1] if match else ""
        order = ORDERS.get(number)
        if order is None:
            confidence = 0.45
            answer = "We could not find that order; " + answer[0].lower() + answer[1:]
        else:
            carrier = f" with {order['carrier']}" if order["carrier"] else ""
            answer = f"Order {number} is {order['status']}{carrier}, expected {order['eta']}."
    name = context["history"].get("name", "there")
    return {
        "answer": f"Hi {name.split()[0] if name != 'there' else name}, {answer}",
        "article": article,
        "tools_used": tools,
        "confidence": confidence,
    }


@command()
def follow_up(ctx: CommandContext) -> JSON:
    """Check satisfaction after the resolution and note knowledge-base gaps."""
    context = ctx.context
    resolution = context.get("resolve")
    if resolution is None:
        resolved_by = "automation"
        satisfied = context["auto_resolve"]["confidence"] >= 0.7
    else:
        resolved_by = resolution.get("agent", "agent")
        satisfied = resolution.get("csat", 5) >= 3
    kb_update = None
    if resolution and resolution.get("new_issue"):
        kb_update = f"draft a knowledge-base article on {context['classify']['topic']}"
    return {
        "resolved_by": resolved_by,
        "satisfied": satisfied,
        # An automated answer that did not help goes to a person, once.
        "reopen": resolution is None and not satisfied,
        "survey": "sent",
        "kb_update": kb_update,
    }
