"""The alerts page: episodes firing and lately resolved, and where each was delivered.

Also the strip the board shows: ``alert_strip`` computes it and ``alert_strip.html`` renders
"N firing · M deliveries failing" with a link here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from statewise.actions.alerts import alert_report
from statewise.service.auth import Context
from statewise.service.pages.guards import signed_in
from statewise.service.pages.rendering import page
from statewise.store.base import Session, Store

router = APIRouter(prefix="/dashboard", include_in_schema=False)


@router.get("/alerts")
async def alerts_page(request: Request, ctx: Context) -> Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    report = await alert_report(ctx.store)
    return page(
        request,
        "alerts.html",
        session,
        report=report,
        alert_strip=_strip(report["firing"], report["failing"]),
        now=ctx.clock(),
    )


async def alert_strip(store: Store, now: float) -> dict[str, Any]:
    """What ``alert_strip.html`` shows: episodes firing, deliveries failing, and their tone.

    Two indexed counts, cheap enough for every render of the board. ``now`` is when it was
    read, for a page that says how fresh its figures are.
    """
    summary = await store.alert_summary()
    return {**_strip(summary.firing, summary.failing), "at": now}


def _strip(firing: int, failing: int) -> dict[str, Any]:
    tone = "bad" if failing else ("firing" if firing else "quiet")
    return {"firing": firing, "failing": failing, "tone": tone}
