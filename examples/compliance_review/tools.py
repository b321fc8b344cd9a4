"""Tools of compliance_review: intake, the hard rule checks, risk levels, feedback and archive.

None of them calls a model. ``check_document`` reads the two tables next to this file:
``data/disclosures.csv`` (what each kind of document must say, per jurisdiction, as a regular
expression, some only when the text mentions a trigger) and ``data/banned_terms.csv`` (claims
that are never allowed, with their severity and the rule they break). ``assess_risk`` raises the
risk_scorer agent's score to the floor the hard findings set. ``feedback`` tells the author what
must change, from the reviewers' forms and the findings, in a clearly labelled template: no model
wrote it. ``archive`` writes the compliance report as JSON into ``$STATEWISE_ARCHIVE`` (default:
``statewise-archive`` in the system's temp directory).

Each round of review (the first submission, then each revision) records when it started
(``document.round_started_at``); a decision belongs to the round when it was taken after that.
That is how the report and the feedback tell this round's decisions from an earlier round's,
whose results are still in the context.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from statewise.contract import CommandContext, CommandRegistry
from statewise.errors import PermanentError, TransientError

DATA = Path(__file__).parent / "data"
JSON = dict[str, Any]

registry = CommandRegistry()

KINDS = {
    "supplement_claim": "supplement marketing claim",
    "cosmetic_claim": "cosmetic marketing claim",
    "financial_promotion": "financial promotion",
    "product_label": "product label",
    "supplier_declaration": "supplier declaration",
    "privacy_notice": "privacy notice",
}
LOW_BELOW = 30
HIGH_FROM = 70
SEVERITY_FLOOR = {"major": HIGH_FROM, "minor": LOW_BELOW}
"""A banned term of this severity lifts the risk at least to this score."""
FINDING_FLOOR = {"major": 50, "minor": LOW_BELOW, "none": 0}
"""The screener's finding lifts the risk at least to this score."""
MISSING_FLOOR = LOW_BELOW
REVIEWS = {
    "auto_approve": "auto-approval",
    "standard_review": "standard review",
    "high_risk_review.senior": "senior compliance review",
    "high_risk_review.legal": "legal review",
    "escalated": "compliance lead (escalation)",
}
"""Context paths holding a decision, and what the report calls them.

The two high-risk reviews run at once as branches of ``high_risk_review``: each decision is
kept under the state's key by branch.
"""
NOT_A_CLAIM = re.compile(r"not intended to (diagnose|treat|cure|prevent)", re.IGNORECASE)
"""Sentences of a mandatory disclaimer name diseases without claiming anything."""
TEMPLATE_MARK = "[Template - not written by a model]"
CLEAN_REPORT = "Rule checks found every required disclosure and no banned claim."


@dataclass(frozen=True, slots=True)
class Disclosure:
    kind: str
    jurisdiction: str
    disclosure: str
    rule: str
    pattern: re.Pattern[str]
    only_if: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class BannedTerm:
    kinds: frozenset[str]
    pattern: re.Pattern[str]
    term: str
    severity: str
    rule: str


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@cache
def _disclosures() -> tuple[Disclosure, ...]:
    return tuple(
        Disclosure(
            kind=row["kind"],
            jurisdiction=row["jurisdiction"],
            disclosure=row["disclosure"],
            rule=row["rule"],
            pattern=re.compile(row["pattern"], re.IGNORECASE),
            only_if=re.compile(row["only_if"], re.IGNORECASE) if row["only_if"] else None,
        )
        for row in _rows("disclosures.csv")
    )


@cache
def _banned_terms() -> tuple[BannedTerm, ...]:
    return tuple(
        BannedTerm(
            kinds=frozenset(row["kinds"].split("|")),
            pattern=re.compile(row["pattern"], re.IGNORECASE),
            term=row["term"],
            severity=row["severity"],
            rule=row["rule"],
        )
        for row in _rows("banned_terms.csv")
    )


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _document(ctx: CommandContext) -> JSON:
    document = ctx.context.get("document")
    if not isinstance(document, dict):
        raise PermanentError("no document in the context: the item did not pass intake")
    return document


