"""One workflow's page: its graph, its per-state table and its versions, live.

The graph is drawn in the browser by ``/static/graph.js`` from the workflow's graph JSON;
the table carries every number, so the page reads well before (or without) the drawing.
Each state links to the item list filtered to that workflow and state.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from statewise.actions.deployment import versions
from statewise.engine.item import ItemStatus
from statewise.errors import NotFoundError
from statewise.observe.alerts import evaluate
from statewise.service.auth import Context
from statewise.service.pages.board import HOUR
from statewise.service.pages.figures import live_figures, newest, state_rows, version_rows
from statewise.service.pages.guards import signed_in
from statewise.service.pages.live import figures_answer, layout, signed_out
from statewise.service.pages.rendering import page
from statewise.store.base import Session

router = APIRouter(prefix="/dashboard", include_in_schema=False)
PAGE = "/workflows/{workflow:segment}"


@router.get(PAGE)
async def workflow_page(request: Request, ctx: Context, workflow: str) -> Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    try:
        view = await _workflow(ctx, workflow)
    except NotFoundError as exc:
        missing = page(request, "workflow.html", session, title="No such workflow", error=str(exc))
        missing.status_code = 404
        return missing
    return page(request, "workflow.html", session, title=workflow, **view)


@router.get(PAGE + "/figures")
async def workflow_figures(request: Request, ctx: Context, workflow: str) -> Response:
    refused = await signed_out(request)
    if refused is not None:
        return refused
    try:
        view = await _workflow(ctx, workflow)
    except NotFoundError as exc:
        return Response(str(exc), status_code=404)
    return figures_answer(request, view["figures"], view["now"])


async def _workflow(ctx: Context, name: str) -> dict[str, Any]:
    """The page's rows and figures; NotFoundError naming the workflows held for an unknown one."""
    held = newest(ctx.catalog.definitions)
    definition = held.get(name)
    if definition is None:
        names = ", ".join(held) or "none"
        raise NotFoundError(f"no workflow named {name!r} is held here (held: {names})")
    now = ctx.clock()
    counts = await ctx.store.state_counts(name)
    stats = await ctx.store.state_stats(now - HOUR, name)
    alerts = evaluate(ctx.catalog.definitions, counts, now)
    states = state_rows(definition, counts, stats, alerts)
    stored = version_rows(await versions(ctx.store, name))
    figures = live_figures(states, stored)
    return {
        "definition": definition,
        "states": states,
        "versions": stored,
        "statuses": list(ItemStatus),
        "figures": figures,
        "layout": layout(figures),
        "now": now,
    }
