"""The bulk page: one operation over every item a filter matches, dry run first.

The filter names a workflow and one of its states, chosen from the definitions this process
holds, so a state cannot match another workflow's state of the same name and a typo cannot
silently match nothing. Ages are durations (``4h``) as the CLI takes them. The dry run and the
result both list the items (the first ``KEYS_SHOWN``) with the count, and only the form that
was counted can be applied.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from statewise.actions import bulk
from statewise.actions.bulk import BulkReport, check_state
from statewise.definition.durations import parse_duration
from statewise.definition.model import Role
from statewise.engine.events import Operation
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidInputError, StatewiseError
from statewise.inputs import check_seconds
from statewise.service.auth import Context
from statewise.service.errors import public_message
from statewise.service.pages.guards import operator_form, refusal, role_needed, signed_in
from statewise.service.pages.rendering import page
from statewise.store.base import ItemFilter, Session

router = APIRouter(prefix="/dashboard", include_in_schema=False)


_BULK_FIELDS = (
    "workflow", "state", "status", "q", "older_than", "operation", "target", "reason",
)  # fmt: skip


@router.get("/bulk")
async def bulk_page(request: Request, ctx: Context, workflow: str = "") -> Response:
    """The empty form (a workflow may be chosen in the URL); only operators are offered it."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    if not session.token.role.allows(Role.OPERATOR):
        return refusal(request, session, role_needed(session, Role.OPERATOR, "The bulk page"))
    form = dict.fromkeys(_BULK_FIELDS, "")
    form["workflow"] = workflow if workflow in held_states(ctx) else ""
    return _bulk_page(request, ctx, session, form, None)


@router.post("/bulk")
async def bulk_form(request: Request, ctx: Context) -> Response:
    """Count the matching items (the default) or, with ``apply=yes``, operate on them."""
    checked = await operator_form(request)
    if isinstance(checked, Response):
        return checked
    who, session, posted = checked
    form = {name: posted.get(name, "") for name in _BULK_FIELDS}
    apply = posted.get("apply") == "yes"
    try:
        where = bulk_filter(form, held_states(ctx), ctx.clock())
        check_state(where, ctx.runner.definitions.values())
        if apply and posted.get("counted") != counted(form):
            raise InvalidInputError(
                "the filter or the operation changed after the count; nothing was changed. "
                "Count the matching items again, then apply"
            )
        report = await bulk(
            ctx.runner,
            where,
            Operation(form["operation"]),
            reason=form["reason"],
            actor=who.actor,
            target=form["target"] or None,
            dry_run=not apply,
        )
    except (StatewiseError, ValueError) as exc:
        return _bulk_page(request, ctx, session, form, None, public_message(exc))
    return _bulk_page(request, ctx, session, form, report)


def counted(form: dict[str, str]) -> str:
    """What a dry run counted (filter, operation, target), which an apply must repeat.

    The count's page carries it in a hidden field: an operator who changes the form after
    counting must count again, so nothing is applied to items they were not shown.
    """
    return json.dumps([form[name] for name in _BULK_FIELDS if name != "reason"])


def held_states(ctx: Context) -> dict[str, list[str]]:
    """Each workflow this process holds, with the states of all its held versions."""
    states: dict[str, set[str]] = {}
    for definition in ctx.runner.definitions.values():
        states.setdefault(definition.name, set()).update(definition.states)
    return {name: sorted(states[name]) for name in sorted(states)}


def bulk_filter(form: dict[str, str], held: dict[str, list[str]], now: float) -> ItemFilter:
    """The store filter of the posted form; InvalidInputError says what to fix.

    A state needs its workflow: the same name may be a state of several workflows (the
    bulk action itself refuses a state the workflow does not have, naming its states).
    """
    workflow, state = form["workflow"] or None, form["state"] or None
    if workflow is not None and workflow not in held:
        raise InvalidInputError(
            f"workflow {workflow!r} is not held here; choose one of: {', '.join(held)}"
        )
    if state is not None and workflow is None:
        owners = [name for name, states in held.items() if state in states] or ["none held here"]
        raise InvalidInputError(
            f"choose the workflow of state {state!r} first (it is a state of "
            f"{', '.join(owners)}); nothing was counted or changed"
        )
    older = None
    if form["older_than"].strip():
        try:
            seconds = parse_duration(form["older_than"])
        except ValueError as exc:
            raise InvalidInputError(f"older than: {exc}") from None
        older = check_seconds(seconds, "older than")
    return ItemFilter(
        workflow=workflow,
        state=state,
        status=ItemStatus(form["status"]) if form["status"] else None,
        key_contains=form["q"] or None,
        entered_before=None if older is None else now - older,
    )


def _bulk_page(
    request: Request,
    ctx: Context,
    session: Session,
    form: dict[str, str],
    report: BulkReport | None,
    error: str = "",
) -> HTMLResponse:
    shown: dict[str, Any] = {}
    if report is not None:
        count = report.matched if report.dry_run else report.changed
        shown = {"listed": report.items, "more": max(count - len(report.items), 0)}
    return page(
        request,
        "bulk.html",
        session,
        form=form,
        report=report,
        error=error,
        held=held_states(ctx),
        counted=counted(form),
        statuses=[s.value for s in ItemStatus],
        operations=[o.value for o in Operation],
        **shown,
    )
