"""Workflows: what is held here, one definition in detail, its diagram with live counts."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response

from statewise.definition.diagrams import to_mermaid, to_svg
from statewise.definition.model import Definition, State
from statewise.service.auth import Context, Viewer
from statewise.service.paths import WORKFLOW

router = APIRouter(prefix="/api/workflows", tags=["workflows"])


@router.get("", summary="Every workflow version this service holds")
async def list_workflows(ctx: Context, _: Viewer) -> list[dict[str, Any]]:
    return [
        {
            "name": d.name,
            "version": d.version,
            "description": d.description,
            "states": len(d.states),
            "initial": d.initial,
        }
        for d in sorted(ctx.catalog.definitions, key=lambda d: (d.name, d.version))
    ]


@router.get(WORKFLOW, summary="One workflow: states, events, alerts and source")
async def show_workflow(
    name: str, ctx: Context, _: Viewer, version: int | None = None
) -> dict[str, Any]:
    return definition_json(ctx.definition(name, version))


@router.get(
    WORKFLOW + "/diagram",
    summary="The state machine drawn as SVG or Mermaid, with live item counts",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}, "text/plain": {}}}},
)
async def diagram(
    name: str,
    ctx: Context,
    _: Viewer,
    format: Literal["svg", "mermaid"] = "svg",
    version: int | None = None,
) -> Response:
    definition = ctx.definition(name, version)
    counts: dict[str, int] = {}
    for row in await ctx.store.state_counts(definition.name):
        if row.version == definition.version:
            counts[row.state] = counts.get(row.state, 0) + row.count
    if format == "mermaid":
        return Response(to_mermaid(definition, counts), media_type="text/plain")
    return Response(to_svg(definition, counts), media_type="image/svg+xml")


def definition_json(definition: Definition) -> dict[str, Any]:
    """A definition as plain JSON."""
    return {
        "name": definition.name,
        "version": definition.version,
        "description": definition.description,
        "initial": definition.initial,
        "escalation": definition.escalation,
        "events": sorted(definition.external_events()),
        "alerts": [
            {"state": a.state, "max_age": a.max_age, "max_items": a.max_items}
            for a in definition.alerts
        ],
        "states": [_state_json(state) for state in definition.states.values()],
        "source": definition.source,
    }


def _state_json(state: State) -> dict[str, Any]:
    task = state.task
    return {
        "name": state.name,
        "kind": state.kind.value,
        "description": state.description,
        "command": state.command.name if state.command else None,
        "transitions": [
            {
                "on": t.on,
                "to": t.target,
                "when": t.when.source if t.when else None,
                "else": t.is_else,
                "after": t.after,
            }
            for t in state.transitions
        ],
        "task": None
        if task is None
        else {
            "queue": task.queue,
            "role": task.role.value,
            "title": task.title,
            "due": task.due,
            "remind": task.remind,
            "outcomes": list(state.outcomes),
        },
    }
