"""``statewise quality``: how often the people who review each agent agree with it."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer
from pydantic import TypeAdapter

from statewise.actions.quality import DEFAULT_WINDOW, agent_quality, band_width, window_seconds
from statewise.cli.common import (
    DEFAULT_DB,
    DbOption,
    FormatOption,
    OutputFormat,
    WorkflowOption,
    app,
    console,
    emit_table,
    fail,
    output_format,
    run_async,
    when,
    with_store,
)
from statewise.errors import InvalidInputError
from statewise.store import Store
from statewise.store.quality import Bucket, QualityReport, ScoreBand, StageQuality

_REPORT = TypeAdapter(QualityReport)


@app.command()
def quality(
    db: DbOption = DEFAULT_DB,
    workflow: WorkflowOption = None,
    since: Annotated[
        str, typer.Option(help="The window to read: 30d, 12h, 3600 (seconds).")
    ] = DEFAULT_WINDOW,
    bucket: Annotated[Bucket, typer.Option(help="Trend points per UTC day or week.")] = Bucket.DAY,
    band: Annotated[
        float | None,
        typer.Option(help="Score band width; default 10, or 0.1 for scores within 0..1."),
    ] = None,
    format: FormatOption = None,
) -> None:
    """Per agent and reviewed state: reviews, agreement and its trend, score bands, overrides.

    Counts the decisions of human tasks that declare `reviews:` in their workflow.
    """
    try:
        window_seconds(since)
        band_width(band)
    except InvalidInputError as exc:
        fail(f"--{exc}", 2)

    async def show(store: Store) -> None:
        report = await agent_quality(
            store, time.time(), since=since, workflow=workflow, bucket=bucket, band=band
        )
        fmt = output_format(format)
        if fmt is OutputFormat.JSON:
            sys.stdout.write(_REPORT.dump_json(report, indent=2).decode() + "\n")
        else:
            print_quality(report, since, fmt)

    run_async(with_store(db, show))


def print_quality(report: QualityReport, since: str, fmt: OutputFormat) -> None:
    """The summary table, then each agent stage's trend, score bands and overrides."""
    if not report.stages:
        console.print(
            f"no reviewed agent decisions in the last {since}; a human task counts once its "
            f"workflow declares `reviews:`"
        )
        return
    emit_table(
        [
            "workflow", "agent", "reviewed state", "reviews", "agree", "override", "neither",
            "agreement",
        ],
        [
            [
                stage.workflow, stage.agent, stage.state, str(stage.reviews), str(stage.agree),
                str(stage.override), str(stage.neither), percent(stage.agreement),
            ]
            for stage in report.stages
        ],
        fmt=fmt,
        title=f"agent quality, last {since}",
    )  # fmt: skip
    for stage in report.stages:
        _print_stage(stage, report.bucket, fmt)


def _print_stage(stage: StageQuality, bucket: Bucket, fmt: OutputFormat) -> None:
    name = f"{stage.workflow} / {stage.agent} in {stage.state}"
    emit_table(
        [bucket.value, "reviews", "agree", "override", "agreement"],
        [
            [
                time.strftime("%Y-%m-%d", time.gmtime(point.start)), str(point.reviews),
                str(point.agree), str(point.override), percent(point.agreement),
            ]
            for point in stage.trend
        ],
        fmt=fmt,
        title=f"{name}: trend",
    )  # fmt: skip
    if stage.bands:
        width = f"{stage.band_width:g}" if stage.band_width is not None else ""
        emit_table(
            ["score", "reviews", "agree", "override", "agreement"],
            [
                [
                    band_label(band), str(band.reviews), str(band.agree), str(band.override),
                    percent(band.agreement),
                ]
                for band in stage.bands
            ],
            fmt=fmt,
            title=f"{name}: by score (bands of {width}; {stage.scored} scored)",
        )  # fmt: skip
    if stage.overrides:
        emit_table(
            ["decided", "outcome", "by", "score", "visit", "key"],
            [
                [
                    when(override.at),
                    override.outcome,
                    override.actor,
                    "" if override.score is None else f"{override.score:g}",
                    str(override.visit),
                    override.key,
                ]
                for override in stage.overrides
            ],
            fmt=fmt,
            title=f"{name}: overrides",
        )


def percent(rate: float | None) -> str:
    """An agreement rate as a person reads it; "-" when nothing agreed or overrode."""
    return "-" if rate is None else f"{rate:.0%}"


def band_label(band: ScoreBand) -> str:
    """``60-70``: the band's scores, from ``low`` up to (not including) ``high``."""
    return f"{band.low:g}-{band.high:g}"
