"""Tools of content_approval: the deterministic stages around the agents.

None of them calls a model. ``check_brief`` validates what the intake agent extracted against
the channel table (``data/channels.csv``) and finds a draft supplied with the brief;
``supplied_copy``, ``model_copy`` and ``template_copy`` make the copy every later stage works
on (``context.copy``), each saying who wrote it (``written_by``); ``seo_check`` and
``brand_gate`` measure it (keywords, lengths, sentence length; the banned phrases of
``data/brand_rules.csv``, shouting, exclamation marks, the word limit) and combine the
measurements with the brand reviewer agent's judgement into the score the workflow routes on;
``revise_copy`` applies the fixes a program can make (and an editor's requested changes);
``publish`` records the published piece.

Nothing here writes prose. The template says it is one in its first line, and a revision only
deletes, replaces a listed phrase with its listed alternative, or cuts at sentence boundaries.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from statewise import PermanentError
from statewise.contract import CommandContext, CommandRegistry

JSON = dict[str, Any]

DATA = Path(__file__).parent / "data"
TEMPLATE_LABEL = "[Template - not written by a model]"
SITE = "https://northwind.example"

TONE_PENALTIES = {"hard_sell": 15, "too_casual": 10}
RISKY_CLAIM_PENALTY = 10  # per sentence the reviewer quotes (a hosted model; local quotes none)
SEO_PENALTY = 5
SEO_PENALTY_CAP = 15
SHOUTING_PENALTY = 5
EXCLAMATION_PENALTY = 5
LENGTH_PENALTY = 10
MAX_AVERAGE_SENTENCE = 20
MAX_SENTENCE = 35
KEPT_CALL_TO_ACTION = 25  # words: a last paragraph this short survives shortening

registry = CommandRegistry()

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_SHOUTING = re.compile(r"\b[A-Z]{4,}\b")
_DRAFT_MARKER = re.compile(r"^\s*(?:agency\s+)?draft(?:\s+copy)?\s*:\s*$", re.IGNORECASE)
_DRAFT_FIELD = re.compile(r"^\s*(headline|title|meta description)\s*:\s*(.+?)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Channel:
    """A row of data/channels.csv: what a channel allows."""

    name: str
    aliases: tuple[str, ...]
    title_max: int  # 0: the channel has no headline
    meta_min: int
    meta_max: int  # 0: the channel has no meta description
    max_words: int
    path: str
    call_to_action: str

    def rules(self) -> JSON:
        return {
            "title_max": self.title_max,
            "meta_min": self.meta_min,
            "meta_max": self.meta_max,
            "max_words": self.max_words,
        }


@dataclass(frozen=True, slots=True)
class Rule:
    """A row of data/brand_rules.csv: a phrase the brand does not allow, and its fix."""

    phrase: str
    rule: str
    penalty: int
    fix: str  # remove_sentence or replace
    replacement: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(rf"(?<!\w){re.escape(self.phrase)}(?!\w)", re.IGNORECASE)


@cache
def _channels() -> dict[str, Channel]:
    with (DATA / "channels.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    channels = {}
    for row in rows:
        channel = Channel(
            name=row["channel"],
            aliases=tuple(a.strip() for a in row["aliases"].split(";") if a.strip()),
            title_max=int(row["title_max"]),
            meta_min=int(row["meta_min"]),
            meta_max=int(row["meta_max"]),
            max_words=int(row["max_words"]),
            path=row["path"],
            call_to_action=row["call_to_action"],
        )
        channels[channel.name] = channel
    return channels


@cache
def _rules() -> tuple[Rule, ...]:
    """The brand rules, longest phrase first, so "the best" is found before "best"."""
    with (DATA / "brand_rules.csv").open(encoding="utf-8", newline="") as handle:
        rules = [
            Rule(r["phrase"], r["rule"], int(r["penalty"]), r["fix"], r["replacement"])
            for r in csv.DictReader(handle)
        ]
    return tuple(sorted(rules, key=lambda rule: -len(rule.phrase)))


def _channel(name: str) -> Channel | None:
    wanted = " ".join(name.lower().replace("_", " ").split())
    for channel in _channels().values():
        if wanted in (channel.name.replace("_", " "), *channel.aliases):
            return channel
    return None


def _words(text: str) -> int:
    return len(text.replace(TEMPLATE_LABEL, "").split())


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")


def _cut(text: str, limit: int, ellipsis: str = "") -> str:
    """``text`` cut at the last word boundary that fits ``limit`` characters."""
    if len(text) <= limit:
        return text
    room = limit - len(ellipsis)
    cut = text[: room + 1].rsplit(" ", 1)[0].rstrip(" ,;:-")
    return cut + ellipsis


# --- the brief ------------------------------------------------------------------------------


def _supplied_draft(brief: str) -> JSON | None:
    """The ``Draft:`` section of a brief: its headline and meta lines, and the body verbatim."""
    lines = brief.splitlines()
    start = next((i for i, line in enumerate(lines) if _DRAFT_MARKER.match(line)), None)
    if start is None:
        return None
    section = lines[start + 1 :]
    fields: dict[str, str] = {}
    while section and (not section[0].strip() or _DRAFT_FIELD.match(section[0])):
        if match := _DRAFT_FIELD.match(section[0]):
            name = "meta_description" if match.group(1).lower().startswith("meta") else "headline"
            fields[name] = match.group(2)
        section = section[1:]
    body = "\n".join(section).strip()
    if not body:
        return None
    return {
        "headline": fields.get("headline", ""),
        "meta_description": fields.get("meta_description", ""),
        "body": body,
    }


# What a brief must state, and how to ask for it: the requester reads these sentences.
BRIEF_FIELDS = {
    "product": ("the product", "'Product: Northwind Strider 3 running shoe'"),
    "audience": ("the audience", "'Audience: runners training for a half marathon'"),
    "channel": ("the channel", "'Channel: blog'"),
    "key_messages": (
        "the key messages",
        "'Key messages: lighter foam midsole; recycled upper; in stores from 3 March' "
        "(the messages separated by semicolons)",
    ),
    "tone": ("the tone", "'Tone: friendly, practical'"),
    "word_limit": ("a word limit as a number", "'Word limit: 250'"),
}


def _channel_names() -> str:
    names = [channel.name.replace("_", " ") for channel in _channels().values()]
    return ", ".join(names[:-1]) + " or " + names[-1]


def brief_problems(intake: Mapping[str, Any], channel: Channel | None) -> list[str]:
    """What stops the brief, each as a sentence the requester can act on."""
    problems = [
        f"The brief does not give {what}. Add a line such as {example}, and send it again."
        for field, (what, example) in BRIEF_FIELDS.items()
        if not str(intake.get(field, "")).strip()
    ]
    if intake.get("channel") and channel is None:
        problems.append(
            f"We do not publish to '{intake['channel']}'. Choose one of our channels: "
            f"{_channel_names()}."
        )
    if channel is not None and intake.get("word_limit"):
        limit = int(intake["word_limit"])
        if limit > channel.max_words:
            problems.append(
                f"A {channel.name.replace('_', ' ')} takes at most {channel.max_words} words, "
                f"but the brief asks for {limit}. Lower the word limit, or choose a channel "
                "for longer pieces."
            )
    return problems


@registry.command()
def check_brief(ctx: CommandContext) -> JSON:
    """Check the extracted brief against the channel table; note a draft supplied with it.

    The intake agent leaves out what the brief does not state; every gap and every value the
    team cannot work with becomes one sentence in ``problems``, for the requester.
    """
    intake: Mapping[str, Any] = ctx.context["intake"]
    channel = _channel(str(intake.get("channel", "")))
    problems = brief_problems(intake, channel)
    messages = [m.strip() for m in str(intake.get("key_messages", "")).split(";") if m.strip()]
    keywords = [k.strip() for k in str(intake.get("keywords", "")).split(",") if k.strip()]
    draft = _supplied_draft(str(ctx.context["brief"]))
    return {
        "valid": not problems,
        "problems": problems,
        "product": intake.get("product", ""),
        "audience": intake.get("audience", ""),
        "channel": channel.name if channel else str(intake.get("channel", "")),
        "channel_rules": channel.rules() if channel else {},
        "tone": intake.get("tone", ""),
        "word_limit": int(intake.get("word_limit") or 0),
        "key_messages": messages,
        "keywords": keywords,
        "agency": intake.get("agency", ""),
        "supplied_draft": draft is not None,
    }


# --- the copy -------------------------------------------------------------------------------


def _copy(headline: str, meta: str, body: str, written_by: str, **more: Any) -> JSON:
    return {
        "headline": headline,
        "meta_description": meta,
        "body": body,
        "written_by": written_by,
        **more,
        "words": _words(body),
        "revision": 0,
        "edits": [],
    }


@registry.command()
def supplied_copy(ctx: CommandContext) -> JSON:
    """The draft that came with the brief, verbatim: no model wrote it, the agency did."""
    draft = _supplied_draft(str(ctx.context["brief"]))
    if draft is None:
        raise PermanentError("the brief has no Draft: section")
    agency = str(ctx.context["facts"]["agency"])
    return _copy(
        draft["headline"],
        draft["meta_description"],
        draft["body"],
        "supplied",
        supplied_by=agency or "the brief",
    )


@registry.command()
def model_copy(ctx: CommandContext) -> JSON:
    """Adopt the copy the copywriter agent wrote."""
    draft: Mapping[str, Any] = ctx.context["draft"]
    return _copy(
        str(draft.get("headline", "")),
        str(draft.get("meta_description", "")),
        str(draft["body"]),
        "model",
        agent="copywriter",
    )


@registry.command()
def template_copy(ctx: CommandContext) -> JSON:
    """No model wrote copy: a labelled template of the brief's own facts stands in."""
    brief: Mapping[str, Any] = ctx.context["facts"]
    channel = _channels()[brief["channel"]]
    messages = [m[:1].upper() + m[1:].rstrip(".") + "." for m in brief["key_messages"]]
    body = "\n\n".join(
        [
            TEMPLATE_LABEL,
            f"{brief['product']}, for {brief['audience']}.",
            " ".join(messages),
            channel.call_to_action,
        ]
    )
    headline = _cut(str(brief["product"]), channel.title_max) if channel.title_max else ""
    meta = ""
    if channel.meta_max:
        meta = _cut(f"{brief['product']}: {' '.join(messages)}", channel.meta_max, "...")
    angle = ctx.context.get("draft", {}).get("angle", "")
    return _copy(headline, meta, body, "template", angle=angle)


