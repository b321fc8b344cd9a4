"""A workflow's graph as JSON for the dashboard's ``static/graph.js``, with live figures.

The page lays the graph out in the browser (ELK, served from this package) and draws it;
this answers what to draw: the states and edges of ``layout_graph``, each state with its
items, failed items, alert level (only states with an alert rule have one) and the link to
the item list filtered to it. A JSON answer, so a signed-out request gets a 401, not the
sign-in page, and an unknown workflow the service's usual 404 body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from statewise.definition.layout_graph import LayoutGraph, layout_graph
from statewise.definition.model import Definition
from statewise.engine.item import ItemStatus
from statewise.observe.alerts import Severity, evaluate, state_severity
from statewise.service.auth import Context, current_session
from statewise.service.paths import segment
from statewise.store.base import StateCount

router = APIRouter(prefix="/dashboard", include_in_schema=False)
GRAPH = "/workflows/{workflow:segment}/graph.json"
"""The route of a workflow's graph, under /dashboard; ``graph_url`` builds it."""


def graph_url(workflow: str, version: int | None = None) -> str:
    """Where a page's ``<figure class="workflow-graph" data-graph=...>`` fetches its graph."""
    url = f"/dashboard/workflows/{segment(workflow)}/graph.json"
    return url if version is None else f"{url}?version={version}"


def items_url(workflow: str, state: str) -> str:
    """The item list filtered to one state of one workflow: where a node links."""
    return f"/dashboard/items?workflow={segment(workflow)}&state={segment(state)}"


@router.get(GRAPH)
async def workflow_graph(
    request: Request, ctx: Context, workflow: str, version: int | None = None
) -> Response:
    if await current_session(request) is None:
        return JSONResponse({"error": "unauthorised", "message": "sign in first"}, status_code=401)
    await ctx.take_up(workflow, version)
    definition = ctx.definition(workflow, version)
    counts = await ctx.store.state_counts(definition.name)
    severity = state_severity(evaluate([definition], counts, ctx.clock()))
    levels = {state: level for (_, state), level in severity.items()}
    return JSONResponse(
        live_graph(layout_graph(definition), definition, counts, levels),
        headers={"Cache-Control": "no-store"},
    )


def live_graph(
    graph: LayoutGraph,
    definition: Definition,
    counts: Iterable[StateCount],
    levels: Mapping[str, Severity],
) -> dict[str, Any]:
    """``graph`` with each node's items, failed items, alert level (or None) and link.

    Counts are of ``definition``'s own version, as the graph is; every status counts, the
    failed ones are also given apart so the page can mark them.
    """
    items: dict[str, int] = {}
    failed: dict[str, int] = {}
    for row in counts:
        if row.workflow != definition.name or row.version != definition.version:
            continue
        items[row.state] = items.get(row.state, 0) + row.count
        if row.status is ItemStatus.FAILED:
            failed[row.state] = failed.get(row.state, 0) + row.count
    nodes = [
        {
            **node,
            "count": items.get(node["id"], 0),
            "failed": failed.get(node["id"], 0),
            "severity": level.value if (level := levels.get(node["id"])) else None,
            "href": items_url(definition.name, node["id"]),
        }
        for node in graph["nodes"]
    ]
    return {**graph, "nodes": nodes}
