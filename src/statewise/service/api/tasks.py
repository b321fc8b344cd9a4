"""Human tasks: the inbox, one task with its form, claim, release and decide."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from statewise.actions import TaskDesk
from statewise.actions.inspection import task_json
from statewise.service.api.items import item_summary
from statewise.service.api.models import Decide, RowId
from statewise.service.auth import Context, Reviewer, Viewer
from statewise.store.base import Task, TaskStatus

router = APIRouter(prefix="/api/tasks", tags=["tasks"])


def task_view(desk: TaskDesk, task: Task) -> dict[str, Any]:
    """A task with what a person needs to decide it: title, outcomes, form.

    A task this process cannot load is listed all the same, flagged ``loadable: false`` with
    the reason in ``problem``, and nothing to decide with.
    """
    problem = desk.unloadable(task)
    if problem is not None:
        return {**task_json(task), "title": task.state, "outcomes": [], "form": {},
                "loadable": False, "problem": problem}  # fmt: skip
    return {
        **task_json(task),
        "title": desk.title(task),
        "outcomes": list(desk.outcomes(task)),
        "form": desk.form(task),
        "loadable": True,
        "problem": None,
    }


@router.get("", summary="The inbox: tasks in the token's queues, oldest first")
async def inbox(
    ctx: Context,
    who: Viewer,
    queue: str | None = None,
    status: TaskStatus | None = TaskStatus.OPEN,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> list[dict[str, Any]]:
    tasks = await ctx.desk.inbox(who, queue, status, limit, offset)
    return [task_view(ctx.desk, task) for task in tasks]


@router.get("/{task_id}", summary="One task")
async def get_task(task_id: RowId, ctx: Context, _: Viewer) -> dict[str, Any]:
    return task_view(ctx.desk, await ctx.store.get_task(task_id))


@router.post("/{task_id}/claim", summary="Claim a task (the claim expires)")
async def claim(task_id: RowId, ctx: Context, who: Reviewer) -> dict[str, Any]:
    return task_view(ctx.desk, await ctx.desk.claim(task_id, who))


@router.post("/{task_id}/release", summary="Give a claimed task back")
async def release(task_id: RowId, ctx: Context, who: Reviewer) -> dict[str, Any]:
    return task_view(ctx.desk, await ctx.desk.release(task_id, who))


@router.post("/{task_id}/decide", summary="Decide a task with an outcome, comment and form data")
async def decide(task_id: RowId, body: Decide, ctx: Context, who: Reviewer) -> dict[str, Any]:
    item = await ctx.desk.decide(task_id, who, body.outcome, body.comment, body.data)
    return {
        "task": task_view(ctx.desk, await ctx.store.get_task(task_id)),
        "item": item_summary(item),
    }