@registry.command()
def refuse_template(ctx: CommandContext) -> JSON:
    """Say why an approved template goes back to the person who approved it.

    A template is the brief's facts, not copy, and is never published; the reason is shown
    first on the task the person gets again.
    """
    lead = ctx.state == "template_refused_lead"
    decision: Mapping[str, Any] = ctx.context.get("escalated" if lead else "human_review") or {}
    then = (
        "Reject the piece, and ask the requester for copy or a new brief."
        if lead
        else "Write the headline and body in the form and ask for changes, or reject the piece."
    )
    return {
        "reason": f"This is a template of the brief's facts, not copy, so it cannot be published. "
        f"{then}",
        "approved_by": str(decision.get("by", "")),
    }


# --- measuring ------------------------------------------------------------------------------


def seo_findings(copy: Mapping[str, Any], brief: Mapping[str, Any]) -> JSON:
    """Keywords, headline and meta description lengths, sentence length: each check's result."""
    rules: Mapping[str, int] = brief["channel_rules"]
    headline, meta, body = copy["headline"], copy["meta_description"], copy["body"]
    text = f"{headline}\n{body}".lower()
    found = [k for k in brief["keywords"] if k.lower() in text]
    missing = [k for k in brief["keywords"] if k.lower() not in text]
    failed = [f"The search keyword '{k}' is not in the headline or the body." for k in missing]
    if rules["title_max"]:
        if not headline:
            failed.append("The copy has no headline.")
        elif len(headline) > rules["title_max"]:
            failed.append(
                f"The headline has {len(headline)} characters; search results show "
                f"{rules['title_max']}."
            )
    if rules["meta_max"]:
        if not meta:
            failed.append("The copy has no meta description for search results.")
        elif not rules["meta_min"] <= len(meta) <= rules["meta_max"]:
            failed.append(
                f"The meta description has {len(meta)} characters; search results need "
                f"{rules['meta_min']} to {rules['meta_max']}."
            )
    sentences = _sentences(body.replace(TEMPLATE_LABEL, ""))
    lengths = [len(s.split()) for s in sentences] or [0]
    average = round(sum(lengths) / len(lengths), 1)
    if average > MAX_AVERAGE_SENTENCE or max(lengths) > MAX_SENTENCE:
        failed.append(
            f"The sentences are hard to read: {average:g} words on average and "
            f"{max(lengths)} in the longest (keep to {MAX_AVERAGE_SENTENCE} on average and "
            f"{MAX_SENTENCE} in one)."
        )
    return {
        "keywords_found": found,
        "keywords_missing": missing,
        "headline_chars": len(headline),
        "meta_chars": len(meta),
        "average_sentence_words": average,
        "longest_sentence_words": max(lengths),
        "failed": failed,
        "passed": not failed,
    }


