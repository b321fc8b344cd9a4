"""The dashboard's what-if page: a stored workflow's YAML changed, replayed on its items.

The operator edits a threshold, a branch or a budget (or pastes other YAML) and sees what it
would have done to the items already run: the same report as ``statewise simulate`` and
``POST /api/simulate``. Like the API it needs the operator role to run, since a simulation
replays every selected item's record.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from statewise.actions.simulation import DEFAULT_LIMIT, Selection, report_json, simulate
from statewise.definition import loads
from statewise.definition.model import Definition
from statewise.errors import DefinitionError, StatewiseError
from statewise.service.auth import Context
from statewise.service.errors import public_message
from statewise.service.pages.guards import operator_form, signed_in
from statewise.service.pages.rendering import page
from statewise.store.base import Session, StoredWorkflow

router = APIRouter(prefix="/dashboard", include_in_schema=False)
_FIELDS = ("workflow", "yaml", "since", "state")


@router.get("/simulate")
async def simulate_page(
    request: Request, ctx: Context, workflow: str = "", version: int | None = None
) -> Response:
    """The form, with the chosen stored version's YAML ready to edit (default: the newest)."""
    session = await signed_in(request)
    if not isinstance(session, Session):
        return session
    stored = await ctx.store.workflows()
    name, _, number = workflow.rpartition("@")
    if name and number.isdigit():  # the form's choice, ``name@version``
        workflow, version = name, int(number)
    chosen = _chosen(stored, workflow, version)
    form = dict.fromkeys(_FIELDS, "")
    if chosen is None:
        return _show(request, session, stored, form)
    form.update(workflow=chosen.name, yaml=chosen.source)
    try:
        guards = _guards(loads(chosen.source, file=chosen.file))
    except DefinitionError:
        guards = []  # it no longer loads here; the form still lets the operator fix it
    return _show(request, session, stored, form, guards=guards, shown=chosen.version)


@router.post("/simulate")
async def simulate_form(request: Request, ctx: Context) -> Response:
    """Replay the selected items through the posted YAML and show the report."""
    checked = await operator_form(request)
    if isinstance(checked, Response):
        return checked
    _, session, posted = checked
    stored = await ctx.store.workflows()
    form = {name: posted.get(name, "") for name in _FIELDS}
    try:
        definition = loads(form["yaml"], file="posted.yaml")
        selection = Selection(
            workflow=form["workflow"] or None,
            state=form["state"] or None,
            since=form["since"] or None,
            limit=DEFAULT_LIMIT,
        )
        report, advice = await simulate(ctx.store, definition, selection, ctx.clock())
    except DefinitionError as exc:
        problems = [str(p) for p in exc.problems]
        return _show(request, session, stored, form, error="; ".join(problems))
    except StatewiseError as exc:
        return _show(request, session, stored, form, error=public_message(exc))
    found = report_json(report, advice)
    replayed = selection.workflow or definition.name
    return _show(
        request, session, stored, form, report=found, guards=_guards(definition), replayed=replayed
    )


def _chosen(
    stored: list[StoredWorkflow], workflow: str, version: int | None
) -> StoredWorkflow | None:
    """The version asked for, else the newest of the workflow asked for, else none."""
    named = [s for s in stored if s.name == workflow]
    if version is not None:
        named = [s for s in named if s.version == version]
    return max(named, key=lambda s: s.version, default=None)


def _guards(definition: Definition) -> list[tuple[str, str, str]]:
    """Every guarded transition as (state, target, condition): the numbers one may change."""
    return [
        (state.name, transition.target, transition.when.source)
        for state in definition.states.values()
        for transition in state.transitions
        if transition.when is not None
    ]


def _show(
    request: Request,
    session: Session,
    stored: list[StoredWorkflow],
    form: dict[str, str],
    *,
    report: dict[str, Any] | None = None,
    guards: list[tuple[str, str, str]] | None = None,
    replayed: str = "",
    shown: int | None = None,
    error: str = "",
) -> Response:
    versions = sorted((s.name, s.version) for s in stored)
    return page(
        request,
        "simulate.html",
        session,
        form=form,
        versions=versions,
        report=report,
        guards=guards or [],
        replayed=replayed,
        shown_version=shown,
        error=error,
    )
