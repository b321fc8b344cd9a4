"""The board: each workflow's graph, per-state counts, flow figures and alerts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from statewise.actions.deployment import versions
from statewise.engine.item import ItemStatus
from statewise.observe.alerts import Alert, evaluate, state_severity
from statewise.service.auth import (
    Context,
    current_session,
)
from statewise.service.pages.graph import graph_url
from statewise.service.pages.guards import signed_in
from statewise.service.pages.rendering import age_text, page
from statewise.store.base import Session, StateCount

router = APIRouter(prefix="/dashboard", include_in_schema=False)


@router.get("")
async def overview(request: Request, ctx: Context) -> Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    return page(request, "overview.html", session, **await _overview(ctx))


@router.get("/fragments/overview")
async def overview_fragment(request: Request, ctx: Context) -> Response:
    session = await current_session(request)
    if session is None:
        return Response("signed out", status_code=401)
    return page(request, "overview_body.html", session, **await _overview(ctx))


async def _overview(ctx: Context) -> dict[str, Any]:
    now = ctx.clock()
    counts = await ctx.store.state_counts()
    alerts = evaluate(ctx.catalog.definitions, counts, now)
    severity = state_severity(alerts)
    stats = {(s.workflow, s.state): s for s in await ctx.store.state_stats(now - 3600)}
    newest: dict[str, Any] = {}
    for definition in ctx.catalog.definitions:
        if definition.name not in newest or definition.version > newest[definition.name].version:
            newest[definition.name] = definition
    stored = await versions(ctx.store)
    flows = []
    for name, definition in sorted(newest.items()):
        # The graph counts its own version's items; the versions table counts each version.
        own = [row for row in counts if row.version == definition.version]
        by_state: dict[str, list[float]] = {}
        for row in own:
            if row.workflow == name and row.status is not ItemStatus.DONE:
                entry = by_state.setdefault(row.state, [0, now])
                entry[0] += row.count
                entry[1] = min(entry[1], row.oldest_entered_at)
        done = _counts_by_state(own, name, ItemStatus.DONE)
        failed = _counts_by_state(own, name, ItemStatus.FAILED)
        rows = []
        for state in definition.states:
            level = severity.get((name, state))
            figures = stats.get((name, state))
            count, oldest = by_state.get(state, [0, now])
            rows.append(
                {
                    "state": state,
                    "severity": level.value if level else "ok",
                    "count": int(count) + done.get(state, 0),
                    "oldest": age_text(now - oldest) if count else "",
                    "left": figures.left if figures else 0,
                    "p50": _seconds(figures.dwell_p50 if figures else None),
                    "p95": _seconds(figures.dwell_p95 if figures else None),
                    "failed": failed.get(state, 0),
                    "failures": figures.failures if figures else 0,
                    "retries": figures.retries if figures else 0,
                    "cost": f"{figures.cost:.4f}" if figures and figures.cost else "",
                }
            )
        flows.append(
            {
                "definition": definition,
                "graph": graph_url(name, definition.version),
                "rows": rows,
                "failed": sum(failed.values()),
                "versions": [v for v in stored if v.stored.name == name],
            }
        )
    return {
        "flows": flows,
        "alerts": [_alert_view(a) for a in alerts],
        "statuses": list(ItemStatus),
    }


def _counts_by_state(counts: list[StateCount], workflow: str, status: ItemStatus) -> dict[str, int]:
    """How many of ``workflow``'s items in ``counts`` are in each state with ``status``."""
    found: dict[str, int] = {}
    for row in counts:
        if row.workflow == workflow and row.status is status:
            found[row.state] = found.get(row.state, 0) + row.count
    return found


def _alert_view(alert: Alert) -> dict[str, Any]:
    def shown(value: float) -> str:
        return age_text(value) if alert.rule.value == "max_age" else f"{value:.0f}"

    return {
        "workflow": alert.workflow,
        "state": alert.state,
        "rule": alert.rule.value,
        "severity": alert.severity,
        "observed_text": shown(alert.observed),
        "threshold_text": shown(alert.threshold),
    }


def _seconds(value: float | None) -> str:
    return "" if value is None else age_text(value)