@registry.command()
def seo_check(ctx: CommandContext) -> JSON:
    """Measure the copy for search: keywords present, lengths, readability."""
    return seo_findings(ctx.context["copy"], ctx.context["facts"])


def _rule_hits(text: str) -> list[tuple[Rule, str]]:
    """Each banned phrase found in ``text``, longest first, no span counted twice."""
    taken: list[tuple[int, int]] = []
    hits: list[tuple[Rule, str]] = []
    for rule in _rules():
        for match in rule.pattern.finditer(text):
            span = match.span()
            if any(start < span[1] and span[0] < end for start, end in taken):
                continue
            taken.append(span)
            hits.append((rule, match.group(0)))
    return hits


def brand_findings(copy: Mapping[str, Any], word_limit: int) -> list[JSON]:
    """The hard rules on the copy: banned phrases, shouting, exclamation marks, length."""
    text = "\n".join([copy["headline"], copy["meta_description"], copy["body"]])
    findings = [
        {"rule": rule.rule, "found": found, "penalty": rule.penalty, "fix": rule.fix}
        for rule, found in _rule_hits(text)
    ]
    for word in sorted(set(_SHOUTING.findall(text))):
        findings.append(
            {"rule": "shouting", "found": word, "penalty": SHOUTING_PENALTY, "fix": "lower"}
        )
    exclamations = text.count("!")
    if exclamations > 1:
        findings.append(
            {
                "rule": "exclamations",
                "found": f"{exclamations} exclamation marks",
                "penalty": EXCLAMATION_PENALTY,
                "fix": "full_stop",
            }
        )
    words = _words(copy["body"])
    if words > word_limit:
        findings.append(
            {
                "rule": "length",
                "found": f"{words} words, over the brief's limit of {word_limit}",
                "penalty": LENGTH_PENALTY,
                "fix": "shorten",
            }
        )
    return findings


