"""Workflows: what is held here, one definition in detail, its diagram with live counts."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response

from statewise.actions.deployment import stored_version, versions
from statewise.actions.migration import apply_migration, plan_migration
from statewise.definition.diagrams import to_dot, to_mermaid, to_svg
from statewise.definition.model import AlertRule, Definition, State
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidInputError, NotFoundError
from statewise.service.api.models import Migrate
from statewise.service.auth import Context, Operator, Viewer
from statewise.service.context import ServiceContext
from statewise.service.paths import WORKFLOW

router = APIRouter(prefix="/api/workflows", tags=["workflows"])


@router.get("", summary="Every stored workflow version, with its items per status")
async def list_workflows(ctx: Context, _: Viewer) -> list[dict[str, Any]]:
    # ``held``: whether this service runs the version. One deployed since the last refresh is
    # taken up first; one whose commands no module here registers stays not held.
    await ctx.refresh_catalog()
    held = {(d.name, d.version): d for d in ctx.catalog.definitions}
    answer = []
    for summary in await versions(ctx.store):
        stored = summary.stored
        definition = held.get((stored.name, stored.version))
        answer.append(
            {
                "name": stored.name,
                "version": stored.version,
                "held": definition is not None,
                "file": stored.file,
                "description": definition.description if definition else None,
                "states": len(definition.states) if definition else None,
                "initial": definition.initial if definition else None,
                "items": {status.value: summary.items.get(status, 0) for status in ItemStatus},
            }
        )
    return answer


@router.post(WORKFLOW + "/migrate", summary="Move in-flight items onto another version")
async def migrate_workflow(name: str, body: Migrate, ctx: Context, who: Operator) -> dict[str, Any]:
    # A dry run (the default) lists which items would move where and which stay; otherwise
    # each item moves in its own fenced commit, with an audit row naming the operator.
    await stored_version(ctx.store, name, body.to)  # an unknown one names the stored ones
    new = await _held(ctx, name, body.to)
    if body.dry_run:
        plan = await plan_migration(ctx.runner, new, body.map)
    else:
        if not body.reason.strip():
            raise InvalidInputError("a migration needs a reason, for the audit trail")
        plan = await apply_migration(
            ctx.runner, new, actor=who.actor, reason=body.reason, mapping=body.map
        )
    return {
        "workflow": plan.workflow,
        "to": plan.to,
        "dry_run": body.dry_run,
        "moves": [asdict(move) for move in (plan.moves if body.dry_run else plan.moved)],
        "left": [asdict(left) for left in plan.left],
    }


async def _held(ctx: ServiceContext, name: str, version: int) -> Definition:
    """A stored version this service holds, taking up the versions deployed meanwhile first.

    One it cannot run (a command none of its modules registers) is refused with the reason.
    """
    await ctx.take_up(name, version)
    held = ctx.runner.definitions.get((name, version))
    if held is None:
        why = ctx.catalog.skipped.get(f"{name}@{version}", "it was not loaded here")
        raise NotFoundError(
            f"{name}@{version} is stored but this service cannot run it: {why}; start "
            f"`statewise serve` with --commands naming the modules that register its commands"
        )
    return held


@router.get(WORKFLOW, summary="One workflow: states, events, alerts and source")
async def show_workflow(
    name: str, ctx: Context, _: Viewer, version: int | None = None
) -> dict[str, Any]:
    await ctx.take_up(name, version)
    return definition_json(ctx.definition(name, version))


@router.get(
    WORKFLOW + "/diagram",
    summary="The state machine as SVG (drawn by Graphviz), Mermaid or DOT, with live counts",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}, "text/plain": {}}},
        501: {"description": "svg asked for, and Graphviz's dot is not installed here"},
    },
)
async def diagram(
    name: str,
    ctx: Context,
    _: Viewer,
    format: Literal["svg", "mermaid", "dot"] = "svg",
    version: int | None = None,
) -> Response:
    await ctx.take_up(name, version)
    definition = ctx.definition(name, version)
    counts: dict[str, int] = {}
    for row in await ctx.store.state_counts(definition.name):
        if row.version == definition.version:
            counts[row.state] = counts.get(row.state, 0) + row.count
    if format == "mermaid":
        return Response(to_mermaid(definition, counts), media_type="text/plain")
    if format == "dot":
        return Response(to_dot(definition, counts), media_type="text/plain")
    # Graphviz runs as a process: off the event loop.
    svg = await asyncio.to_thread(to_svg, definition, counts)
    return Response(svg, media_type="image/svg+xml")


def definition_json(definition: Definition) -> dict[str, Any]:
    """A definition as plain JSON."""
    return {
        "name": definition.name,
        "version": definition.version,
        "description": definition.description,
        "initial": definition.initial,
        "escalation": definition.escalation,
        "events": sorted(definition.external_events()),
        "alerts": [_alert_json(a) for a in definition.alerts],
        "destinations": {
            name: {"url_env": d.url_env, "secret_env": d.secret_env, "preset": d.preset.value}
            for name, d in definition.destinations.items()
        },
        "states": [_state_json(state) for state in definition.states.values()],
        "source": definition.source,
    }


def _alert_json(rule: AlertRule) -> dict[str, Any]:
    """A rule with every setting, None where unset."""
    return {
        "state": rule.state or None,
        "max_age": rule.max_age,
        "max_items": rule.max_items,
        "failure_rate": rule.failure_rate,
        "window": rule.window,
        "min_attempts": rule.min_attempts,
        "stuck": rule.stuck,
        "on_enter": rule.on_enter,
        "notify": None if rule.notify is None else list(rule.notify),
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
