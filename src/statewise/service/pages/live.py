"""Live figures as small JSON with an ETag: what keeps an open dashboard tab current cheaply.

``static/live.js`` polls a page's figures endpoint with ``If-None-Match``; an unchanged answer
is a bodiless 304, and the script backs off while nothing changes or the tab is hidden. The
``layout`` names the set of figures: when a deployment adds a workflow or a state, it changes
and the script reloads the page instead of patching numbers into rows that are not there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import Response

from statewise.service.auth import current_session
from statewise.service.pages.figures import Figure

HEADERS = {"Cache-Control": "no-cache"}


def layout(figures: Mapping[str, Figure]) -> str:
    """A short fingerprint of which figures a page shows (not of their values)."""
    return _digest("\n".join(sorted(figures)))


def figures_answer(request: Request, figures: Mapping[str, Figure], now: float) -> Response:
    """The figures as JSON, or a 304 when the client's ETag says it has them already.

    The body also says the server's time ``now``, against which the page turns moments into
    ages; the ETag covers the figures alone, so the clock moving on is not a change.
    """
    shown = json.dumps({"layout": layout(figures), "figures": figures}, sort_keys=True)
    etag = f'"{_digest(shown)}"'
    headers = {**HEADERS, "ETag": etag}
    if etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    body = json.dumps({"layout": layout(figures), "figures": figures, "now": now})
    return Response(body, media_type="application/json", headers=headers)


async def signed_out(request: Request) -> Response | None:
    """A 401 for a figures request without a session (the script then asks to sign in)."""
    if await current_session(request) is None:
        return Response('{"error": "signed out"}', 401, HEADERS, "application/json")
    return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]
