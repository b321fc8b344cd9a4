"""Who may see a page or post a form: the signed-in session, its CSRF secret, its role.

A refused request gets a page, not bare text: ``refusal`` renders what is wrong and what to
do about it inside the dashboard's frame, with status 403.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from statewise.actions.principal import Principal
from statewise.definition.model import Role
from statewise.service.auth import (
    csrf_ok,
    current_session,
    principal_of,
)
from statewise.service.pages.rendering import page
from statewise.store.base import Session

SIGNED_OUT = (
    "You are signed out (or your session ended), so nothing was sent. "
    "Sign in again, then repeat what you were doing."
)
STALE_FORM = (
    "This form's security token (CSRF) is missing or out of date, so nothing was changed. "
    "Go back, reload the page and send the form again."
)


async def signed_in(request: Request) -> Session | Response:
    session = await current_session(request)
    return session if session is not None else RedirectResponse("/dashboard/login", 303)


def role_needed(session: Session, role: Role, what: str) -> str:
    """The refusal of ``what`` to a session whose role is below ``role``: who, and what to do."""
    token = session.token
    return (
        f"{what} needs the {role.value} role; you are signed in as {token.name} "
        f"({token.role.value}). Ask an admin for a token with the {role.value} role."
    )


def refusal(
    request: Request, session: Session | None, message: str, status: int = 403
) -> HTMLResponse:
    """A styled page saying why a request was refused and what to do (403 by default)."""
    answer = page(request, "refused.html", session, message=message, title="refused")
    answer.status_code = status
    return answer


async def signed_form(request: Request) -> tuple[Session, dict[str, str]] | HTMLResponse:
    """A posted form from a signed-in session carrying its CSRF secret, or the refusal page."""
    session = await current_session(request)
    posted = {k: str(v) for k, v in (await request.form()).items()}
    if session is None:
        return refusal(request, None, SIGNED_OUT)
    if not csrf_ok(session, posted.get("csrf", "")):
        return refusal(request, session, STALE_FORM)
    return session, posted


async def operator_form(request: Request) -> tuple[Principal, Session, dict[str, str]] | Response:
    """A posted operator form (bulk, what-if, an item's actions): who, their session, its fields.

    The session, the form's CSRF token and the operator role are checked first, so every such
    form refuses alike: a 403 page naming what is wrong.
    """
    checked = await signed_form(request)
    if isinstance(checked, Response):
        return checked
    session, posted = checked
    if not session.token.role.allows(Role.OPERATOR):
        needed = role_needed(session, Role.OPERATOR, "This form")
        return refusal(request, session, f"{needed} Nothing was changed.")
    return principal_of(session.token), session, posted
