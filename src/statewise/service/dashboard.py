"""The dashboard: server-rendered pages over the same actions as the API, for people.

Pages need a signed-in session (a token traded for an HttpOnly cookie); every form carries
the session's CSRF secret and is refused without it, and the sign-in form a pre-session one
(``statewise.service.security``). Keys enter URLs only through the ``segment`` filter. The
overview's graph, counts, flow figures and alerts refresh in place every few seconds
(``static/live.js`` refetches the fragment), and every asset is served from this process.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from statewise.actions import TaskDesk, bulk, inspect_item, redrive
from statewise.actions.deployment import versions
from statewise.actions.inspection import output_reason, output_summary, values_text
from statewise.actions.principal import Principal
from statewise.actions.quality import DEFAULT_WINDOW, agent_quality
from statewise.definition.diagrams import to_svg
from statewise.definition.model import Role
from statewise.engine.events import Operate, Operation
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidInputError, StatewiseError
from statewise.inputs import check_seconds
from statewise.observe.alerts import Alert, evaluate, state_severity
from statewise.service.api.items import decode_cursor, encode_cursor
from statewise.service.api.models import RowId
from statewise.service.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    Context,
    csrf_ok,
    current_session,
    principal_of,
    sign_in,
    sign_out,
)
from statewise.service.errors import public_message
from statewise.service.paths import ITEM, segment
from statewise.service.security import keep_login_csrf, login_csrf, login_csrf_ok
from statewise.store.base import ItemFilter, Session, StateCount, Task
from statewise.store.quality import Bucket

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/dashboard", include_in_schema=False)
_STATE_BOX = re.compile(r'<g class="state" data-state="([^"]*)"')


def age_text(seconds: float) -> str:
    """A duration as a person reads it: ``4.2s``, ``3.1m``, ``2.0h``, ``1.5d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{max(seconds, 0):.1f}s"


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def _took(seconds: float) -> str:
    """A step's run time: milliseconds under a second, else as ``age_text`` says it."""
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else age_text(seconds)


def _pretty(value: Any) -> str:
    """A step's output in full, indented; the page escapes it."""
    return json.dumps(value, indent=2, ensure_ascii=False)


templates.env.globals.update(
    clock=_clock,
    age=lambda at: age_text(time.time() - at),
    took=_took,
    pretty=_pretty,
    summary=output_summary,
    reason=output_reason,
    values_text=values_text,
)
# Every key, workflow or search text put into a URL goes through this filter.
templates.env.filters["segment"] = segment


def _page(request: Request, name: str, session: Session | None, **values: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"session": session, "title": name.split(".")[0], **values}
    )


async def _signed_in(request: Request) -> Session | Response:
    session = await current_session(request)
    return session if session is not None else RedirectResponse("/dashboard/login", 303)


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    return _login_page(request)


@router.post("/login")
async def login(
    request: Request, ctx: Context, token: str = Form(""), csrf: str = Form("")
) -> Response:
    if not login_csrf_ok(request, csrf):
        error = "The sign-in form expired or came from another site; sign in again."
        return _login_page(request, error, 403)
    signed = await sign_in(ctx, token)
    if signed is None:
        return _login_page(request, "That token is unknown or revoked.")
    cookie, _ = signed
    answer = RedirectResponse("/dashboard", 303)
    answer.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return answer


def _login_page(request: Request, error: str = "", status: int = 200) -> HTMLResponse:
    """The sign-in form, carrying (and setting) its pre-session CSRF value."""
    csrf = login_csrf(request)
    answer = _page(request, "login.html", None, error=error, login_csrf=csrf)
    answer.status_code = status
    keep_login_csrf(request, answer, csrf)
    return answer


@router.post("/logout")
async def logout(request: Request, csrf: str = Form("")) -> Response:
    session = await current_session(request)
    if session is not None and csrf_ok(session, csrf):
        await sign_out(request)
    answer = RedirectResponse("/dashboard/login", 303)
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer


@router.get("")
async def overview(request: Request, ctx: Context) -> Response:
    session = await _signed_in(request)
    if not isinstance(session, Session):
        return session
    return _page(request, "overview.html", session, **await _overview(ctx))


@router.get("/fragments/overview")
async def overview_fragment(request: Request, ctx: Context) -> Response:
    session = await current_session(request)
    if session is None:
        return Response("signed out", status_code=401)
    return _page(request, "overview_body.html", session, **await _overview(ctx))


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
        live = {state: int(entry[0]) for state, entry in by_state.items()}
        svg = to_svg(definition, {s: live.get(s, 0) + done.get(s, 0) for s in definition.states})
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
                "svg": _coloured(svg, rows),
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


def _coloured(svg: str, rows: list[dict[str, Any]]) -> str:
    """The graph with each state's box classed by its alert level and failed items.

    dashboard.css colours them. A class, not a ``<style>`` element: the dashboard's CSP allows
    no inline style.
    """
    level = {html.escape(row["state"], quote=True): row["severity"] for row in rows}
    failed = {html.escape(row["state"], quote=True) for row in rows if row["failed"]}

    def classed(match: re.Match[str]) -> str:
        flag = " has-failed" if match[1] in failed else ""
        return f'<g class="state alert-{level.get(match[1], "ok")}{flag}" data-state="{match[1]}"'

    return _STATE_BOX.sub(classed, svg)


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


