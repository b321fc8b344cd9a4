"""Items: start one or a batch, find and inspect them, send events, redrive, bulk operations."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from statewise.actions import bulk, inspect_item, item_view_json, redrive
from statewise.actions.deployment import split_ref, stored_version
from statewise.actions.events import event_outcome
from statewise.actions.inspection import history_json
from statewise.engine.item import Item, ItemStatus
from statewise.errors import InvalidInputError
from statewise.inputs import check_row_id, decode_json
from statewise.service.api.models import Bulk, Redrive, SendEvent, StartBatch, StartItem
from statewise.service.auth import Context, Operator, Viewer
from statewise.service.paths import ITEM
from statewise.store.base import ItemFilter

router = APIRouter(prefix="/api", tags=["items"])


def item_summary(item: Item, failure: dict[str, str] | None = None) -> dict[str, Any]:
    """An item without its context, as listings show it; ``failure`` says why it failed."""
    return {
        "workflow": item.workflow,
        "version": item.version,
        "key": item.key,
        "state": item.state,
        "status": item.status.value,
        "entered_at": item.entered_at,
        "updated_at": item.updated_at,
        "seq": item.seq,
        "failure": failure,
    }


@router.post("/items", summary="Start one item (idempotent per key)", status_code=201)
async def start_item(body: StartItem, ctx: Context, who: Operator) -> JSONResponse:
    await ctx.take_up(body.workflow)
    definition = ctx.definition(body.workflow)
    report = await ctx.runner.start(definition, [(body.key, body.data)], who.actor)
    if report.rejected:
        raise InvalidInputError(report.rejected[0])
    item = await ctx.store.get_item(definition.name, body.key)
    content = {"created": report.created == 1, "item": item_summary(item)}
    return JSONResponse(content, status_code=201 if report.created else 200)


@router.post("/items/batch", summary="Start up to 10,000 items, idempotent per key")
async def start_batch(body: StartBatch, ctx: Context, who: Operator) -> dict[str, Any]:
    await ctx.take_up(body.workflow)
    definition = ctx.definition(body.workflow)
    entries = [(entry.key, entry.data) for entry in body.items]
    for number, (key, data) in enumerate(entries):  # all or none: check before any start
        try:
            ctx.runner.input_limits.check_start(key, data, definition.inputs)
        except InvalidInputError as exc:
            raise InvalidInputError(f"items[{number}]: {exc}") from None
    report = await ctx.runner.start(definition, entries, who.actor)
    return {"created": report.created, "existing": report.existing, "rejected": report.rejected}


@router.get(
    "/items",
    summary="Items matching filters, longest in their state first; a failed one says why",
)
async def list_items(
    ctx: Context,
    _: Viewer,
    workflow: str | None = None,
    state: str | None = None,
    status: ItemStatus | None = None,
    older_than: float | None = Query(
        None, ge=0, allow_inf_nan=False, description="Seconds in the state, at least"
    ),
    q: str | None = Query(None, description="Part of the key, literal and case-sensitive"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> dict[str, Any]:
    where = await item_filter(ctx, workflow, state, status, older_than, q)
    page = await ctx.store.find_items(where, limit=limit, after=decode_cursor(cursor))
    following = encode_cursor(page[-1][1]) if len(page) == limit else None
    failed = [(item.workflow, item.key) for item, _ in page if item.status is ItemStatus.FAILED]
    failures = await ctx.store.failures(failed)
    return {
        "items": [item_summary(item, failures.get((item.workflow, item.key))) for item, _ in page],
        "next_cursor": following,
        "total": await ctx.store.count_items(where),
    }


@router.get(ITEM, summary="One item: context, pending work, tasks, talk")
async def get_item(workflow: str, key: str, ctx: Context, _: Viewer) -> dict[str, Any]:
    view = item_view_json(await inspect_item(ctx.store, workflow, key, ctx.runner.definitions))
    view.pop("history")
    return view


@router.get(ITEM + "/history", summary="The item's audit trail")
async def item_history(workflow: str, key: str, ctx: Context, _: Viewer) -> list[dict[str, Any]]:
    return [history_json(record) for record in await ctx.store.history(workflow, key)]


@router.post(ITEM + "/events", summary="Send an external event to an item")
async def send_event(
    workflow: str, key: str, body: SendEvent, ctx: Context, who: Operator
) -> dict[str, Any]:
    item = await ctx.runner.send(workflow, key, body.name, body.data, who.actor)
    sent = event_outcome(item, body.name)
    return {
        **item_summary(item),
        "outcome": sent.outcome,
        "message": sent.message,
        "buffered_until": sent.buffered_until,
    }


@router.post(ITEM + "/redrive", summary="Retry the failed command, or move (onto a version)")
async def redrive_item(
    workflow: str, key: str, body: Redrive, ctx: Context, who: Operator
) -> dict[str, Any]:
    if body.to_version is not None:
        await ctx.take_up(workflow, body.to_version)
    item = await redrive(
        ctx.runner,
        workflow,
        key,
        reason=body.reason,
        actor=who.actor,
        to=body.to,
        to_version=body.to_version,
    )
    return item_summary(item)


@router.post("/bulk", summary="One operation on every matching item (dry run by default)")
async def bulk_operation(body: Bulk, ctx: Context, who: Operator) -> dict[str, Any]:
    where = await item_filter(ctx, body.workflow, body.state, body.status, body.older_than, body.q)
    report = await bulk(
        ctx.runner,
        where,
        body.operation,
        reason=body.reason,
        actor=who.actor,
        target=body.target,
        dry_run=body.dry_run,
    )
    return {
        "operation": report.operation.value,
        "matched": report.matched,
        "changed": report.changed,
        "skipped": [{"key": key, "reason": why} for key, why in report.skipped],
        "dry_run": report.dry_run,
        "items": [{"workflow": workflow, "key": key} for workflow, key in report.items],
    }


async def item_filter(
    ctx: Context,
    workflow: str | None,
    state: str | None,
    status: ItemStatus | None,
    older_than: float | None,
    q: str | None,
) -> ItemFilter:
    """The store filter of the API's query parameters.

    ``workflow`` is ``NAME`` or ``NAME@VERSION``, as ``statewise items -w`` takes it: a
    version that is not stored is a 404 naming the stored ones, never an empty page.
    """
    try:
        name, version = (None, None) if workflow is None else split_ref(workflow)
    except ValueError as exc:
        raise InvalidInputError(f"workflow: {exc}") from None
    if name is not None and version is not None:
        await stored_version(ctx.store, name, version)
    now = ctx.clock()
    return ItemFilter(
        workflow=name,
        version=version,
        state=state,
        status=status,
        entered_before=None if older_than is None else now - older_than,
        key_contains=q or None,
    )


def encode_cursor(position: tuple[float, int]) -> str:
    """An opaque page cursor."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def decode_cursor(cursor: str | None) -> tuple[float, int] | None:
    """The position a cursor encodes; a malformed one is the caller's mistake.

    Its numbers are checked too: an infinite time or an id beyond the stores' 64-bit
    columns would otherwise reach the query.
    """
    if not cursor:
        return None
    try:
        entered_at, item_id = decode_json(base64.urlsafe_b64decode(cursor.encode()))
        position = float(entered_at), check_row_id(int(item_id), "item")
        if not math.isfinite(position[0]):
            raise ValueError("an infinite time")
        return position
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInputError(f"cursor {cursor!r} is not one this API gave out") from exc
