"""The item list and the item page, with the operator's redrive and operate forms.

The item page offers only what fits the item: a redrive where one makes sense (failed,
cancelled, escalated, stuck), the operations its status allows, and no operator form at all
to other roles. Cancelling and moving ask for a confirmation first; after an action the page
is read afresh and says what was done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from statewise.actions import inspect_item, redrive
from statewise.actions.principal import Principal
from statewise.actions.redrive import redrive_offer
from statewise.definition.model import Role
from statewise.engine.events import Operate, Operation
from statewise.engine.item import ItemStatus
from statewise.errors import StatewiseError
from statewise.service.api.items import decode_cursor, encode_cursor
from statewise.service.auth import Context
from statewise.service.errors import public_message
from statewise.service.pages.guards import operator_form, signed_in
from statewise.service.pages.rendering import page, pretty
from statewise.service.paths import ITEM, segment
from statewise.store.base import ItemFilter, Session, TaskStatus

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


# What the item page says after each action; the redirect carries the action's name only.
DONE = {
    "pause": "Paused.",
    "resume": "Resumed.",
    "cancel": "Cancelled.",
    "retry": "Redriven: the failed command runs again.",
    "move": "Moved.",
}
# Which operations the form offers for each status (as the engine allows them).
_OFFERED = {
    ItemStatus.ACTIVE: ("pause", "cancel"),
    ItemStatus.WAITING: ("pause", "cancel"),
    ItemStatus.PAUSED: ("resume", "cancel"),
    ItemStatus.FAILED: ("cancel",),
}


@router.get(ITEM)
async def item_page(
    request: Request, ctx: Context, workflow: str, key: str, error: str = "", done: str = ""
) -> Response:
    """One item: its state, open tasks and timers, budgets, timeline, context, operator form."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    try:
        view = await inspect_item(ctx.store, workflow, key, ctx.runner.definitions)
    except StatewiseError as exc:
        return page(request, "items.html", session, error=public_message(exc), items=[], total=0,
                     statuses=[s.value for s in ItemStatus])  # fmt: skip
    item = view.item
    definition = ctx.runner.definitions.get((item.workflow, item.version))
    message = DONE.get(done, "")
    if done == "move":
        message = f"Moved to {item.state}."
    return page(
        request,
        "item.html",
        session,
        view=view,
        error=error,
        done=message,
        context_json=pretty(dict(item.context)),
        now=ctx.clock(),
        states=list(definition.states) if definition else [],
        open_tasks=[t for t in view.tasks if t.status is TaskStatus.OPEN],
        redrive_because=redrive_offer(item, definition, view.pending),
        operations=_OFFERED.get(item.status, ()),
        can_operate=session.token.role.allows(Role.OPERATOR),
    )


def _back(workflow: str, key: str, error: str = "", done: str = "") -> Response:
    """Back to the item page, which reads it afresh, with the error or what was done."""
    suffix = f"?error={segment(error)}" if error else f"?done={segment(done)}" if done else ""
    return RedirectResponse(f"/dashboard/items/{segment(workflow)}/{segment(key)}{suffix}", 303)


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the confirmation page asks, what it warns of, and its button's label."""

    question: str
    consequence: str
    button: str


async def _act_on_item(
    request: Request,
    workflow: str,
    key: str,
    posted: dict[str, str],
    act: Callable[[Principal], Awaitable[Any]],
    done: str,
    confirm: Confirmation | None = None,
) -> Response:
    """An operator's form on an item page: check the session, confirm, act, go back.

    An action with a ``confirm`` first shows a page asking for it (no script needed);
    the form there posts again with ``confirmed=yes``.
    """
    checked = await operator_form(request)
    if isinstance(checked, Response):
        return checked
    who, session, _ = checked
    if confirm is not None and posted.get("confirmed") != "yes":
        return page(
            request,
            "confirm.html",
            session,
            confirm=confirm,
            posted=posted,
            item_url=f"/dashboard/items/{segment(workflow)}/{segment(key)}",
            action=request.url.path.rsplit("/", 1)[1],  # operate or redrive
            title="confirm",
        )
    try:
        await act(who)
    except (StatewiseError, ValueError) as exc:
        return _back(workflow, key, public_message(exc))
    return _back(workflow, key, done=done)


def _posted(form: Any) -> dict[str, str]:
    return {name: str(value) for name, value in form.items()}


@router.post(ITEM + "/redrive")
async def redrive_form(request: Request, ctx: Context, workflow: str, key: str) -> Response:
    """Retry the failed command, or (after a confirmation) move the item to a named state."""
    posted = _posted(await request.form())
    to = posted.get("to", "") or None

    async def act(who: Principal) -> None:
        reason = posted.get("reason", "")
        await redrive(ctx.runner, workflow, key, reason=reason, actor=who.actor, to=to)

    confirm = None
    if to is not None:
        confirm = Confirmation(
            f"Move item {key} to {to}?",
            "Its pending work in the current state is dropped and it enters "
            f"{to} afresh, running what {to} runs.",
            f"Move to {to}",
        )
    done = "move" if to else "retry"
    return await _act_on_item(request, workflow, key, posted, act, done, confirm)


@router.post(ITEM + "/operate")
async def operate_form(request: Request, ctx: Context, workflow: str, key: str) -> Response:
    """Pause, resume or (after a confirmation) cancel the item."""
    posted = _posted(await request.form())
    operation = posted.get("operation", "")

    async def act(who: Principal) -> None:
        event = Operate(Operation(operation), posted.get("reason", ""), who.actor)
        await ctx.runner.apply(workflow, key, event, f"{operation} of {key!r}")

    confirm = None
    if operation == Operation.CANCEL.value:
        confirm = Confirmation(
            f"Cancel item {key}?",
            "Its open tasks close and its pending commands and timers are dropped; "
            "it moves again only if an operator redrives it.",
            "Cancel the item",
        )
    return await _act_on_item(request, workflow, key, posted, act, operation, confirm)
