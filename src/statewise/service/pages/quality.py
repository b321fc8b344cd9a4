"""The quality page: how agents' outputs fared against people's reviews."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from statewise.actions.quality import DEFAULT_WINDOW, agent_quality
from statewise.errors import InvalidInputError, StatewiseError
from statewise.service.auth import (
    Context,
)
from statewise.service.errors import public_message
from statewise.service.pages.guards import signed_in
from statewise.service.pages.rendering import page
from statewise.store.base import Session
from statewise.store.quality import Bucket

router = APIRouter(prefix="/dashboard", include_in_schema=False)


@router.get("/quality")
async def quality_page(
    request: Request,
    ctx: Context,
    workflow: str = "",
    since: str = DEFAULT_WINDOW,
    bucket: str = Bucket.DAY.value,
    band: str = "",
) -> Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    form = {"workflow": workflow, "since": since, "bucket": bucket, "band": band}
    shown = {"form": form, "buckets": [b.value for b in Bucket]}
    try:
        trend, width = _quality_options(bucket, band)
        report = await agent_quality(
            ctx.store, ctx.clock(), since=since, workflow=workflow or None, bucket=trend, band=width
        )
    except StatewiseError as exc:
        return page(request, "quality.html", session, error=public_message(exc), **shown)
    return page(request, "quality.html", session, report=report, **shown)


def _quality_options(bucket: str, band: str) -> tuple[Bucket, float | None]:
    """The trend bucket and score band width as typed into the quality page's form."""
    if bucket not in {b.value for b in Bucket}:
        raise InvalidInputError(f"bucket must be day or week, not {bucket!r}")
    if not band.strip():
        return Bucket(bucket), None
    try:
        return Bucket(bucket), float(band)
    except ValueError:
        raise InvalidInputError(f"band must be a number, not {band!r}") from None