RULE_REASONS = {
    "health_claim": "'{found}' is a health or medical claim we cannot make without evidence",
    "absolute_claim": "'{found}' promises more than we can be sure of",
    "superlative": "'{found}' is a superlative; our voice shows the fact instead",
    "environmental_claim": "'{found}' is an environmental claim that needs evidence",
    "shouting": "'{found}' is written in capitals; we do not shout",
    "exclamations": "The copy has {found}; we allow one",
    "length": "The body has {found}",
    "tone": "The brand reviewer reads the voice as {found}",
    "risky_claim": "The brand reviewer asks for evidence for '{found}'",
}
TONE_WORDS = {
    "hard_sell": "a hard sell: pressure, urgency and hype",
    "too_casual": "too casual: slang and jokes",
}


TEMPLATE_REASON = (
    "No one has written this copy yet: it is a template of the brief's facts. Write the body "
    "in the form, or reject the piece."
)


def reasons(
    copy: Mapping[str, Any], findings: list[JSON], reviewer: list[JSON], seo_failed: list[str]
) -> list[str]:
    """Every finding as a sentence for an editor, with the points it cost."""
    said = [TEMPLATE_REASON] if copy["written_by"] == "template" else []
    for finding in [*findings, *reviewer]:
        found = TONE_WORDS.get(str(finding["found"]), finding["found"])
        sentence = RULE_REASONS[str(finding["rule"])].format(found=found)
        said.append(f"{sentence} (-{finding['penalty']}).")
    return said + seo_failed


