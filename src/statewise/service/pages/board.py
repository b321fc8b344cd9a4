"""The board: one compact row per workflow, and its live figures.

Each row links to the workflow's own page (``pages.workflow``) with its graph and per-state
table. The page reads the per-state counts and the hour's flow figures once per render; live
updates poll ``/dashboard/figures`` (``pages.live``), never the page.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from statewise.observe.alerts import evaluate
from statewise.service.auth import Context
from statewise.service.pages.alerts import alert_strip
from statewise.service.pages.figures import board_rows, live_figures
from statewise.service.pages.guards import signed_in
from statewise.service.pages.live import figures_answer, layout, signed_out
from statewise.service.pages.rendering import page
from statewise.store.base import Session

router = APIRouter(prefix="/dashboard", include_in_schema=False)
HOUR = 3600.0


@router.get("")
async def board(request: Request, ctx: Context) -> Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    view = await _board(ctx)
    return page(request, "board.html", session, title="Board", **view)


@router.get("/figures")
async def board_figures(request: Request, ctx: Context) -> Response:
    refused = await signed_out(request)
    if refused is not None:
        return refused
    view = await _board(ctx)
    return figures_answer(request, view["figures"], view["now"])


async def _board(ctx: Context) -> dict[str, Any]:
    """The board's rows and their figures, from one read of counts, stats and versions."""
    now = ctx.clock()
    definitions = ctx.catalog.definitions
    counts = await ctx.store.state_counts()
    stats = await ctx.store.state_stats(now - HOUR)
    stored = Counter(w.name for w in await ctx.store.workflows())
    alerts = evaluate(definitions, counts, now)
    rows = board_rows(definitions, stored, counts, stats, alerts)
    figures = live_figures(rows)
    strip = await alert_strip(ctx.store, now)
    return {
        "rows": rows,
        "figures": figures,
        "layout": layout(figures),
        "now": now,
        "alert_strip": strip,
    }
