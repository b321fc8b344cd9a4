"""The FastAPI application: the API, the dashboard and metrics on one store.

With ``workers`` the app's lifespan runs the context's runner under its supervisor until
shutdown, then drains it, so one process serves people and performs work (and applies the
retention policies every ``prune_every``); without, it only writes, beside separate
``statewise worker`` processes. Either way it takes up versions deployed while it runs
(``worker.refresh``), and runs the alert rounds when ``ctx.alerts`` is set. ``/healthz``
and ``/readyz`` (no token: orchestrators probe them) say whether the process answers and
whether it can work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from statewise.definition.model import Role
from statewise.observe.alerting import alerting
from statewise.observe.endpoint import metrics_router
from statewise.observe.health import LIVE, readiness
from statewise.service import errors
from statewise.service.api import (
    admin,
    alerts,
    items,
    quality,
    retention,
    simulation,
    tasks,
    workflows,
)
from statewise.service.auth import Context, require
from statewise.service.context import ServiceContext
from statewise.service.limits import BodyLimit
from statewise.service.pages import ROUTERS
from statewise.service.paths import KeyedPaths
from statewise.service.security import SecurityHeaders
from statewise.worker.housekeeping import pruning
from statewise.worker.refresh import refreshing

DRAIN_SECONDS = 10.0
STATIC = Path(__file__).parent / "static"


def create_app(ctx: ServiceContext) -> FastAPI:
    """The service for ``ctx``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        definitions = lambda: ctx.catalog.definitions  # noqa: E731 (read at each round)
        async with (
            refreshing(ctx.refresh, ctx.refresh_every),
            alerting(ctx.store, definitions, ctx.deliverer),
        ):
            if ctx.supervisor is None:
                yield
                return
            stop = asyncio.Event()
            work = asyncio.create_task(ctx.supervisor.run(stop, drain=DRAIN_SECONDS))
            try:
                async with pruning(ctx.store, ctx.prune_every):
                    yield
            finally:
                stop.set()
                await work

    app = FastAPI(
        title="statewise",
        summary="AI workflows as durable state machines: items, human tasks, operations.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.context = ctx
    app.add_middleware(KeyedPaths)
    app.add_middleware(SecurityHeaders)
    errors.install(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=ctx.input_limits.max_body_bytes,
        message=errors.too_large(ctx.input_limits.max_body_bytes),
    )
    for module in (workflows, items, tasks, admin, quality, retention, simulation, alerts):
        app.include_router(module.router)
    for router in ROUTERS:
        app.include_router(router)
    app.add_api_route("/", _to_dashboard, include_in_schema=False)
    app.add_api_route("/healthz", _alive, tags=["health"], summary="The process answers")
    app.add_api_route(
        "/readyz",
        _ready,
        tags=["health"],
        summary="Store reachable, workers running, no quarantine flood (else 503)",
        responses={503: {"description": "A check failed; the body names it"}},
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(
        metrics_router(ctx.metrics),
        tags=["metrics"],
        dependencies=[Depends(require(Role.VIEWER))],
    )
    return app


async def _to_dashboard() -> RedirectResponse:
    """The site's root is the dashboard: a person opening the bare address lands there."""
    return RedirectResponse("/dashboard", status_code=307)


async def _alive() -> dict[str, str]:
    """Liveness: answering is the whole check."""
    return LIVE


async def _ready(ctx: Context) -> JSONResponse:
    """Readiness: 200 when every check passed, else 503; the body names each check."""
    found = await readiness(ctx.store, ctx.supervisor, ctx.readiness, ctx.clock())
    return JSONResponse(found.body(), status_code=found.status_code)
