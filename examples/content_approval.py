"""Commands of content_approval.yaml: brief, draft, SEO, brand check, revise, publish.

Plain, deterministic Python standing in for agents: each command reads the brief and what
earlier stages stored from ``ctx.context`` and returns a JSON object, which the workflow stores
under the state's name. Run with ``statewise run examples/content_approval.yaml --commands
examples/content_approval.py``.

A brief that cannot be read raises a ``PermanentError``: retrying cannot help, so the item
escalates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from statewise.errors import PermanentError
from statewise.worker.registry import CommandContext, CommandRegistry

JSON = Any

registry = CommandRegistry()
command = registry.command


def _words(text: str) -> int:
    return len(text.split())


def _contains(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE) is not None


BRAND = "Northwind"
# Unsubstantiated or absolute claims, with the wording brand guidelines allow instead.
BANNED_PHRASES = {
    "best in the world": "one of the best we have made",
    "guaranteed": "designed",
    "cheapest": "great value",
    "never fails": "built to last",
    "risk-free": "with a 30-day return window",
    "#1": "a customer favourite",
}
COMPETITORS = ("Acme", "Globex")
# Health claims need a legal review; no automatic revision may touch them.
MEDICAL_CLAIMS = ("cures", "heals", "clinically proven", "treats")
SLANG = {"awesome": "excellent", "super": "very", "gonna": "going to", "insane": "remarkable"}
CTA = {
    "blog": "Read the full story on northwind.example.",
    "newsletter": "See the collection in your account.",
    "social": "Find out more via the link in our bio.",
    "landing_page": "Order today on northwind.example.",
}


def _brief_lines(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and value.strip():
            fields[name.strip().lower()] = value.strip()
    return fields


@command()
def extract_requirements(ctx: CommandContext) -> JSON:
    """Read the requester's brief (``Field: value`` lines) into structured requirements."""
    fields = _brief_lines(ctx.context["brief"])
    missing = [f for f in ("title", "messages") if f not in fields]
    if missing:
        raise PermanentError(f"the brief has no {' or '.join(missing)} line")
    return {
        "title": fields["title"],
        "channel": ctx.context.get("channel", fields.get("channel", "blog")),
        "audience": fields.get("audience", "our customers"),
        "tone": fields.get("tone", "friendly").lower(),
        "keywords": [k.strip() for k in fields.get("keywords", "").split(",") if k.strip()],
        "messages": [m.strip() for m in fields["messages"].split(";") if m.strip()],
        "claims": [c.strip() for c in fields.get("claims", "").split(";") if c.strip()],
        "word_target": int(fields.get("length", "400")),
    }


@command()
def draft_content(ctx: CommandContext) -> JSON:
    """Write a first draft from the requirements: headline, intro, one paragraph per message."""
    req = ctx.context["brief_intake"]
    intro = (
        f"Made for {req['audience']}, {req['title']} brings together what {BRAND} "
        f"has been working on this season."
    )
    body = [
        f"{message.rstrip('.!')}." if not message.endswith("!") else message
        for message in req["messages"]
    ]
    claims = [claim if claim.endswith(("!", ".")) else f"{claim}." for claim in req["claims"]]
    paragraphs = [intro, *body, *claims, CTA.get(req["channel"], CTA["blog"])]
    text = "\n\n".join(paragraphs)
    return {"headline": req["title"], "text": text, "words": _words(text)}


@command()
def optimize_seo(ctx: CommandContext) -> JSON:
    """Work missing keywords into the draft and write the slug and meta description."""
    req = ctx.context["brief_intake"]
    text = ctx.context["draft"]["text"]
    present = [k for k in req["keywords"] if _contains(text, k)]
    added = [k for k in req["keywords"] if k not in present]
    if added:
        text += f"\n\nMore on {', '.join(added)}: see our guides."
    slug = re.sub(r"[^a-z0-9]+", "-", req["title"].lower()).strip("-")
    first = text.split("\n\n")[0]
    coverage = round(100 * len(present) / len(req["keywords"])) if req["keywords"] else 100
    return {
        "text": text,
        "slug": slug,
        "meta_description": first[:152] + ("..." if len(first) > 152 else ""),
        "keyword_coverage": coverage,
        "added_keywords": added,
    }


def _current_text(context: Mapping[str, JSON]) -> str:
    """The latest version of the copy: the last revision if there was one, else the SEO pass."""
    if "revise" in context:
        return str(context["revise"]["text"])
    return str(context["seo"]["text"])


