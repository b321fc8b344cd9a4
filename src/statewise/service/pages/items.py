"""The item list and the item page, with the operator's redrive and operate forms."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from statewise.actions import inspect_item, redrive
from statewise.actions.principal import Principal
from statewise.definition.model import Role
from statewise.engine.events import Operate, Operation
from statewise.engine.item import ItemStatus
from statewise.errors import StatewiseError
from statewise.service.api.items import decode_cursor, encode_cursor
from statewise.service.auth import (
    Context,
)
from statewise.service.errors import public_message
from statewise.service.pages.guards import operator, signed_in
from statewise.service.pages.rendering import page
from statewise.service.paths import ITEM, segment
from statewise.store.base import ItemFilter, Session

router = APIRouter(prefix="/dashboard", include_in_schema=False)


@router.get("/items")
async def items_page(
    request: Request,
    ctx: Context,
    q: str = "",
    workflow: str = "",
    state: str = "",
    status: str = "",
    cursor: str = "",
) -> Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    statuses = [s.value for s in ItemStatus]
    shown = {"q": q, "workflow": workflow, "state": state, "status": status, "statuses": statuses}
    try:
        where = ItemFilter(
            workflow=workflow or None,
            state=state or None,
            status=ItemStatus(status) if status in statuses else None,
            key_contains=q or None,
        )
        found = await ctx.store.find_items(where, limit=50, after=decode_cursor(cursor or None))
    except StatewiseError as exc:
        return page(
            request, "items.html", session, error=public_message(exc), items=[], total=0, **shown
        )
    failed = [(item.workflow, item.key) for item, _ in found if item.status is ItemStatus.FAILED]
    return page(
        request,
        "items.html",
        session,
        items=[item for item, _ in found],
        failures=await ctx.store.failures(failed),
        next_cursor=encode_cursor(found[-1][1]) if len(found) == 50 else None,
        total=await ctx.store.count_items(where),
        **shown,
    )


@router.get(ITEM)
async def item_page(
    request: Request, ctx: Context, workflow: str, key: str, error: str = ""
) -> Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    try:
        view = await inspect_item(ctx.store, workflow, key, ctx.runner.definitions)
    except StatewiseError as exc:
        return page(request, "items.html", session, error=public_message(exc), items=[], total=0,
                     statuses=[s.value for s in ItemStatus])  # fmt: skip
    definition = ctx.runner.definitions.get((view.item.workflow, view.item.version))
    return page(
        request,
        "item.html",
        session,
        view=view,
        error=error,
        context_json=json.dumps(dict(view.item.context), indent=2, default=str),
        states=list(definition.states) if definition else [],
        can_operate=session.token.role.allows(Role.OPERATOR),
    )


def _back(workflow: str, key: str, error: str = "") -> Response:
    suffix = f"?error={segment(error)}" if error else ""
    return RedirectResponse(f"/dashboard/items/{segment(workflow)}/{segment(key)}{suffix}", 303)


async def _act_on_item(
    request: Request, csrf: str, workflow: str, key: str, act: Callable[[Principal], Awaitable[Any]]
) -> Response:
    """An operator's form on an item page: check the session, act, go back with any error."""
    who = await operator(request, csrf)
    if isinstance(who, str):
        return Response(who, status_code=403)
    try:
        await act(who)
    except (StatewiseError, ValueError) as exc:
        return _back(workflow, key, public_message(exc))
    return _back(workflow, key)


@router.post(ITEM + "/redrive")
async def redrive_form(
    request: Request,
    ctx: Context,
    workflow: str,
    key: str,
    csrf: str = Form(""),
    to: str = Form(""),
    reason: str = Form(""),
) -> Response:
    async def act(who: Principal) -> None:
        await redrive(ctx.runner, workflow, key, reason=reason, actor=who.actor, to=to or None)

    return await _act_on_item(request, csrf, workflow, key, act)


@router.post(ITEM + "/operate")
async def operate_form(
    request: Request,
    ctx: Context,
    workflow: str,
    key: str,
    csrf: str = Form(""),
    operation: str = Form(""),
    reason: str = Form(""),
) -> Response:
    async def act(who: Principal) -> None:
        event = Operate(Operation(operation), reason, who.actor)
        await ctx.runner.apply(workflow, key, event, f"{operation} of {key!r}")

    return await _act_on_item(request, csrf, workflow, key, act)