def _round_decisions(context: Mapping[str, Any], started_at: float) -> list[JSON]:
    """This round's decisions (auto or human), oldest first, flattened for the report."""
    decisions: list[tuple[float, JSON]] = []
    for key, label in REVIEWS.items():
        decision: Any = context
        for name in key.split("."):
            decision = decision.get(name) if isinstance(decision, dict) else None
        if not isinstance(decision, dict) or float(decision.get("at", 0)) < started_at:
            continue
        form = decision.get("data") or {}
        entry: JSON = {
            "step": key,
            "review": label,
            "outcome": decision["outcome"],
            "by": decision["by"],
            "at": _iso(float(decision["at"])),
            "rationale": form.get("rationale") or decision.get("reason", ""),
        }
        for field in ("changes", "rules", "legal_basis"):
            if form.get(field):
                entry[field] = form[field]
        if decision.get("comment"):
            entry["comment"] = decision["comment"]
        decisions.append((float(decision["at"]), entry))
    return [entry for _, entry in sorted(decisions, key=lambda pair: pair[0])]


@registry.command()
def intake(ctx: CommandContext) -> JSON:
    """The document as submitted: its kind, jurisdiction and text; round 1 starts now."""
    data = ctx.context
    kind = str(data.get("kind", ""))
    if kind not in KINDS:
        raise PermanentError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    text = str(data.get("text", "")).strip()
    if not text:
        raise PermanentError("the document has no text")
    return {
        "title": str(data.get("title", ctx.key)),
        "kind": kind,
        "kind_label": KINDS[kind],
        "jurisdiction": str(data.get("jurisdiction", "EU")).upper(),
        "text": text,
        "version": 1,
        "words": len(text.split()),
        "round_started_at": ctx.now,
    }


@registry.command()
def check_document(ctx: CommandContext) -> JSON:
    """The hard checks: required disclosures present, banned claims absent.

    A disclosure with a trigger (``only_if``) is required only when the text mentions it: the
    past-performance warning only where past returns are quoted. Banned claims are searched
    outside the sentences of a mandatory disclaimer ("not intended to ... cure ...").
    """
    document = _document(ctx)
    kind, jurisdiction, text = document["kind"], document["jurisdiction"], document["text"]
    missing: list[JSON] = []
    present: list[str] = []
    for rule in _disclosures():
        if rule.kind != kind or rule.jurisdiction not in ("*", jurisdiction):
            continue
        if rule.only_if is not None and not rule.only_if.search(text):
            continue
        if rule.pattern.search(text):
            present.append(rule.disclosure)
        else:
            missing.append({"disclosure": rule.disclosure, "rule": rule.rule})
    claims = " ".join(s for s in _sentences(text) if not NOT_A_CLAIM.search(s))
    banned: list[JSON] = []
    for term in _banned_terms():
        if kind not in term.kinds:
            continue
        match = term.pattern.search(claims)
        if match:
            banned.append(
                {
                    "term": term.term,
                    "matched": match.group(0),
                    "severity": term.severity,
                    "rule": term.rule,
                }
            )
    findings = [f"missing {m['disclosure']} ({m['rule']})" for m in missing]
    findings += [f'banned claim "{b["matched"]}" ({b["severity"]}, {b["rule"]})' for b in banned]
    return {
        "version": document["version"],
        "missing": missing,
        "present": present,
        "banned": banned,
        "hard_findings": findings,
        "report": f"Rule checks found: {'; '.join(findings)}." if findings else CLEAN_REPORT,
    }


@registry.command()
def assess_risk(ctx: CommandContext) -> JSON:
    """The risk_scorer's score, raised to the floor the hard findings set, and its level."""
    document = _document(ctx)
    context = ctx.context
    checks, rules = context["checks"], context["screening"]
    model_risk = int(context["risk_scoring"]["risk"])
    floors: list[tuple[int, str]] = [
        (SEVERITY_FLOOR[b["severity"]], f'{b["severity"]} banned claim "{b["matched"]}"')
        for b in checks["banned"]
    ]
    floors += [(MISSING_FLOOR, f"missing {m['disclosure']}") for m in checks["missing"]]
    finding = str(rules["finding"])
    if FINDING_FLOOR.get(finding, 0):
        floors.append((FINDING_FLOOR[finding], f"screening finding {finding}"))
    floor = max((score for score, _ in floors), default=0)
    risk = max(model_risk, floor)
    level = "high" if risk >= HIGH_FROM else "medium" if risk >= LOW_BELOW else "low"
    return {
        "version": document["version"],
        "model_risk": model_risk,
        "floor": floor,
        "floor_reasons": [reason for score, reason in floors if score == floor and floor],
        "risk": risk,
        "level": level,
    }


