"""The dashboard: server-rendered pages over the same actions as the API, for people.

Pages need a signed-in session (a token traded for an HttpOnly cookie); every form carries
the session's CSRF secret and is refused without it, and the sign-in form a pre-session one
(``statewise.service.security``). Keys enter URLs only through the ``segment`` filter. Every
asset is served from this process. One module per page; ``rendering`` and ``guards`` are
what they share.
"""

from __future__ import annotations

from fastapi import APIRouter

from statewise.service.pages import (
    alerts,
    board,
    bulk,
    graph,
    inbox,
    items,
    login,
    quality,
    simulation,
    task,
    workflow,
)

ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router
    for module in (
        login,
        board,
        workflow,
        graph,
        items,
        inbox,
        task,
        quality,
        bulk,
        simulation,
        alerts,
    )
)
