"""Agent quality: how often the people who review each agent stage agree with it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from statewise.actions.quality import DEFAULT_WINDOW, agent_quality
from statewise.service.auth import Context, Viewer
from statewise.store.quality import Bucket, QualityReport

router = APIRouter(prefix="/api", tags=["quality"])


@router.get(
    "/quality",
    summary="Per agent and reviewed state: agreement, its trend, score bands and overrides",
)
async def quality(
    ctx: Context,
    _: Viewer,
    workflow: str | None = None,
    since: Annotated[
        str, Query(description="The window: 30d, 12h, or seconds", examples=["30d"])
    ] = DEFAULT_WINDOW,
    bucket: Annotated[Bucket, Query(description="Trend points per UTC day or week")] = Bucket.DAY,
    band: Annotated[
        float | None,
        Query(description="Score band width; default 10, or 0.1 when scores lie within 0..1"),
    ] = None,
) -> QualityReport:
    """Counts the decisions of human tasks whose workflow declares ``reviews:``.

    ``agreement`` is agree / (agree + override): an outcome in neither list grades nothing.
    Overrides are the newest 50 per agent stage, with the item's workflow and key.
    """
    return await agent_quality(
        ctx.store, ctx.clock(), since=since, workflow=workflow, bucket=bucket, band=band
    )
