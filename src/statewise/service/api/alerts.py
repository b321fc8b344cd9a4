"""Alerts: the episodes firing and lately resolved, with each destination's delivery state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from statewise.actions.alerts import RECENT, alert_report
from statewise.service.auth import Context, Viewer

router = APIRouter(prefix="/api", tags=["alerts"])


@router.get("/alerts", summary="Alert episodes (firing first, then resolved) and deliveries")
async def list_alerts(
    ctx: Context,
    _: Viewer,
    recent: Annotated[
        int, Query(ge=0, le=1000, description="How many resolved episodes to include")
    ] = RECENT,
) -> dict[str, Any]:
    return await alert_report(ctx.store, recent)
