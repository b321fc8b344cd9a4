"""One task's page: what it is about, its form, its outcomes, and the decision once taken.

A refused decision (a field that breaks the form's schema, a claim someone else holds) is
shown on the same page, each problem beside its field and every typed value still in place;
nothing redirects away from what the reviewer wrote. Like the other dashboard forms, a
refusal re-renders the page with 200: the page itself is what answers the person. A decision
that goes through redirects to this page again, which then confirms it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from statewise.actions import TaskDesk
from statewise.actions.principal import Principal
from statewise.errors import StatewiseError, TaskError
from statewise.service.api.models import RowId
from statewise.service.auth import Context, principal_of
from statewise.service.errors import public_message, status_of
from statewise.service.pages.forms import (
    context_value,
    field_problems,
    form_data,
    form_fields,
    initial_values,
    is_missing,
    posted_values,
)
from statewise.service.pages.guards import signed_form, signed_in
from statewise.service.pages.inbox import back_filters, due_text, sla_class
from statewise.service.pages.rendering import page
from statewise.service.paths import segment
from statewise.store.base import Session, Task, TaskStatus

router = APIRouter(prefix="/dashboard", include_in_schema=False)

# A subject value longer than this, or holding a line break, is shown as a block of text.
LONG_VALUE = 80


def subject(paths: tuple[str, ...], context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The context values a task's ``show:`` names, as text, in the order declared."""
    shown = []
    for path in paths:
        value = context_value(context, path)
        if is_missing(value):
            text, missing = "not set", True
        elif isinstance(value, str):
            text, missing = value, False
        else:
            text, missing = json.dumps(value, ensure_ascii=False, indent=2), False
        long = len(text) > LONG_VALUE or "\n" in text
        shown.append({"path": path, "text": text, "missing": missing, "long": long})
    return shown


async def _task_view(
    ctx: Any, who: Principal, task: Task, posted: Mapping[str, str] | None
) -> dict[str, Any]:
    """Everything the task page shows; ``posted`` (a refused decision) fills the form."""
    desk: TaskDesk = ctx.desk
    item = await ctx.store.get_item(task.workflow, task.key)
    problem = desk.unloadable(task)
    now = ctx.clock()
    view: dict[str, Any] = {
        "task": task,
        "item": item,
        "problem": problem,
        "due": due_text(task, now),
        "sla": sla_class(task, now),
        "claimed_by": task.claimed_by if task.claim_until and task.claim_until > now else None,
        "actor": who.actor,
        "may_decide": who.may_work_on(task) and task.status is TaskStatus.OPEN,
    }
    if problem is not None:
        return {**view, "title": task.state, "subject": [], "fields": [], "values": {},
                "outcomes": [], "errors": {}, "comment": ""}  # fmt: skip
    fields = form_fields(desk.form(task))
    values = posted_values(fields, posted) if posted else initial_values(fields, item.context)
    return {
        **view,
        "title": desk.title(task),
        "subject": subject(desk.spec(task).show, item.context),
        "fields": fields,
        "values": values,
        "outcomes": desk.outcome_choices(task),
        "errors": {},
        "comment": (posted or {}).get("comment", ""),
    }


async def _render(
    request: Request,
    ctx: Any,
    session: Session,
    task_id: int,
    back: str,
    *,
    posted: Mapping[str, str] | None = None,
    errors: Mapping[str, list[str]] | None = None,
    error: str = "",
    moved: str = "",
) -> Response:
    who = principal_of(session.token)
    try:
        task = await ctx.store.get_task(task_id)
        if not who.may_see_queue(task.queue):
            raise TaskError(
                f"task {task.id} is in queue {task.queue!r}, which your token does not include"
            )
        view = await _task_view(ctx, who, task, posted)
    except StatewiseError as exc:
        response = page(request, "task.html", session, error=public_message(exc), task=None,
                        back=back_filters(back).url())  # fmt: skip
        response.status_code = status_of(exc)
        return response
    view["errors"] = dict(errors or {})
    view["decided"] = _decision_label(view, task)
    return page(
        request,
        "task.html",
        session,
        **view,
        back=back_filters(back).url(),
        back_param=back,
        error=error,
        moved=moved,
    )


def _decision_label(view: Mapping[str, Any], task: Task) -> str:
    """The outcome a decided task was decided with, as its button said it."""
    if task.outcome is None:
        return ""
    labels = {choice.event: choice.label for choice in view.get("outcomes", [])}
    return str(labels.get(task.outcome, task.outcome))


@router.get("/tasks/{task_id}")
async def task_page(
    request: Request, ctx: Context, task_id: RowId, back: str = "", moved: str = ""
) -> Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    return await _render(request, ctx, session, task_id, back, moved=moved)


@router.post("/tasks/{task_id}/decide")
async def decide_form(request: Request, ctx: Context, task_id: RowId) -> Response:
    """Decide from the task page: check the form here first, so problems sit by their fields."""
    checked = await signed_form(request)
    if isinstance(checked, Response):
        return checked
    session, posted = checked
    back = posted.get("back", "")
    try:
        task = await ctx.store.get_task(task_id)
        schema = ctx.desk.form(task)
        data = form_data(form_fields(schema), posted)
        problems = field_problems(schema, data) if schema else {}
        if problems:
            return await _render(request, ctx, session, task_id, back, posted=posted,
                                 errors=problems, error="The form has problems; see the "
                                 "fields marked below. Nothing was decided.")  # fmt: skip
        item = await ctx.desk.decide(
            task_id,
            principal_of(session.token),
            posted.get("outcome", ""),
            posted.get("comment", ""),
            data,
        )
    except StatewiseError as exc:
        return await _render(request, ctx, session, task_id, back, posted=posted,
                             error=public_message(exc))  # fmt: skip
    return RedirectResponse(
        f"/dashboard/tasks/{task_id}?back={segment(back)}&moved={segment(item.state)}", 303
    )
