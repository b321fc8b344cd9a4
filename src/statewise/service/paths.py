"""Item keys in URLs: any key is one path segment, encoded on the way out, decoded exactly once.

A key is user data and may hold ``%``, ``/``, ``?``, ``#`` or any character. Every URL the
service builds quotes it with nothing left safe (``segment``), so ``inv%41`` travels as
``inv%2541`` and ``a/b`` as ``a%2Fb``. The server decodes a request path before routing,
which would turn ``a%2Fb`` back into two segments and decode ``%2541`` only halfway.
``KeyedPaths`` therefore routes on the raw path with ``%2F`` and ``%25`` left encoded, and
the ``segment`` path convertor decodes each parameter once: what the client encoded is
exactly what the handler gets, and no key can reach another item.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

_KEPT = re.compile(r"(%2[5fF])")
ITEM = "/items/{workflow:segment}/{key:segment}"
"""The route of one item, under /api and /dashboard."""
WORKFLOW = "/{name:segment}"
"""The route of one workflow, under /api/workflows."""


def segment(value: object) -> str:
    """``value`` as one URL path segment (or query value): every reserved character quoted."""
    return quote(str(value), safe="")


def routing_path(raw_path: bytes) -> str:
    """The request path with every escape decoded except ``%25`` and ``%2F``."""
    pieces = _KEPT.split(raw_path.decode("utf-8", "replace"))
    return "".join(
        piece.upper() if index % 2 else unquote(piece) for index, piece in enumerate(pieces)
    )


class SegmentConvertor(Convertor[str]):
    """One path segment, decoded once: ``{key:segment}``."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        """The key the client meant: its escapes decoded, once."""
        return unquote(value)

    def to_string(self, value: str) -> str:
        """The key as a segment, for ``url_path_for``."""
        return segment(value)


register_url_convertor("segment", SegmentConvertor())


class KeyedPaths:
    """ASGI middleware: route on ``routing_path`` so that ``{name:segment}`` decodes once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route this request on its raw path; other scopes (lifespan) pass untouched."""
        raw = scope.get("raw_path") if scope["type"] in ("http", "websocket") else None
        if raw:
            scope = {**scope, "path": routing_path(raw)}
        await self.app(scope, receive, send)
