"""The inbox: a reviewer's open tasks and the forms that decide them."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from statewise.actions import TaskDesk
from statewise.errors import StatewiseError
from statewise.service.api.models import RowId
from statewise.service.auth import (
    Context,
    csrf_ok,
    current_session,
    principal_of,
)
from statewise.service.errors import public_message
from statewise.service.pages.guards import signed_in
from statewise.service.pages.rendering import page
from statewise.service.paths import segment
from statewise.store.base import Session, Task

router = APIRouter(prefix="/dashboard", include_in_schema=False)


@router.get("/inbox")
async def inbox_page(request: Request, ctx: Context, error: str = "") -> Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    who = principal_of(session.token)
    entries = [_inbox_entry(ctx.desk, task) for task in await ctx.desk.inbox(who, limit=100)]
    return page(request, "inbox.html", session, entries=entries, error=error)


def _inbox_entry(desk: TaskDesk, task: Task) -> dict[str, Any]:
    """One task of the inbox with its form; one this process cannot load, flagged with why."""
    problem = desk.unloadable(task)
    if problem is not None:
        return {"task": task, "title": task.state, "problem": problem, "outcomes": (),
                "fields": [], "entered": {}}  # fmt: skip
    return {
        "task": task,
        "title": desk.title(task),
        "problem": None,
        "outcomes": desk.outcomes(task),
        "fields": form_fields(desk.form(task)),
        "entered": {},
    }


@router.post("/tasks/{task_id}/decide")
async def decide_form(request: Request, ctx: Context, task_id: RowId) -> Response:
    session = await current_session(request)
    form = await request.form()
    if session is None or not csrf_ok(session, str(form.get("csrf", ""))):
        return Response("the form's CSRF token is missing or wrong; reload the page", 403)
    try:
        fields = form_fields(ctx.desk.form(await ctx.store.get_task(task_id)))
        data = form_data(fields, {k: str(v) for k, v in form.items()})
        await ctx.desk.decide(
            task_id,
            principal_of(session.token),
            str(form.get("outcome", "")),
            str(form.get("comment", "")),
            data,
        )
    except StatewiseError as exc:
        return RedirectResponse(f"/dashboard/inbox?error={segment(public_message(exc))}", 303)
    return RedirectResponse("/dashboard/inbox", 303)


def form_fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The inputs a task's JSON Schema asks for, one per top-level property."""
    required = set(schema.get("required", []))
    fields = []
    for name, spec in (schema.get("properties") or {}).items():
        kind = spec.get("type", "string") if isinstance(spec, dict) else "json"
        if kind not in ("string", "number", "integer", "boolean"):
            kind = "json"
        fields.append(
            {
                "name": name,
                "label": spec.get("title", name) if isinstance(spec, dict) else name,
                "kind": kind,
                "options": spec.get("enum") if isinstance(spec, dict) else None,
                "required": name in required,
                "description": spec.get("description", "") if isinstance(spec, dict) else "",
            }
        )
    return fields


def form_data(fields: list[dict[str, Any]], posted: dict[str, str]) -> dict[str, Any]:
    """Typed form data from posted text; what cannot be read is left for the schema to refuse."""
    data: dict[str, Any] = {}
    for field in fields:
        raw = posted.get(f"field.{field['name']}")
        if field["kind"] == "boolean":
            data[field["name"]] = raw == "true"
            continue
        if raw is None or raw == "":
            continue
        data[field["name"]] = _typed(field["kind"], raw)
    return data


def _typed(kind: str, raw: str) -> Any:
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
        if kind == "json":
            return json.loads(raw)
    except ValueError:
        return raw
    return raw