@router.get("/items")
async def items_page(
    request: Request,
    ctx: Context,
    q: str = "",
    state: str = "",
    status: str = "",
    cursor: str = "",
) -> Response:
    session = await _signed_in(request)
    if not isinstance(session, Session):
        return session
    statuses = [s.value for s in ItemStatus]
    shown = {"q": q, "state": state, "status": status, "statuses": statuses}
    try:
        where = ItemFilter(
            state=state or None,
            status=ItemStatus(status) if status in statuses else None,
            key_contains=q or None,
        )
        page = await ctx.store.find_items(where, limit=50, after=decode_cursor(cursor or None))
    except StatewiseError as exc:
        return _page(
            request, "items.html", session, error=public_message(exc), items=[], total=0, **shown
        )
    failed = [(item.workflow, item.key) for item, _ in page if item.status is ItemStatus.FAILED]
    return _page(
        request,
        "items.html",
        session,
        items=[item for item, _ in page],
        failures=await ctx.store.failures(failed),
        next_cursor=encode_cursor(page[-1][1]) if len(page) == 50 else None,
        total=await ctx.store.count_items(where),
        **shown,
    )


@router.get(ITEM)
async def item_page(
    request: Request, ctx: Context, workflow: str, key: str, error: str = ""
) -> Response:
    session = await _signed_in(request)
    if not isinstance(session, Session):
        return session
    try:
        view = await inspect_item(ctx.store, workflow, key, ctx.runner.definitions)
    except StatewiseError as exc:
        return _page(request, "items.html", session, error=public_message(exc), items=[], total=0,
                     statuses=[s.value for s in ItemStatus])  # fmt: skip
    definition = ctx.runner.definitions.get((view.item.workflow, view.item.version))
    return _page(
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


async def _operator(request: Request, csrf: str) -> Principal | str:
    session = await current_session(request)
    if session is None:
        return "sign in first"
    if not csrf_ok(session, csrf):
        return "the form's CSRF token is missing or wrong; reload the page"
    if not session.token.role.allows(Role.OPERATOR):
        return "this needs the operator role"
    return principal_of(session.token)


async def _operator_form(request: Request) -> tuple[Principal, Session, dict[str, str]] | Response:
    """A posted operator form (bulk, what-if): who posted it, their session and its fields.

    The session, the form's CSRF token and the operator role are checked first, so every such
    form refuses alike: a 403 naming what is wrong.
    """
    posted = {k: str(v) for k, v in (await request.form()).items()}
    who = await _operator(request, posted.get("csrf", ""))
    if isinstance(who, str):
        return Response(who, status_code=403)
    session = await current_session(request)
    assert session is not None  # _operator checked it
    return who, session, posted


async def _act_on_item(
    request: Request, csrf: str, workflow: str, key: str, act: Callable[[Principal], Awaitable[Any]]
) -> Response:
    """An operator's form on an item page: check the session, act, go back with any error."""
    who = await _operator(request, csrf)
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


@router.get("/inbox")
async def inbox_page(request: Request, ctx: Context, error: str = "") -> Response:
    session = await _signed_in(request)
    if not isinstance(session, Session):
        return session
    who = principal_of(session.token)
    entries = [_inbox_entry(ctx.desk, task) for task in await ctx.desk.inbox(who, limit=100)]
    return _page(request, "inbox.html", session, entries=entries, error=error)


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


@router.get("/quality")
async def quality_page(
    request: Request,
    ctx: Context,
    workflow: str = "",
    since: str = DEFAULT_WINDOW,
    bucket: str = Bucket.DAY.value,
    band: str = "",
) -> Response:
    session = await _signed_in(request)
    if not isinstance(session, Session):
        return session
    form = {"workflow": workflow, "since": since, "bucket": bucket, "band": band}
    shown = {"form": form, "buckets": [b.value for b in Bucket]}
    try:
        trend, width = _quality_options(bucket, band)
        report = await agent_quality(
            ctx.store, ctx.clock(), since=since, workflow=workflow or None, bucket=trend, band=width
        )
    except StatewiseError as exc:
        return _page(request, "quality.html", session, error=public_message(exc), **shown)
    return _page(request, "quality.html", session, report=report, **shown)


def _quality_options(bucket: str, band: str) -> tuple[Bucket, float | None]:
    """The trend bucket and score band width as typed into the quality page's form."""
    if bucket not in {b.value for b in Bucket}:
        raise InvalidInputError(f"bucket must be day or week, not {bucket!r}")
    if not band.strip():
        return Bucket(bucket), None
    try:
        return Bucket(bucket), float(band)
    except ValueError:
        raise InvalidInputError(f"band must be a number, not {band!r}") from None


_BULK_FIELDS = ("state", "status", "q", "older_than", "operation", "target", "reason")


@router.get("/bulk")
async def bulk_page(request: Request) -> Response:
    session = await _signed_in(request)
    if not isinstance(session, Session):
        return session
    form = dict.fromkeys(_BULK_FIELDS, "")
    return _bulk_page(request, session, form, None)


@router.post("/bulk")
async def bulk_form(request: Request, ctx: Context) -> Response:
    checked = await _operator_form(request)
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
    return _page(
        request,
        "bulk.html",
        session,
        form=form,
        report=report,
        error=error,
        statuses=[s.value for s in ItemStatus],
        operations=[o.value for o in Operation],
    )