@registry.command()
def brand_gate(ctx: CommandContext) -> JSON:
    """The score the workflow routes on: the reviewer's score minus every penalty found.

    Penalties: each hard rule the copy breaks (data/brand_rules.csv, shouting, exclamation
    marks, the word limit), a hard-sell or too casual tone as the reviewer agent judged it,
    each risky claim it quoted, and 5 per failed SEO check (at most 15), measured again on the
    current copy.
    """
    context = ctx.context
    copy, brief, review = context["copy"], context["facts"], context["brand_check"]
    findings = brand_findings(copy, int(brief["word_limit"]))
    reviewer: list[JSON] = []
    if penalty := TONE_PENALTIES.get(str(review["tone"]), 0):
        reviewer.append({"rule": "tone", "found": review["tone"], "penalty": penalty})
    for claim in review.get("risky_claims", []):
        reviewer.append({"rule": "risky_claim", "found": claim, "penalty": RISKY_CLAIM_PENALTY})
    seo = seo_findings(copy, brief)
    seo_penalty = min(SEO_PENALTY_CAP, SEO_PENALTY * len(seo["failed"]))
    rules_penalty = sum(f["penalty"] for f in findings)
    reviewer_penalty = sum(f["penalty"] for f in reviewer)
    base = int(review["brand_score"])
    score = max(0, min(100, base - rules_penalty - reviewer_penalty - seo_penalty))
    return {
        "score": score,
        "reviewer_score": base,
        "tone": review["tone"],
        "risky_claims": list(review.get("risky_claims", [])),
        "penalties": {"rules": rules_penalty, "reviewer": reviewer_penalty, "seo": seo_penalty},
        "findings": findings,
        "reviewer_findings": reviewer,
        "seo_failed": seo["failed"],
        "reasons": reasons(copy, findings, reviewer, seo["failed"]),
        "health_claims": [f["found"] for f in findings if f["rule"] == "health_claim"],
        "written_by": copy["written_by"],
        "check": int(context.get("brand_gate", {}).get("check", 0)) + 1,
    }


# --- revising -------------------------------------------------------------------------------


def _match_case(found: str, replacement: str) -> str:
    return replacement[:1].upper() + replacement[1:] if found[:1].isupper() else replacement


def _drop_sentences(text: str, pattern: re.Pattern[str]) -> tuple[str, int]:
    """``text`` without the sentences ``pattern`` matches in, paragraphs kept; and how many."""
    dropped = 0
    paragraphs = []
    for paragraph in _paragraphs(text) if "\n" in text else [text]:
        kept = []
        for sentence in _sentences(paragraph):
            if pattern.search(sentence):
                dropped += 1
            else:
                kept.append(sentence)
        if kept:
            paragraphs.append(" ".join(kept))
    return "\n\n".join(paragraphs), dropped


def _shorten(body: str, limit: int) -> str:
    """Whole sentences up to ``limit`` words; a short closing call to action is kept."""
    paragraphs = _paragraphs(body)
    closing = paragraphs[-1] if len(paragraphs) > 1 else ""
    if _words(closing) > KEPT_CALL_TO_ACTION:
        closing = ""
    room = limit - _words(closing)
    kept: list[str] = []
    for paragraph in paragraphs[:-1] if closing else paragraphs:
        sentences = []
        for sentence in _sentences(paragraph):
            if _words(sentence) > room:
                break
            sentences.append(sentence)
            room -= _words(sentence)
        if sentences:
            kept.append(" ".join(sentences))
        if len(sentences) < len(_sentences(paragraph)):
            break
    return "\n\n".join([*kept, closing] if closing else kept)


