"""Retention: which finished items lose their outputs or history, and pruning them page by page.

The rules come from the workflows' policies (``retention: {outputs: 30d, history: 365d}`` in
the YAML) or from one age an operator gives (``statewise prune --finished-before 90d``). A
workflow's policy is its newest stored version's: items keep the definition they started on,
but how long the record is kept is the operator's current decision about the data, so a
policy written (or shortened) in a new version covers the items of the older ones too. A
workflow whose newest version has no ``retention:`` is left alone by the policies.

A prune lists candidates a page at a time and prunes each page in a transaction of its own
(``PAGE`` items), yielding to the event loop in between, so a prune of millions of items never
holds one long transaction and workers commit between its pages. Every item is checked again
under lock in its page's transaction (``store.retention``): nothing an item gained or became
after it was listed is lost. A dry run measures the same pages and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statewise.definition import loads
from statewise.definition.durations import format_duration, parse_duration
from statewise.errors import ConfigurationError, DefinitionError, InvalidInputError, NotFoundError
from statewise.store.base import Store, StoredWorkflow
from statewise.store.retention import Prunable, PruneFigures, PruneRule

PAGE = 500
POLICY_ACTOR = "retention"
JSON = Any


@dataclass(frozen=True, slots=True)
class PruneLine:
    """What one rule pruned (or, dry, would prune): the rule, its age in seconds, the figures."""

    rule: PruneRule
    age: float
    figures: PruneFigures


@dataclass(frozen=True, slots=True)
class PruneReport:
    """Every rule's figures; ``skipped`` names workflows whose policy could not be read."""

    lines: list[PruneLine]
    dry_run: bool
    skipped: dict[str, str] = field(default_factory=dict)
    space: str = ""

    @property
    def total(self) -> PruneFigures:
        """The figures of every line added up."""
        return sum((line.figures for line in self.lines), PruneFigures())

    def json(self) -> dict[str, JSON]:
        """The report as the API answers it."""
        return {
            "dry_run": self.dry_run,
            "lines": [
                {
                    "workflow": line.rule.workflow,
                    "what": line.rule.what.value,
                    "age": format_duration(line.age),
                    "finished_before": line.rule.finished_before,
                    **_figures_json(line.figures),
                }
                for line in self.lines
            ],
            "total": _figures_json(self.total),
            "bytes_are": BYTES_ARE,
            "space": self.space,
            "skipped": self.skipped,
        }


BYTES_ARE = "the stored size (UTF-8) of the text dropped; indexes and row overhead come on top"


def _figures_json(figures: PruneFigures) -> dict[str, int]:
    return {
        "items": figures.items,
        "history_rows": figures.history_rows,
        "outputs": figures.outputs,
        "payloads": figures.payloads,
        "conversations": figures.conversations,
        "bytes": figures.bytes,
    }


DAY = 86_400.0
# Ten thousand years: older than any item, and small enough that every duration sum stays finite.
MAX_AGE = 10_000 * 365 * DAY


