"""How often people agree with the agents they review, read back from the audit trail.

A decided task that reviews an agent stage (``reviews:`` in the workflow) keeps a ``review``
in its audit row's decision: agent, reviewed state and visit, verdict and score. Everything
here is aggregated in SQL over those rows of a time window (through the ``at`` index), the
same statements on every dialect: only where a JSON field is read and how a number is
floored differ (``Dialect.json_review``, ``Dialect.floor``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum

from statewise.definition.model import Verdict
from statewise.store.connection import Connection, Dialect, Row

# The newest overrides listed per agent stage.
OVERRIDES_SHOWN = 50
# A band's index is floor(score / width + this), so that 0.7 / 0.1 (6.999...) falls in band 7.
_EPSILON = 1e-9
_DAY = 86_400


class Bucket(StrEnum):
    """The width of one point of the agreement trend, in UTC: a day, or a week from Monday."""

    DAY = "day"
    WEEK = "week"

    @property
    def seconds(self) -> int:
        """How long one bucket is."""
        return _DAY if self is Bucket.DAY else 7 * _DAY

    @property
    def origin(self) -> int:
        """A moment buckets start at: midnight UTC, and for weeks 1970-01-05, a Monday."""
        return 0 if self is Bucket.DAY else 4 * _DAY


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """The reviews decided in one bucket starting at ``start`` (seconds since the epoch)."""

    start: float
    reviews: int
    agree: int
    override: int
    agreement: float | None


@dataclass(frozen=True, slots=True)
class ScoreBand:
    """The reviews whose score was in ``[low, high)``."""

    low: float
    high: float
    reviews: int
    agree: int
    override: int
    agreement: float | None


@dataclass(frozen=True, slots=True)
class Override:
    """A person reversed the agent: which item, when, with what outcome, in which task.

    ``visit`` is the reviewed state's visit the decision graded; ``task`` the human state
    the decision was taken in.
    """

    workflow: str
    key: str
    at: float
    outcome: str
    actor: str
    task: str
    visit: int
    score: float | None


@dataclass(frozen=True, slots=True)
class StageQuality:
    """How people judged one agent in one reviewed state of one workflow.

    ``agreement`` is ``agree / (agree + override)``: a "neither" outcome grades nothing, and
    None means no review agreed or overrode. ``scored`` counts the reviews with a score,
    which ``bands`` split by ``band_width``; ``overrides`` lists the newest ones.
    """

    workflow: str
    agent: str
    state: str
    reviews: int
    agree: int
    override: int
    neither: int
    agreement: float | None
    scored: int
    band_width: float | None
    trend: tuple[TrendPoint, ...]
    bands: tuple[ScoreBand, ...]
    overrides: tuple[Override, ...]


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Agreement per agent stage over the reviews decided since ``since``."""

    since: float
    bucket: Bucket
    stages: tuple[StageQuality, ...]


def agreement(agree: int, override: int) -> float | None:
    """The share of grading reviews that agreed; None when there were none."""
    graded = agree + override
    return agree / graded if graded else None


Stage = tuple[str, str, str]
_COUNTS = (
    f"COUNT(*), SUM(CASE WHEN verdict = '{Verdict.AGREE}' THEN 1 ELSE 0 END), "
    f"SUM(CASE WHEN verdict = '{Verdict.OVERRIDE}' THEN 1 ELSE 0 END)"
)
_STAGE = "workflow, agent, state"


def quality_txn(
    db: Connection,
    dialect: Dialect,
    since: float,
    workflow: str | None,
    bucket: Bucket,
    band: float | None,
) -> QualityReport:
    """Agreement, its trend, score bands and overrides per (workflow, agent, reviewed state).

    ``band`` is the width of a score band; None takes 0.1 for an agent stage whose scores
    all lie within -1..1 (a probability) and 10 otherwise (points out of 100).
    """
    reviews, params = _reviews(dialect, since, workflow)
    totals = db.execute(
        f"SELECT {_STAGE}, {_COUNTS}, COUNT(score) FROM ({reviews}) r "
        f"GROUP BY {_STAGE} ORDER BY {_STAGE}",
        params,
    )
    trend = _by_stage(db.execute(_trend_sql(dialect, reviews, bucket), params))
    bands = _by_stage(db.execute(_bands_sql(dialect, reviews, band), _band_params(params, band)))
    overrides = _by_stage(db.execute(_overrides_sql(reviews), [*params, OVERRIDES_SHOWN]))
    stages = []
    for name, agent, state, count, agree, override, scored in totals:
        stage = (name, agent, state)
        widths = {float(row[4]) for row in bands.get(stage, [])}
        stages.append(
            StageQuality(
                workflow=name,
                agent=agent,
                state=state,
                reviews=int(count),
                agree=int(agree),
                override=int(override),
                neither=int(count) - int(agree) - int(override),
                agreement=agreement(int(agree), int(override)),
                scored=int(scored),
                band_width=widths.pop() if widths else None,
                trend=tuple(_point(row, bucket) for row in trend.get(stage, [])),
                bands=tuple(filter(None, map(_band, bands.get(stage, [])))),
                overrides=tuple(_override(name, row) for row in overrides.get(stage, [])),
            )
        )
    return QualityReport(since, bucket, tuple(stages))