@registry.command()
def auto_approve(ctx: CommandContext) -> JSON:
    """Log the automatic approval and the facts it rests on."""
    assessment = ctx.context["assessment"]
    rules = ctx.context["screening"]
    return {
        "outcome": "approve",
        "by": "statewise:auto-approval",
        "at": ctx.now,
        "reason": (
            f"risk {assessment['risk']} below {LOW_BELOW}, screening finding "
            f"{rules['finding']} against {rules['source']}, no hard findings"
        ),
    }


@registry.command()
def manual_screening(ctx: CommandContext) -> JSON:
    """Why a person screens the document, in words for the reviewer and the author.

    The screener or the scorer reached no usable result (the offline model found no rule
    passage relevant enough, say); what the model said is in the audit trail for operators.
    The finding stands in for the screening, so an earlier round's is never shown as this one's.
    """
    document = _document(ctx)
    reason = (
        f"The automatic compliance screening could not reach a result for version "
        f"{document['version']} of this {document['kind_label']}, so a compliance officer "
        f"will check it against the written rules and decide."
    )
    return {"finding": "not screened", "rule": "", "source": "", "reason": reason}


@registry.command()
def combine_reviews(ctx: CommandContext) -> JSON:
    """Join the senior and the legal decision: a reject wins, then a revision, else approval."""
    reviews = ctx.context["high_risk_review"]  # both branches decided: the join was `all`
    senior, legal = reviews["senior"]["outcome"], reviews["legal"]["outcome"]
    both = {senior, legal}
    outcome = next(o for o in ("reject", "request_revision", "approve") if o in both)
    return {"outcome": outcome, "senior": senior, "legal": legal}


def _changes(context: Mapping[str, Any], document: JSON, decisions: list[JSON]) -> list[str]:
    """What the author must change: the missing disclosures, banned claims, reviewers' notes."""
    checks = context.get("checks") or {}
    changes = [f"Add {m['disclosure']} ({m['rule']})." for m in checks.get("missing", [])]
    changes += [
        f'Remove or reword "{b["matched"]}" ({b["rule"]}).' for b in checks.get("banned", [])
    ]
    for decision in decisions:
        if decision["outcome"] == "request_revision":
            asked = decision.get("changes") or decision["rationale"]
            changes.append(f"{decision['review'].capitalize()} ({decision['by']}): {asked}")
    if not changes:
        changes.append(f"Revise the {document['kind_label']} against the rule quoted below.")
    return changes


@registry.command()
def feedback(ctx: CommandContext) -> JSON:
    """The revision request to the author; the round is added to the log the report keeps."""
    context = ctx.context
    document = _document(ctx)
    decisions = _round_decisions(context, float(document["round_started_at"]))
    requested_by = [d["by"] for d in decisions if d["outcome"] == "request_revision"]
    if not requested_by:
        requested_by = ["statewise:completeness-check"]
    changes = _changes(context, document, decisions)
    assessment = context.get("assessment") or {}
    current = assessment.get("version") == document["version"]
    rules = (context.get("screening") or {}) if current else {}
    numbered = " ".join(f"{n}. {change}" for n, change in enumerate(changes, 1))
    quoted = f' Rule {rules["source"]}: "{rules["rule"]}"' if rules.get("rule") else ""
    message = (
        f'{TEMPLATE_MARK} Your {document["kind_label"]} "{document["title"]}" (version '
        f"{document['version']}) needs changes before it can be published: {numbered}"
        f"{quoted} Please send the revised text."
    )
    entry: JSON = {
        "version": document["version"],
        "text": document["text"],
        "rule_source": rules.get("source"),
        "finding": rules.get("finding"),
        "risk": assessment.get("risk") if current else None,
        "level": assessment.get("level") if current else None,
        "decisions": decisions,
        "requested_by": requested_by,
        "changes": changes,
    }
    result: JSON = {
        "version": document["version"],
        "requested_by": requested_by,
        "changes": changes,
        "message": message,
        "written_by": "template",
        "log": [*((context.get("feedback") or {}).get("log") or []), entry],
    }
    if rules.get("issue"):
        result["issue"] = rules["issue"]  # the screener model's own words, kept apart
        result["issue_written_by"] = "model"
    return result