def _brand_issues(text: str, tone: str) -> list[dict[str, Any]]:
    issues: list[dict[str, Any]] = []

    def issue(rule: str, found: str, penalty: int, fix: str | None) -> None:
        issues.append({"rule": rule, "found": found, "penalty": penalty, "fix": fix})

    for claim in MEDICAL_CLAIMS:
        if _contains(text, claim):
            issue("health_claim", claim, 25, None)
    for name in COMPETITORS:
        if _contains(text, name):
            issue("competitor_mention", name, 20, "remove the sentence")
    for phrase, allowed in BANNED_PHRASES.items():
        if phrase.lower() in text.lower():
            issue("absolute_claim", phrase, 15, allowed)
    if tone in ("formal", "professional"):
        for word, allowed in SLANG.items():
            if _contains(text, word):
                issue("tone", word, 8, allowed)
    for word in sorted(set(re.findall(r"\b[A-Z]{4,}\b", text))):
        issue("shouting", word, 4, word.capitalize())
    exclamations = text.count("!")
    if exclamations > 1:
        issue("exclamations", f"{exclamations} exclamation marks", min(15, 3 * exclamations), ".")
    if BRAND not in text:
        issue("brand_name", BRAND, 10, f"mention {BRAND}")
    return issues


@command()
def check_brand(ctx: CommandContext) -> JSON:
    """Score the copy against the brand guidelines: 100 minus a penalty per issue found."""
    tone = ctx.context["brief_intake"]["tone"]
    issues = _brand_issues(_current_text(ctx.context), tone)
    score = max(0, 100 - sum(i["penalty"] for i in issues))
    return {
        "score": score,
        "issues": issues,
        "auto_fixable": sum(1 for i in issues if i["fix"] is not None),
    }


def _fix(text: str, issue: Mapping[str, Any]) -> str:
    rule, found, fix = issue["rule"], issue["found"], issue["fix"]
    if rule == "competitor_mention":
        paragraphs = text.split("\n\n")
        kept = [re.sub(rf"[^.!?]*\b{re.escape(found)}\b[^.!?]*[.!?]\s*", "", p) for p in paragraphs]
        return "\n\n".join(p.strip() for p in kept if p.strip())
    if rule in ("absolute_claim", "tone"):
        return re.sub(re.escape(found), fix, text, flags=re.IGNORECASE)
    if rule == "shouting":
        return re.sub(rf"\b{found}\b", fix, text)
    if rule == "exclamations":
        return re.sub(r"!+", ".", text)
    if rule == "brand_name":
        return f"{BRAND}: {text}"
    return text


@command()
def revise_content(ctx: CommandContext) -> JSON:
    """Fix the worst brand issues (three per pass) and apply a reviewer's requested changes.

    Health claims are never rewritten automatically; a copy that has them keeps failing the
    brand check until the revision budget sends it to a human.
    """
    context = ctx.context
    text = _current_text(context)
    fixable = [i for i in context["brand_check"]["issues"] if i["fix"] is not None]
    fixable.sort(key=lambda i: -i["penalty"])
    applied = []
    for issue in fixable[:3]:
        text = _fix(text, issue)
        applied.append(f"{issue['rule']}: {issue['found']}")
    requested = context.get("request_changes") if ctx.state == "apply_feedback" else None
    if requested:
        for phrase in requested.get("remove", []):
            text = text.replace(phrase, "").replace("\n\n\n\n", "\n\n")
            applied.append(f"reviewer: removed {phrase!r}")
        if requested.get("add"):
            text += f"\n\n{requested['add']}"
            applied.append("reviewer: added a paragraph")
    previous = context.get("revise", {}).get("revision", 0)
    return {"text": text, "revision": previous + 1, "applied": applied, "words": _words(text)}


@command()
def publish_to_cms(ctx: CommandContext) -> JSON:
    """Send the approved copy to the CMS, recording who or what approved it."""
    context = ctx.context
    req, seo = context["brief_intake"], context["seo"]
    approver = context.get("approve", {}).get("reviewer")
    return {
        "cms_id": f"cms-{seo['slug']}",
        "url": f"https://northwind.example/{req['channel']}/{seo['slug']}",
        "approved_by": approver or f"auto-approved (brand score {context['brand_check']['score']})",
        "revisions": context.get("revise", {}).get("revision", 0),
        "words": _words(_current_text(context)),
    }
