"""The inbox: a reviewer's open tasks as one filtered, sorted, paged list, claimed from there.

The filters are query parameters, so a filtered page is a link to share. Each row opens the
task's own page (``pages.task``), where it is decided.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from statewise.actions import TaskDesk
from statewise.definition.agent_rules import state_tasks
from statewise.errors import StatewiseError
from statewise.service.api.models import RowId
from statewise.service.auth import Context, principal_of
from statewise.service.errors import public_message
from statewise.service.pages.guards import signed_form, signed_in
from statewise.service.pages.rendering import page
from statewise.store.base import Session, Task, TaskOrder, TaskQuery

router = APIRouter(prefix="/dashboard", include_in_schema=False)

PAGE_SIZE = 50
MAX_PAGE = 1_000_000
DUE_CHOICES = ("all", "overdue", "today")
# A task is "soon" due once less than this share of the time it was given is left.
SOON_SHARE = 0.25
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Filters:
    """The inbox's query parameters, read and checked; ``problem`` says what was ignored."""

    queue: str = ""
    workflow: str = ""
    state: str = ""
    due: str = "all"
    mine: bool = False
    unclaimed: bool = False
    sort: TaskOrder = TaskOrder.DUE
    page: int = 1
    problem: str = ""

    def params(self, **changes: Any) -> str:
        """These filters (with ``changes``) as a query string; defaults are left out."""
        shown = replace(self, **changes)
        values = {
            "queue": shown.queue, "workflow": shown.workflow, "state": shown.state,
            "due": "" if shown.due == "all" else shown.due, "mine": "1" if shown.mine else "",
            "unclaimed": "1" if shown.unclaimed else "",
            "sort": "" if shown.sort is TaskOrder.DUE else shown.sort.value,
            "page": "" if shown.page == 1 else str(shown.page),
        }  # fmt: skip
        return urlencode({k: v for k, v in values.items() if v})

    def url(self, **changes: Any) -> str:
        """The inbox URL showing these filters."""
        query = self.params(**changes)
        return f"/dashboard/inbox?{query}" if query else "/dashboard/inbox"


def read_filters(params: dict[str, str]) -> Filters:
    """Filters from query parameters; an unknown sort, due or page is named, not obeyed."""
    problems = []
    due = params.get("due") or "all"
    if due not in DUE_CHOICES:
        problems.append(f"due {due!r} is not one of {', '.join(DUE_CHOICES)}")
        due = "all"
    try:
        sort = TaskOrder(params.get("sort") or TaskOrder.DUE.value)
    except ValueError:
        problems.append(f"sort {params['sort']!r} is not one of {', '.join(TaskOrder)}")
        sort = TaskOrder.DUE
    raw_page = params.get("page") or "1"
    number = int(raw_page) if raw_page.isascii() and raw_page.isdigit() else 0
    if not 1 <= number <= MAX_PAGE:
        problems.append(f"page {raw_page!r} is not a page number from 1 to {MAX_PAGE}")
        number = 1
    return Filters(
        queue=params.get("queue", ""),
        workflow=params.get("workflow", ""),
        state=params.get("state", ""),
        due=due,
        mine=params.get("mine") == "1",
        unclaimed=params.get("unclaimed") == "1",
        sort=sort,
        page=number,
        problem="; ".join(problems),
    )


