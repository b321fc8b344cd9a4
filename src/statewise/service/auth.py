"""Tokens, roles and dashboard sessions: who may do what, without a secret ever being kept.

A token is ``sw_`` and 32 random bytes; the store keeps only its SHA-256, so a stolen
database holds no usable token. API requests carry it as ``Authorization: Bearer``; the
dashboard trades it once for a session cookie (HttpOnly, SameSite=Strict) whose id is stored
hashed too, with a CSRF secret that every form must send back. Secrets never reach a log line,
an error body or the audit trail, which names a token by its name only.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from statewise.actions import Principal
from statewise.definition.model import Role
from statewise.service.context import ServiceContext
from statewise.service.security import same_secret
from statewise.store.base import Session, Token

TOKEN_PREFIX = "sw_"
SESSION_COOKIE = "statewise_session"
SESSION_SECONDS = 12 * 3600
bearer = HTTPBearer(auto_error=False, description="A token from `statewise token create`.")


def new_secret() -> str:
    """A fresh token secret, shown once to whoever creates it."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """What the store keeps of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def context(request: Request) -> ServiceContext:
    """The service context the app was created with."""
    found: ServiceContext = request.app.state.context
    return found


Context = Annotated[ServiceContext, Depends(context)]


def principal_of(token: Token) -> Principal:
    """The principal a stored token stands for."""
    return Principal(token.name, token.role, token.queues)


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting requests whose bearer token holds ``role`` (or a higher one)."""

    async def check(
        ctx: Context,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise _unauthorised("this endpoint needs `Authorization: Bearer TOKEN`")
        token = await ctx.store.find_token(hash_secret(credentials.credentials), ctx.clock())
        if token is None:
            raise _unauthorised("the token is unknown or revoked")
        return _allowed(token, role)

    return check


def _allowed(token: Token, role: Role) -> Principal:
    if not token.role.allows(role):
        raise HTTPException(
            403,
            detail=f"this needs the {role.value} role; token {token.name!r} is {token.role.value}",
        )
    return principal_of(token)


def _unauthorised(message: str) -> HTTPException:
    return HTTPException(401, detail=message, headers={"WWW-Authenticate": "Bearer"})


Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Reviewer = Annotated[Principal, Depends(require(Role.REVIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


async def sign_in(ctx: ServiceContext, secret: str) -> tuple[str, Session] | None:
    """Trade a token for a new session; the cookie value and the session, or None."""
    token = await ctx.store.find_token(hash_secret(secret.strip()), ctx.clock())
    if token is None:
        return None
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    expires_at = ctx.clock() + SESSION_SECONDS
    await ctx.store.create_session(hash_secret(cookie), token.id, csrf, expires_at)
    return cookie, Session(token, csrf, expires_at)


async def current_session(request: Request) -> Session | None:
    """The signed-in session of a dashboard request, if its cookie names a live one."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    ctx = context(request)
    return await ctx.store.find_session(hash_secret(cookie), ctx.clock())


async def sign_out(request: Request) -> None:
    """End the session the request's cookie names."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await context(request).store.delete_session(hash_secret(cookie))


def csrf_ok(session: Session, sent: str | None) -> bool:
    """Whether a form sent back its session's CSRF secret."""
    return same_secret(session.csrf, sent)
