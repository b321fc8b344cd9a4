"""What-if replay over HTTP: post a changed definition's YAML, get what it would have done.

Operators only: a simulation reads every selected item's whole audit trail and replays it,
which is the heaviest read the service offers, and it is how a change to a live process is
decided. It writes nothing, calls no command and no model.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from statewise.actions.simulation import DEFAULT_LIMIT, Selection, report_json, simulate
from statewise.definition import loads
from statewise.engine.item import ItemStatus
from statewise.service.auth import Context, Operator

router = APIRouter(prefix="/api", tags=["simulation"])
MAX_YAML = 1_000_000


class Simulate(BaseModel):
    """A changed definition, as YAML text, and which past items to replay through it."""

    model_config = ConfigDict(extra="forbid")

    yaml: str = Field(min_length=1, max_length=MAX_YAML, description="The changed workflow")
    workflow: str | None = Field(default=None, description="Default: the YAML's workflow name")
    version: int | None = Field(default=None, ge=1, description="Only items of this version")
    state: str | None = Field(default=None, description="Only items now in this state")
    status: ItemStatus | None = Field(default=None, description="Only items with this status")
    since: str | None = Field(default=None, description="Only items created in: 7d, 12h, 3600")
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=DEFAULT_LIMIT)


@router.post(
    "/simulate",
    summary="Replay past items' recorded results through a changed definition (writes nothing)",
)
async def simulate_change(body: Simulate, ctx: Context, _: Operator) -> dict[str, Any]:
    """Endings and task queues before and after, cost difference, changed paths, needs, advice.

    An item whose new path reaches a command that never ran for it is listed under
    ``needs``: nothing is guessed. Invalid YAML is a 422 naming each problem's line.
    """
    definition = loads(body.yaml, file="posted.yaml")
    selection = Selection(
        body.workflow, body.version, body.state, body.status, body.since, body.limit
    )
    report, advice = await simulate(ctx.store, definition, selection, ctx.clock())
    return report_json(report, advice)
