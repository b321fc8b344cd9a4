"""``statewise simulate``: past items' records replayed through a changed definition.

The shell around ``statewise.replay``: it reads the chosen items and their audit trails from
the store, folds each through the new definition (no command runs, no model is called,
nothing is written), and sums the result into a report. The command line, the HTTP API and
the dashboard all call ``simulate`` and show ``report_json`` (or its parts) the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from statewise.actions.inspection import stored_definition
from statewise.actions.quality import window_seconds
from statewise.definition.model import Definition
from statewise.engine.budget import Spend
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidInputError
from statewise.replay.fold import changed_agents, fold
from statewise.replay.record import read_inputs
from statewise.replay.report import Advice, ItemReplay, Report, advice, replay_item
from statewise.store.base import ItemFilter, Store

JSON = Any
DEFAULT_LIMIT = 10_000
_PAGE = 500


@dataclass(frozen=True, slots=True)
class Selection:
    """Which past items to replay; None matches everything.

    ``workflow`` defaults to the new definition's name. ``since`` (``7d``, ``12h``) keeps the
    items created in that window before ``now``. ``limit`` bounds the work of one simulation.
    """

    workflow: str | None = None
    version: int | None = None
    state: str | None = None
    status: ItemStatus | None = None
    since: str | None = None
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        for name, value in (("workflow", self.workflow), ("state", self.state)):
            if value is not None and "\x00" in value:
                raise InvalidInputError(
                    f"{name}: must not hold a NUL character (U+0000); nothing was replayed"
                )
        if self.limit < 1:
            raise InvalidInputError(f"limit: must be at least 1, not {self.limit}")
        if self.version is not None and self.version < 1:
            raise InvalidInputError(f"version: must be a positive number, not {self.version}")


async def simulate(
    store: Store, definition: Definition, selection: Selection, now: float
) -> tuple[Report, list[Advice]]:
    """Replay the selected items through ``definition``; reads the store, writes nothing.

    Raises:
        InvalidInputError: ``since`` is not a duration.

    """
    created_after = None if selection.since is None else now - window_seconds(selection.since)
    where = ItemFilter(
        workflow=selection.workflow or definition.name,
        state=selection.state,
        status=selection.status,
    )
    olds: dict[int, Definition | None] = {}
    replays: list[ItemReplay] = []
    skipped: list[str] = []
    after: tuple[float, int] | None = None
    while len(replays) + len(skipped) < selection.limit:
        page = await store.find_items(where, limit=_PAGE, after=after)
        if not page:
            break
        for item, cursor in page:
            after = cursor
            if selection.version is not None and item.version != selection.version:
                continue
            if created_after is not None and item.created_at < created_after:
                continue
            if len(replays) + len(skipped) >= selection.limit:
                break
            rows = await store.history(item.workflow, item.key)
            inputs = read_inputs(item.key, rows)
            if inputs is None:
                skipped.append(item.key)
                continue
            if item.version not in olds:
                olds[item.version] = await stored_definition(store, item.workflow, item.version)
            old = olds[item.version]
            changed = frozenset() if old is None else changed_agents(old, definition)
            folded = fold(definition, inputs, changed)
            replays.append(replay_item(item, rows, inputs, folded, olds[item.version], definition))
    report = Report(definition.ref, tuple(replays), tuple(skipped))
    return report, advice(report, definition)


def report_json(report: Report, advices: list[Advice]) -> dict[str, JSON]:
    """The report as plain JSON: what ``--format json`` prints and the API returns."""
    return {
        "definition": report.definition,
        "items": len(report.items),
        "skipped": list(report.skipped),
        "endings": [
            {"state": s, "status": st, "before": b, "after": a} for s, st, b, a in report.endings
        ],
        "queues": [{"queue": q, "before": b, "after": a} for q, b, a in report.queues],
        "cost": {
            "before": _spend(report.cost_before),
            "after": _spend(report.cost_after),
            "difference": round(report.cost_after.cost - report.cost_before.cost, 10),
        },
        "changed": [_changed(i) for i in report.changed],
        "needs": [
            {
                "key": i.key,
                "state": i.need.state,
                "command": i.need.command,
                "visit": i.need.visit,
                "branch": i.need.branch,
                "attempt": i.need.attempt,
                "message": i.need.describe(),
            }
            for i in report.needs
            if i.need is not None
        ],
        "advice": [
            {
                "agent": a.agent,
                "reviews": a.reviews,
                "agreed": a.agreed,
                "overridden": a.overridden,
                "saved": a.saved,
                "overridden_saved": a.overridden_saved,
                "added": a.added,
                "overridden_keys": list(a.overridden_keys),
            }
            for a in advices
        ],
    }


def _changed(item: ItemReplay) -> dict[str, JSON]:
    difference = item.difference
    return {
        "key": item.key,
        "version": item.version,
        "before": {"state": item.before[0], "status": item.before[1]},
        "after": {"state": item.after[0], "status": item.after[1]},
        "before_path": list(item.before_path),
        "after_path": list(item.after_path),
        "first_difference": None
        if difference is None
        else {
            "step": difference.index,
            "since": difference.since,
            "before": difference.before.describe(),
            "after": difference.after.describe(),
            "text": difference.describe(),
        },
        "refused": list(item.refused),
        "stopped": item.stopped,
    }


def _spend(spend: Spend) -> dict[str, JSON]:
    return {"tokens": spend.tokens, "cost": spend.cost}