def _fix_part(text: str, finding: Mapping[str, Any], rules: Mapping[str, Rule]) -> str:
    """Apply one finding's fix to one part of the copy (headline, meta or body)."""
    if finding["rule"] == "shouting":
        word = str(finding["found"])

        def lower(match: re.Match[str]) -> str:
            before = text[: match.start()].rstrip()
            opening = not before or before[-1] in ".!?"
            return word.capitalize() if opening else word.lower()

        return re.sub(rf"\b{word}\b", lower, text)
    if finding["rule"] == "exclamations":
        return re.sub(r"\.{2,}", ".", re.sub(r"!+", ".", text))
    rule = rules.get(str(finding["found"]).lower())
    if rule is None:
        return text
    if rule.fix == "remove_sentence":
        return _drop_sentences(text, rule.pattern)[0]

    def replace(match: re.Match[str]) -> str:
        return _match_case(match.group(0), rule.replacement)

    return rule.pattern.sub(replace, text)


FIX_WORDS = {
    "remove_sentence": "removed the sentence with",
    "replace": "replaced",
    "lower": "lowered",
    "full_stop": "replaced the exclamation marks",
}


def _fix_findings(copy: JSON, brief: Mapping[str, Any], gate: Mapping[str, Any]) -> list[str]:
    """Remove the sentences the reviewer quoted and fix each rule finding (in place)."""
    rules = {rule.phrase.lower(): rule for rule in _rules()}
    edits: list[str] = []
    for claim in gate["risky_claims"]:
        quoted = re.compile(re.escape(str(claim).strip()))
        for part in ("headline", "meta_description", "body"):
            if quoted.search(copy[part]):
                copy[part] = _drop_sentences(copy[part], quoted)[0]
        edits.append(f"risky_claim: removed {claim!r}")
    seen: set[tuple[str, str]] = set()
    for finding in gate["findings"]:
        key = (str(finding["rule"]), str(finding["found"]).lower())
        if finding["rule"] == "length" or key in seen:
            continue
        seen.add(key)
        for part in ("headline", "meta_description", "body"):
            copy[part] = _fix_part(copy[part], finding, rules)
        if not copy["headline"].strip() and brief["channel_rules"]["title_max"]:
            copy["headline"] = str(brief["product"])
        found = "" if finding["rule"] == "exclamations" else f" {finding['found']!r}"
        edits.append(f"{finding['rule']}: {FIX_WORDS[finding['fix']]}{found}")
    return edits


def _fix_lengths(copy: JSON, brief: Mapping[str, Any]) -> list[str]:
    """Cut the body to the word limit, headline and meta description to the channel's."""
    edits: list[str] = []
    limit = int(brief["word_limit"])
    if _words(copy["body"]) > limit:
        before = _words(copy["body"])
        copy["body"] = _shorten(copy["body"], limit)
        edits.append(f"length: shortened from {before} to {_words(copy['body'])} words")
    channel: Mapping[str, int] = brief["channel_rules"]
    title_max = channel["title_max"]
    if title_max and len(copy["headline"]) > title_max:
        headline = copy["headline"]
        for separator in (":", " - ", " | ", ","):
            if separator in headline and len(headline.split(separator)[0]) <= title_max:
                copy["headline"] = headline.split(separator)[0].strip()
                break
        else:
            copy["headline"] = _cut(headline, title_max)
        edits.append(f"seo: shortened the headline to {len(copy['headline'])} characters")
    meta_min, meta_max = channel["meta_min"], channel["meta_max"]
    if meta_max and len(copy["meta_description"]) > meta_max:
        copy["meta_description"] = _cut(copy["meta_description"], meta_max, "...")
        edits.append(f"seo: cut the meta description to {len(copy['meta_description'])} chars")
    elif meta_max and len(copy["meta_description"]) < meta_min:
        first = " ".join(_sentences(copy["body"].replace(TEMPLATE_LABEL, "")))
        excerpt = _cut(first, meta_max, "...")
        if len(excerpt) >= meta_min:
            copy["meta_description"] = excerpt
            edits.append("seo: meta description taken from the body's first sentences")
    return edits


