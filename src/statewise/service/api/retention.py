"""Retention: prune finished items' outputs or history, by the policies or by one age."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from statewise.actions.retention import age_rules, policy_rules, prune
from statewise.service.api.models import Prune
from statewise.service.auth import Admin, Context
from statewise.store.retention import Prunable

router = APIRouter(prefix="/api", tags=["retention"])


@router.post(
    "/prune", summary="Prune finished items' outputs or history (admins; dry run by default)"
)
async def prune_finished(body: Prune, ctx: Context, who: Admin) -> dict[str, Any]:
    """The figures per workflow; an archive file is the command line's (``--archive``)."""
    now = ctx.clock()
    if body.finished_before is None:
        rules = await policy_rules(ctx.store, now, workflow=body.workflow, what=body.what)
    else:
        what = body.what or Prunable.OUTPUTS
        rules = await age_rules(
            ctx.store, body.finished_before, now, workflow=body.workflow, what=what
        )
    report = await prune(ctx.store, rules, now=now, actor=who.actor, dry_run=body.dry_run)
    return report.json()
