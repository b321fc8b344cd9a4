"""The bulk page: one operation over every item a filter matches, dry run first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from statewise.actions import bulk
from statewise.engine.events import Operation
from statewise.engine.item import ItemStatus
from statewise.errors import StatewiseError
from statewise.inputs import check_seconds
from statewise.service.auth import (
    Context,
)
from statewise.service.errors import public_message
from statewise.service.pages.guards import operator_form, signed_in
from statewise.service.pages.rendering import page
from statewise.store.base import ItemFilter, Session

router = APIRouter(prefix="/dashboard", include_in_schema=False)


_BULK_FIELDS = ("state", "status", "q", "older_than", "operation", "target", "reason")


@router.get("/bulk")
async def bulk_page(request: Request) -> Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    form = dict.fromkeys(_BULK_FIELDS, "")
    return _bulk_page(request, session, form, None)


@router.post("/bulk")
async def bulk_form(request: Request, ctx: Context) -> Response:
    checked = await operator_form(request)
    if isinstance(checked, Response):
        return checked
    who, session, posted = checked
    form = {name: posted.get(name, "") for name in _BULK_FIELDS}
    try:
        older = (
            check_seconds(float(form["older_than"]), "older than") if form["older_than"] else None
        )
        where = ItemFilter(
            state=form["state"] or None,
            status=ItemStatus(form["status"]) if form["status"] else None,
            key_contains=form["q"] or None,
            entered_before=None if older is None else ctx.clock() - older,
        )
        report = await bulk(
            ctx.runner,
            where,
            Operation(form["operation"]),
            reason=form["reason"],
            actor=who.actor,
            target=form["target"] or None,
            dry_run=posted.get("apply") != "yes",
        )
    except (StatewiseError, ValueError) as exc:
        return _bulk_page(request, session, form, None, public_message(exc))
    return _bulk_page(request, session, form, report)


def _bulk_page(
    request: Request, session: Session, form: dict[str, str], report: Any, error: str = ""
) -> HTMLResponse:
    return page(
        request,
        "bulk.html",
        session,
        form=form,
        report=report,
        error=error,
        statuses=[s.value for s in ItemStatus],
        operations=[o.value for o in Operation],
    )