def _editor_changes(copy: JSON, decision: Mapping[str, Any]) -> list[str]:
    """Apply what the editor asked for in the review form (in place); the edits, in words."""
    data: Mapping[str, Any] = decision.get("data") or {}
    by = str(decision.get("by", "editor"))
    edits: list[str] = []
    if data.get("body"):
        copy["body"] = str(data["body"]).strip()
        copy["written_by"] = "editor"
        copy["editor"] = by
        edits.append(f"editor {by}: replaced the body")
    if data.get("headline"):
        copy["headline"] = str(data["headline"]).strip()
        edits.append(f"editor {by}: replaced the headline")
    for phrase in data.get("remove", []):
        for part in ("headline", "meta_description", "body"):
            text = str(copy[part])
            if phrase in text:
                text = text.replace(phrase, "")
                text = re.sub(r"[ \t]{2,}", " ", text)
                text = re.sub(r" +([.,;:])", r"\1", text)
                copy[part] = "\n\n".join(p.strip() for p in _paragraphs(text))
        edits.append(f"editor {by}: removed {phrase!r}")
    if data.get("add"):
        paragraphs = _paragraphs(copy["body"])
        addition = str(data["add"]).strip()
        # before a closing call to action, which stays last
        at = len(paragraphs) - 1 if len(paragraphs) > 1 else len(paragraphs)
        copy["body"] = "\n\n".join([*paragraphs[:at], addition, *paragraphs[at:]])
        edits.append(f"editor {by}: added {addition!r}")
    if not edits:
        edits.append(f"editor {by}: asked for changes without naming any")
    return edits


@registry.command()
def revise_copy(ctx: CommandContext) -> JSON:
    """Revise the copy: the program's fixes (state ``revise``) or the editor's (``apply_changes``).

    Deletes sentences with health claims and other banned phrases, swaps listed phrases for
    their listed alternatives, lowers shouting, replaces exclamation marks, cuts to the word
    limit at sentence boundaries and shortens headline and meta description. It cannot change
    the voice of pushy copy, nor add a missing keyword: that takes a writer.
    """
    context = ctx.context
    copy: JSON = dict(context["copy"])
    if ctx.state == "apply_changes":
        edits = _editor_changes(copy, context["human_review"])
    else:
        facts = context["facts"]
        edits = _fix_findings(copy, facts, context["brand_gate"]) + _fix_lengths(copy, facts)
    if not edits:
        edits = ["nothing left that a program can fix"]
    copy["words"] = _words(copy["body"])
    copy["revision"] = int(copy.get("revision", 0)) + 1
    copy["edits"] = [*copy.get("edits", []), *edits]
    copy["last_edits"] = edits
    return copy


# --- publishing -----------------------------------------------------------------------------


@registry.command()
def publish(ctx: CommandContext) -> JSON:
    """Record the published piece: its address, the text and who approved it."""
    context = ctx.context
    copy, brief, gate = context["copy"], context["facts"], context["brand_gate"]
    channel = _channels()[brief["channel"]]
    slug = _slug(copy["headline"] or str(brief["product"]))
    approved_by = f"auto-approved (brand score {gate['score']})"
    for step, role in (("human_review", "editor"), ("escalated", "content lead")):
        decision = context.get(step, {})
        if decision.get("outcome") == "approve":
            approved_by = f"{decision['by']} ({role})"
    return {
        "id": f"{channel.name}/{slug}",
        "slug": slug,
        "url": f"{SITE}/{channel.path}/{slug}",
        "channel": channel.name,
        "headline": copy["headline"],
        "meta_description": copy["meta_description"],
        "body": copy["body"],
        "words": copy["words"],
        "written_by": copy["written_by"],
        "approved_by": approved_by,
        "brand_score": gate["score"],
        "revisions": copy["revision"],
    }