def task_query(filters: Filters, now: float) -> TaskQuery:
    """The store query of a filtered page; "today" runs to the end of the UTC day."""
    due_after, due_before = None, None
    if filters.due == "overdue":
        due_before = now
    elif filters.due == "today":
        due_after, due_before = now, (now // DAY + 1) * DAY
    return TaskQuery(
        now=now,
        queue=filters.queue or None,
        workflow=filters.workflow or None,
        state=filters.state or None,
        due_after=due_after,
        due_before=due_before,
        mine=filters.mine,
        unclaimed=filters.unclaimed,
        order=filters.sort,
        limit=PAGE_SIZE,
        offset=(filters.page - 1) * PAGE_SIZE,
    )


def span_text(seconds: float) -> str:
    """A span a person reads at a glance: ``40 s``, ``12 min``, ``3 h``, ``2 d``."""
    seconds = abs(seconds)
    for unit, size in (("d", DAY), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def due_text(task: Task, now: float) -> str:
    """``due in 3 h`` or ``overdue 2 h``; empty for a task with no due time."""
    if task.due_at is None:
        return ""
    left = task.due_at - now
    return f"due in {span_text(left)}" if left > 0 else f"overdue {span_text(left)}"


def sla_class(task: Task, now: float) -> str:
    """overdue, soon (under ``SOON_SHARE`` of its time left) or ok; none without a due time."""
    if task.due_at is None:
        return "none"
    left = task.due_at - now
    if left <= 0:
        return "overdue"
    given = task.due_at - task.created_at
    return "soon" if given > 0 and left < given * SOON_SHARE else "ok"


def _row(desk: TaskDesk, task: Task, actor: str, now: float) -> dict[str, Any]:
    problem = desk.unloadable(task)
    claimed = task.claimed_by if task.claim_until and task.claim_until > now else None
    return {
        "task": task,
        "title": task.state if problem else desk.title(task),
        "problem": problem,
        "due": due_text(task, now),
        "sla": sla_class(task, now),
        "claimed_by": claimed,
        "mine": claimed == actor,
    }


def _choices(ctx: Any, workflow: str) -> tuple[list[str], list[str]]:
    """The workflows held and the human states of ``workflow`` (of all, when none is chosen)."""
    definitions = ctx.catalog.definitions
    workflows = sorted({d.name for d in definitions})
    states = sorted(
        {s.name for d in definitions if workflow in ("", d.name) for s in d.states.values()
         if any(state_tasks(s))}
    )  # fmt: skip
    return workflows, states


async def render_inbox(
    request: Request,
    ctx: Any,
    session: Session,
    filters: Filters,
    error: str = "",
) -> Response:
    """The task list as ``filters`` ask, with ``error`` on top (a refused claim, say)."""
    who = principal_of(session.token)
    now = ctx.clock()
    found = await ctx.desk.task_page(who, task_query(filters, now))
    counts = await ctx.desk.queue_counts(who)
    workflows, states = _choices(ctx, filters.workflow)
    first = (filters.page - 1) * PAGE_SIZE
    return page(
        request,
        "inbox.html",
        session,
        rows=[_row(ctx.desk, task, who.actor, now) for task in found.tasks],
        total=found.total,
        first=first + 1 if found.tasks else 0,
        last=first + len(found.tasks),
        pages=max(1, -(-found.total // PAGE_SIZE)),
        counts=counts,
        filters=filters,
        workflows=workflows,
        states=states,
        orders=[(TaskOrder.DUE, "due, soonest first"), (TaskOrder.DUE_DESC, "due, latest first"),
                (TaskOrder.CREATED, "oldest first"), (TaskOrder.CREATED_DESC, "newest first")],
        due_choices=DUE_CHOICES,
        back=filters.url(),
        error=error or filters.problem,
        rendered_at=time.strftime("%H:%M:%S UTC", time.gmtime(now)),
    )  # fmt: skip


@router.get("/inbox")
async def inbox_page(request: Request, ctx: Context) -> Response:
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    asked = dict(request.query_params)
    filters = read_filters(asked)
    given = {name: value for name, value in asked.items() if value}
    if not filters.problem and given != dict(parse_qsl(filters.params())):
        return RedirectResponse(filters.url(), 303)  # the short, shareable form of the URL
    return await render_inbox(request, ctx, session, filters)


def back_filters(back: str) -> Filters:
    """The inbox filters a posted ``back`` URL carries (anything but an inbox URL: none)."""
    parts = urlsplit(back)
    if parts.scheme or parts.netloc or parts.path != "/dashboard/inbox":
        return Filters()
    return read_filters(dict(parse_qsl(parts.query)))


@router.post("/tasks/{task_id}/claim")
async def claim_form(request: Request, ctx: Context, task_id: RowId) -> Response:
    return await _claim_or_release(request, ctx, task_id, release=False)


@router.post("/tasks/{task_id}/release")
async def release_form(request: Request, ctx: Context, task_id: RowId) -> Response:
    return await _claim_or_release(request, ctx, task_id, release=True)


async def _claim_or_release(request: Request, ctx: Any, task_id: int, release: bool) -> Response:
    """Claim or release from the list, under the API's rules; a refusal shows on the list."""
    checked = await signed_form(request)
    if isinstance(checked, Response):
        return checked
    session, form = checked
    filters = back_filters(form.get("back", ""))
    who = principal_of(session.token)
    try:
        if release:
            await ctx.desk.release(task_id, who)
        else:
            await ctx.desk.claim(task_id, who)
    except StatewiseError as exc:
        return await render_inbox(request, ctx, session, filters, public_message(exc))
    return RedirectResponse(filters.url(), 303)