@registry.command()
def resubmit(ctx: CommandContext) -> JSON:
    """The author's revised text becomes the next version of the document; a round starts."""
    document = dict(_document(ctx))
    revised = ctx.context.get("revised") or {}
    text = str(revised.get("text", "")).strip()
    if not text:
        raise PermanentError("the revised document has no text")
    document.update(
        text=text,
        version=int(document["version"]) + 1,
        words=len(text.split()),
        round_started_at=ctx.now,
        revision_note=str(revised.get("note", "")),
    )
    return document


def archive_dir() -> Path:
    """Where compliance reports go: ``$STATEWISE_ARCHIVE``, else the temp directory."""
    configured = os.environ.get("STATEWISE_ARCHIVE")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "statewise-archive"


def _report(ctx: CommandContext, document: JSON) -> JSON:
    context = ctx.context
    assessment = context.get("assessment") or {}
    current = assessment.get("version") == document["version"]
    rules = (context.get("screening") or {}) if current else {}
    checks = context.get("checks") or {}
    scoring = context.get("risk_scoring") or {}
    return {
        "report": "compliance review",
        "key": ctx.key,
        "title": document["title"],
        "kind": document["kind"],
        "jurisdiction": document["jurisdiction"],
        "version": document["version"],
        "text": document["text"],
        "outcome": "approved",
        "rule_hit": {
            "rule": rules.get("rule"),
            "source": rules.get("source"),
            "finding": rules.get("finding"),
            "confidence": rules.get("confidence"),
            **({"issue": rules["issue"]} if rules.get("issue") else {}),
        },
        "rule_checks": {
            "missing": checks.get("missing", []),
            "banned": checks.get("banned", []),
            "present": checks.get("present", []),
        },
        "risk": {
            "model": assessment.get("model_risk") if current else None,
            "model_confidence": scoring.get("confidence") if current else None,
            "combined": assessment.get("risk") if current else None,
            "level": assessment.get("level") if current else None,
            "floor_reasons": assessment.get("floor_reasons", []) if current else [],
        },
        "decisions": _round_decisions(context, float(document["round_started_at"])),
        "earlier_rounds": (context.get("feedback") or {}).get("log") or [],
        "assembled_by": "tool archive (no model wrote this report)",
    }


@registry.command()
def archive(ctx: CommandContext) -> JSON:
    """Write the compliance report as JSON; return its path and a one-line summary."""
    document = _document(ctx)
    report = _report(ctx, document)
    report["archived_at"] = _iso(ctx.now)
    directory = archive_dir()
    path = directory / f"{ctx.key}-v{document['version']}.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        partial.replace(path)
    except PermissionError as error:  # retrying cannot help
        raise PermanentError(f"cannot write the report to {directory}: {error}") from error
    except OSError as error:  # a full disk, a share that is away: retried
        raise TransientError(f"cannot write the report to {directory}: {error}") from error
    deciders = [d["by"] for d in report["decisions"]]
    risk = report["risk"]
    scored = "not scored (the screener matched no rule)"
    if risk["combined"] is not None:
        scored = f"risk {risk['combined']} ({risk['level']})"
    hit = report["rule_hit"]
    if hit["source"] is not None:
        scored += f"; rule {hit['source']} (finding {hit['finding']})"
    summary = (
        f"{ctx.key} version {document['version']} approved: {scored}; decided by "
        f"{', '.join(deciders) or 'nobody'}; {len(report['earlier_rounds'])} earlier round(s)"
    )
    return {
        "path": str(path),
        "summary": summary,
        "decided_by": deciders,
        "version": document["version"],
    }
