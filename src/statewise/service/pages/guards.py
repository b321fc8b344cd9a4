"""Who may see a page or post a form: the signed-in session, its CSRF secret, its role."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from statewise.actions.principal import Principal
from statewise.definition.model import Role
from statewise.service.auth import (
    csrf_ok,
    current_session,
    principal_of,
)
from statewise.store.base import Session


async def signed_in(request: Request) -> Session | Response:
    session = await current_session(request)
    return session if session is not None else RedirectResponse("/dashboard/login", 303)


async def operator(request: Request, csrf: str) -> Principal | str:
    session = await current_session(request)
    if session is None:
        return "sign in first"
    if not csrf_ok(session, csrf):
        return "the form's CSRF token is missing or wrong; reload the page"
    if not session.token.role.allows(Role.OPERATOR):
        return "this needs the operator role"
    return principal_of(session.token)


async def operator_form(request: Request) -> tuple[Principal, Session, dict[str, str]] | Response:
    """A posted operator form (bulk, what-if): who posted it, their session and its fields.

    The session, the form's CSRF token and the operator role are checked first, so every such
    form refuses alike: a 403 naming what is wrong.
    """
    posted = {k: str(v) for k, v in (await request.form()).items()}
    who = await operator(request, posted.get("csrf", ""))
    if isinstance(who, str):
        return Response(who, status_code=403)
    session = await current_session(request)
    assert session is not None  # _operator checked it
    return who, session, posted
