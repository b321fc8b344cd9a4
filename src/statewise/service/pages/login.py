"""Signing in and out of the dashboard: a token traded for an HttpOnly session cookie."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from statewise.service.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    Context,
    csrf_ok,
    current_session,
    sign_in,
    sign_out,
)
from statewise.service.pages.rendering import page
from statewise.service.security import keep_login_csrf, login_csrf, login_csrf_ok

router = APIRouter(prefix="/dashboard", include_in_schema=False)


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
    answer = page(request, "login.html", None, error=error, login_csrf=csrf)
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
