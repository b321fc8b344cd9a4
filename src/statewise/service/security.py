"""Browser-facing defences: security headers on every answer, and the sign-in form's CSRF check.

The dashboard runs no inline script or style, so its Content-Security-Policy allows only this
origin's files: an injected ``<script>`` or ``onerror=`` cannot run even if escaping ever
failed. No page may be framed (clickjacking), no answer sniffed into another type, and no
URL, which can hold item keys, leaks to other sites in a Referer.

The sign-in form is protected before any session exists (login CSRF, where another site signs
a victim into the attacker's account): the form page sets a random cookie and puts the same
value in the form; a sign-in whose form value does not match that cookie is refused.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# Swagger UI and ReDoc load their own inline script: those two pages get no CSP.
DOCS = ("/docs", "/redoc")
LOGIN_CSRF_COOKIE = "statewise_login_csrf"
LOGIN_PATH = "/dashboard/login"


def headers_for(path: str) -> dict[str, str]:
    """The security headers an answer at ``path`` carries."""
    if path.startswith(DOCS):
        return HEADERS
    return {**HEADERS, "Content-Security-Policy": CSP}


class SecurityHeaders:
    """ASGI middleware adding ``headers_for`` to every HTTP answer, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers as the answer starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def login_csrf(request: Request) -> str:
    """The sign-in form's CSRF value: the browser's cookie, or a new one."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def keep_login_csrf(request: Request, answer: Response, value: str) -> None:
    """Set the sign-in CSRF cookie (HttpOnly, SameSite=Strict, Secure under TLS)."""
    answer.set_cookie(
        LOGIN_CSRF_COOKIE,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=LOGIN_PATH,
    )


def login_csrf_ok(request: Request, sent: str) -> bool:
    """Whether the sign-in form sent back the value its cookie holds."""
    return same_secret(request.cookies.get(LOGIN_CSRF_COOKIE), sent)


def same_secret(expected: str | None, sent: str | None) -> bool:
    """A constant-time comparison of two non-empty secrets, whatever characters were sent.

    ``hmac.compare_digest`` raises on non-ASCII text, which would turn a forged form into a
    server error: compare the UTF-8 bytes instead.
    """
    if not expected or not sent:
        return False
    return hmac.compare_digest(expected.encode(), sent.encode())