def _reviews(dialect: Dialect, since: float, workflow: str | None) -> tuple[str, list[object]]:
    """The reviews decided since ``since``, one row each, and the statement's parameters.

    The ``contains`` test is a cheap first filter on the text; the JSON path decides.
    """
    text, number = dialect.json_text, dialect.json_number
    sql = (
        f"SELECT i.workflow AS workflow, i.key AS item_key, d.at AS at, d.outcome AS outcome, "
        f"d.task AS task, d.detail AS detail, {text('d.rv', 'agent')} AS agent, "
        f"{text('d.rv', 'state')} AS state, {text('d.rv', 'verdict')} AS verdict, "
        f"{number('d.rv', 'score')} AS score, {number('d.rv', 'visit')} AS visit "
        f"FROM (SELECT h.item_id, h.at, h.event AS outcome, h.from_state AS task, h.detail, "
        f"{dialect.json_review} AS rv FROM history h "
        f"WHERE h.at >= ? AND {dialect.contains('h.detail')}) d "
        "JOIN items i ON i.id = d.item_id WHERE d.rv IS NOT NULL"
        + (" AND i.workflow = ?" if workflow else "")
    )
    params: list[object] = [since, '"review":{']
    return sql, [*params, workflow] if workflow else params


def _trend_sql(dialect: Dialect, reviews: str, bucket: Bucket) -> str:
    index = dialect.floor(f"(at - {bucket.origin}) / {bucket.seconds}.0")
    return (
        f"SELECT {_STAGE}, {index} AS bucket, {_COUNTS} FROM ({reviews}) r "
        f"GROUP BY {_STAGE}, bucket ORDER BY {_STAGE}, bucket"
    )


def _bands_sql(dialect: Dialect, reviews: str, band: float | None) -> str:
    width = (
        "?"
        if band is not None
        else f"CASE WHEN MAX(ABS(score)) OVER (PARTITION BY {_STAGE}) <= 1 THEN 0.1 ELSE 10.0 END"
    )
    index = dialect.floor(f"score * 1.0 / width + {_EPSILON}")
    return (
        f"SELECT {_STAGE}, {index} AS band, {_COUNTS}, width FROM "
        f"(SELECT {_STAGE}, verdict, score, {width} AS width FROM ({reviews}) r "
        f"WHERE score IS NOT NULL) s GROUP BY {_STAGE}, band, width ORDER BY {_STAGE}, band"
    )


def _band_params(params: list[object], band: float | None) -> list[object]:
    """A given width comes first: it is a column of the outer SELECT."""
    return params if band is None else [band, *params]


def _overrides_sql(reviews: str) -> str:
    newest = f"ROW_NUMBER() OVER (PARTITION BY {_STAGE} ORDER BY at DESC, item_key)"
    return (
        f"SELECT {_STAGE}, item_key, at, outcome, task, visit, score, detail FROM "
        f"(SELECT r.*, {newest} AS newest FROM ({reviews}) r "
        f"WHERE verdict = '{Verdict.OVERRIDE}') o "
        f"WHERE newest <= ? ORDER BY {_STAGE}, at DESC, item_key"
    )


def _by_stage(rows: list[Row]) -> dict[Stage, list[Row]]:
    """Rows that start with (workflow, agent, state), grouped by it, the rest kept."""
    grouped: dict[Stage, list[Row]] = {}
    for row in rows:
        grouped.setdefault((row[0], row[1], row[2]), []).append(row[3:])
    return grouped


def _point(row: Row, bucket: Bucket) -> TrendPoint:
    index, count, agree, override = (int(value) for value in row)
    start = float(index * bucket.seconds + bucket.origin)
    return TrendPoint(start, count, agree, override, agreement(agree, override))


def _band(row: Row) -> ScoreBand | None:
    """One band; None where a score is so far out that its band's number is infinite."""
    index, count, agree, override, width = row
    if not math.isfinite(index):
        return None
    low = round(int(index) * float(width), 9)
    high = round(low + float(width), 9)
    agree, override = int(agree), int(override)
    return ScoreBand(low, high, int(count), agree, override, agreement(agree, override))


def _override(workflow: str, row: Row) -> Override:
    key, at, outcome, task, visit, score, detail = row
    actor = json.loads(detail).get("actor", "system")
    return Override(
        workflow=workflow,
        key=key,
        at=float(at),
        outcome=outcome,
        actor=actor,
        task=task or "",
        visit=int(visit),
        score=None if score is None else float(score),
    )