def parse_age(text: str | float, what: str) -> float:
    """An age such as ``90d``: a positive duration, refused with the rule otherwise."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise InvalidInputError(f"{what}: {exc}") from None
    except OverflowError:  # a whole number of seconds too large for a float
        raise InvalidInputError(f"{what}: {text!r} is too long an age") from None
    if seconds <= 0:
        raise InvalidInputError(
            f"{what} must be a positive duration such as 90d, not {text!r}: an age of 0 or less "
            "would prune items that finished just now"
        )
    if not seconds <= MAX_AGE:  # NaN and infinity included
        raise InvalidInputError(
            f"{what}: {text!r} is too long an age (at most {MAX_AGE // DAY:.0f}d); nothing "
            "finished that long ago"
        )
    return seconds


@dataclass(frozen=True, slots=True)
class Rules:
    """The rules a prune applies, each with its age; ``skipped`` workflows have none."""

    rules: list[tuple[PruneRule, float]]
    skipped: dict[str, str] = field(default_factory=dict)


async def policy_rules(
    store: Store, now: float, *, workflow: str | None = None, what: Prunable | None = None
) -> Rules:
    """The rules of the workflows' policies (of one workflow, of one kind, when given).

    History goes first, and the outputs rule of the same policy covers only the items that
    finished after the history rule's moment: the older ones lose their outputs with their
    history, and a dry run must not count them twice.
    """
    rules: list[tuple[PruneRule, float]] = []
    skipped: dict[str, str] = {}
    for stored in _newest(await store.workflows(), workflow):
        try:
            policy = loads(stored.source, file=stored.file).retention
        except DefinitionError as exc:
            skipped[stored.name] = str(exc).splitlines()[0]
            continue
        if policy is None:
            continue
        history = policy.history if what in (None, Prunable.HISTORY) else None
        outputs = policy.outputs if what in (None, Prunable.OUTPUTS) else None
        if history is not None:
            reason = f"retention policy history: {format_duration(history)}"
            rules.append((PruneRule(stored.name, Prunable.HISTORY, now - history, reason), history))
        if outputs is not None:
            reason = f"retention policy outputs: {format_duration(outputs)}"
            since = None if history is None else now - history
            rule = PruneRule(stored.name, Prunable.OUTPUTS, now - outputs, reason, since)
            rules.append((rule, outputs))
    return Rules(rules, skipped)


async def age_rules(
    store: Store, age: float, now: float, *, workflow: str | None, what: Prunable
) -> Rules:
    """One rule per stored workflow (or the one named): ``what`` of items older than ``age``."""
    reason = f"statewise prune --finished-before {format_duration(age)} --what {what.value}"
    return Rules(
        [
            (PruneRule(stored.name, what, now - age, reason), age)
            for stored in _newest(await store.workflows(), workflow)
        ]
    )


def _newest(stored: Sequence[StoredWorkflow], workflow: str | None) -> list[StoredWorkflow]:
    """The newest version of each stored workflow, or of the one named (NotFoundError if none)."""
    newest = {w.name: w for w in sorted(stored, key=lambda w: (w.name, w.version))}
    if workflow is None:
        return list(newest.values())
    if workflow not in newest:
        known = ", ".join(newest) or "none"
        raise NotFoundError(f"no workflow {workflow!r} is stored (stored: {known})")
    return [newest[workflow]]


class Archive:
    """A JSON-lines file that the records of pruned items are appended to, one line an item.

    Each page's lines are written and fsynced inside the page's transaction, before anything
    is dropped; if they cannot be, the page is not pruned. Lines are ASCII JSON (other
    characters escaped), so no key can break a line. Lines are never taken back: a page whose
    transaction fails afterwards keeps its items (and their lines), and one the store retries
    is written again, so a reader takes the last line of each (workflow, key). No item is
    ever pruned without its line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0
        try:
            self._file = path.open("ab")
        except OSError as exc:
            raise ConfigurationError(f"cannot open the archive {path}: {exc}") from None

    def __call__(self, records: list[dict[str, JSON]]) -> None:
        """Append and fsync the records of one page."""
        lines = b"".join(
            json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode() + b"\n"
            for record in records
        )
        try:
            self._file.write(lines)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write the archive {self.path}: {exc}; nothing of this page was pruned"
            ) from None
        self.written += len(records)

    def close(self) -> None:
        """Close the file (every line is already on disk)."""
        self._file.close()


async def prune(
    store: Store,
    rules: Rules,
    *,
    now: float,
    actor: str,
    dry_run: bool = True,
    archive: Archive | None = None,
    page: int = PAGE,
) -> PruneReport:
    """Apply ``rules`` page by page (see the module docstring); a dry run only measures."""
    lines = []
    for rule, age in rules.rules:
        figures = PruneFigures()
        after = None
        while True:
            ids, after = await store.prune_candidates(rule, after, page)
            if not ids:
                break
            figures += await store.prune(
                rule, ids, now=now, actor=actor, dry_run=dry_run, archive=archive
            )
            await asyncio.sleep(0)  # the runner sharing this loop commits between pages
        lines.append(PruneLine(rule, age, figures))
    space = "" if dry_run else await store.reclaim_space()
    return PruneReport(lines, dry_run, rules.skipped, space)
