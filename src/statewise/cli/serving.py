"""Commands for the HTTP service: ``statewise serve`` and ``statewise token``.

FastAPI and uvicorn are imported only when ``serve`` runs, so the rest of the command line
stays light and works without the ``service`` extra.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from statewise.actions.principal import name_problem, queues_problem
from statewise.cli.alerting import (
    DEFAULT_ALERTS_EVERY,
    AlertsEveryOption,
    AlertsOption,
    alert_settings,
)
from statewise.cli.common import (
    DEFAULT_DB,
    MAX_SECONDS,
    Col,
    CommandsOption,
    DbOption,
    FormatOption,
    ReadyMaxFailedOption,
    ReadyWindowOption,
    RefreshEveryOption,
    RestartDelayOption,
    RestartsOption,
    app,
    console,
    emit_table,
    errors,
    fail,
    id_argument,
    nothing_deployed,
    output_format,
    run_async,
    user_errors,
    when,
    with_store,
)
from statewise.cli.retention import (
    DEFAULT_PRUNE_EVERY,
    PruneEveryOption,
    PruneOption,
    prune_interval,
)
from statewise.cli.running import prepare
from statewise.definition.model import Role
from statewise.inputs import BODY_BYTES_ENV, DEPTH_CEILING, DEPTH_ENV, ITEM_BYTES_ENV, InputLimits
from statewise.observe.alerting import AlertSettings
from statewise.observe.health import ReadinessPolicy
from statewise.store import Store, open_store
from statewise.worker import load_registry
from statewise.worker.catalog import Catalog, load_catalog
from statewise.worker.refresh import REFRESH_EVERY
from statewise.worker.supervisor import RestartPolicy, Supervisor

_DEFAULT_LIMITS = InputLimits()
DEFAULT_ALERTS = AlertSettings()
tokens_app = typer.Typer(help="API tokens: create (shown once), list, revoke.")
app.add_typer(tokens_app, name="token")


@app.command()
def serve(
    db: DbOption = DEFAULT_DB,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    commands: CommandsOption = None,
    workers: Annotated[
        bool,
        typer.Option(
            "--workers/--no-workers",
            help="Also perform work in this process (default), or only serve the API.",
        ),
    ] = True,
    lease: Annotated[
        float, typer.Option(min=1, max=MAX_SECONDS, help="Work lease, seconds.")
    ] = 60.0,
    max_body_bytes: Annotated[
        int,
        typer.Option(envvar=BODY_BYTES_ENV, help="Largest request body; larger ones get 413."),
    ] = _DEFAULT_LIMITS.max_body_bytes,
    max_item_bytes: Annotated[
        int,
        typer.Option(
            envvar=ITEM_BYTES_ENV, help="Largest start, event or form data, as compact JSON."
        ),
    ] = _DEFAULT_LIMITS.max_item_bytes,
    max_depth: Annotated[
        int,
        typer.Option(
            envvar=DEPTH_ENV, help=f"Deepest nesting of that data (at most {DEPTH_CEILING})."
        ),
    ] = _DEFAULT_LIMITS.max_depth,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            "--proxy-headers/--no-proxy-headers",
            help="Trust X-Forwarded-Proto/For from --forwarded-allow-ips (default on).",
        ),
    ] = True,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Comma-separated proxy addresses (or networks, or *) whose X-Forwarded-* "
            "headers are trusted, e.g. your TLS proxy's; the scheme they report sets the "
            "session cookie's Secure flag.",
        ),
    ] = "127.0.0.1",
    restarts: RestartsOption = 5,
    restart_delay: RestartDelayOption = 1.0,
    ready_max_failed: ReadyMaxFailedOption = 50,
    ready_window: ReadyWindowOption = 600.0,
    prune: PruneOption = True,
    prune_every: PruneEveryOption = DEFAULT_PRUNE_EVERY,
    refresh_every: RefreshEveryOption = REFRESH_EVERY,
    alerts: AlertsOption = True,
    alerts_every: AlertsEveryOption = DEFAULT_ALERTS_EVERY,
) -> None:
    """Serve the JSON API (OpenAPI at /openapi.json) and the dashboard, with workers.

    /healthz answers while the process is up; /readyz answers 503 while the store is
    unreachable, the workers are not running or too many items failed lately. Workers that
    stop are restarted; when they cannot be, the process exits non-zero. With workers, the
    workflows' retention policies are applied at start and every --prune-every. Versions
    deployed meanwhile are taken up within --refresh-every seconds, without a restart. The
    alert rules are judged, and their deliveries sent, every --alerts-every.
    """
    settings = alert_settings(alerts, alerts_every)
    with user_errors():
        limits = InputLimits(max_depth, max_item_bytes, max_body_bytes)
    # The process's own news (versions taken up or skipped, retention rounds) beside uvicorn's.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    serve_store(
        db,
        host,
        port,
        commands or [],
        workers=workers,
        lease=lease,
        limits=limits,
        proxy=Proxy(proxy_headers, forwarded_allow_ips),
        restarts=RestartPolicy(restarts, restart_delay),
        readiness=ReadinessPolicy(ready_window, ready_max_failed),
        prune_every=prune_interval(prune, prune_every),
        refresh_every=refresh_every,
        alerts=settings,
    )


@dataclass(frozen=True, slots=True)
class Proxy:
    """Which reverse proxy's ``X-Forwarded-*`` headers uvicorn trusts for scheme and client."""

    headers: bool = True
    allow_ips: str = "127.0.0.1"


def serve_store(
    db: str,
    host: str,
    port: int,
    commands: list[str],
    *,
    workers: bool = True,
    lease: float = 60.0,
    limits: InputLimits | None = None,
    proxy: Proxy = Proxy(),
    restarts: RestartPolicy | None = None,
    readiness: ReadinessPolicy | None = None,
    prune_every: float | None = None,
    refresh_every: float = REFRESH_EVERY,
    alerts: AlertSettings | None = DEFAULT_ALERTS,
) -> None:
    """Serve one store until interrupted; FastAPI and uvicorn are imported only here.

    ``limits`` default to the environment's (``InputLimits.from_environment``). With workers
    and ``prune_every``, the retention policies are applied that often. The stored versions
    are checked every ``refresh_every`` seconds and new ones taken up; ``alerts`` (None: off)
    runs the alert rounds. Raises RunnerStopped
    (exit 1) when the workers stopped and could not be restarted.
    """
    try:
        import uvicorn

        from statewise.observe.tracing import configured_tracer_provider
        from statewise.service import ServiceContext, create_app
    except ImportError as exc:
        fail(
            f"statewise serve needs the service extra (pip install 'statewise[service]'): {exc}", 1
        )

    async def main() -> None:
        store = open_store(db)
        try:
            tracing = configured_tracer_provider()
            ai = {"tracer_provider": tracing} if tracing is not None else None
            catalog = await _catalog(store, commands, ai, db, refresh_every)
            ctx = ServiceContext(
                store,
                catalog,
                workers=workers,
                lease_seconds=lease,
                tracer_provider=tracing,
                input_limits=limits or InputLimits.from_environment(),
                restarts=restarts or RestartPolicy(),
                readiness=readiness or ReadinessPolicy(),
                prune_every=prune_every,
                reload=lambda store: load_catalog(store, commands, ai=ai),
                refresh_every=refresh_every,
                alerts=alerts,
            )
            config = uvicorn.Config(
                create_app(ctx),
                host=host,
                port=port,
                log_level="info",
                access_log=False,
                proxy_headers=proxy.headers,
                forwarded_allow_ips=proxy.allow_ips,
            )
            errors.print(
                f"statewise serving {', '.join(catalog.held()) or 'no workflows'} on "
                f"http://{host}:{port} "
                f"({'with' if workers else 'without'} workers)"
            )
            await _serve_while_working(uvicorn.Server(config), ctx.supervisor)
        finally:
            await store.close()

    run_async(main())


async def _catalog(
    store: Store, commands: list[str], ai: Mapping[str, Any] | None, db: str, every: float
) -> Catalog:
    """What the service runs; on an empty store nothing yet, and it says how to deploy."""
    if await store.workflows():
        catalog, _ = await prepare(store, None, commands, ai=ai)
        return catalog
    nothing_deployed(db, "service", every)
    return Catalog([], load_registry(commands))


async def _serve_while_working(server: Any, supervisor: Supervisor | None) -> None:
    """Serve until stopped, or until the workers give up: then stop serving and say why."""
    serving = asyncio.create_task(server.serve())
    if supervisor is None:
        await serving
        return
    gave_up = asyncio.create_task(supervisor.gave_up.wait())
    await asyncio.wait({serving, gave_up}, return_when=asyncio.FIRST_COMPLETED)
    gave_up.cancel()
    failure = supervisor.failure
    if failure is not None:
        server.should_exit = True
    await serving
    if failure is not None:
        raise failure


@tokens_app.command(name="create")
def token_create(
    role: Annotated[Role, typer.Option(help="viewer, reviewer, operator or admin.")],
    db: DbOption = DEFAULT_DB,
    name: Annotated[
        str | None,
        typer.Option(
            help="The identity claims and the audit trail record; unique among active tokens."
        ),
    ] = None,
    queue: Annotated[
        list[str] | None, typer.Option(help="Limit a reviewer to these task queues. Repeatable.")
    ] = None,
) -> None:
    """Create a token; it is printed once, on the last line, and stored only as a hash."""
    from statewise.service.auth import hash_secret, new_secret

    label = f"{role.value}-{secrets.token_hex(4)}" if name is None else name
    problem = name_problem(label)
    if problem is not None:
        fail(f"--name: {problem}", 2)
    problem = queues_problem(queue or [])
    if problem is not None:
        fail(f"--queue: {problem}", 2)
    secret = new_secret()

    async def create(store: Store) -> None:
        token = await store.create_token(label, role, hash_secret(secret), time.time(), queue or [])
        errors.print(f"token {token.id} ({token.name}, {token.role.value}); it is shown only once:")

    run_async(with_store(db, create))
    print(secret)


@tokens_app.command(name="list")
def token_list(db: DbOption = DEFAULT_DB, format: FormatOption = None) -> None:
    """Every token (never its secret)."""
    fmt = output_format(format)

    async def show(store: Store) -> None:
        found = await store.list_tokens()
        emit_table(
            ["id", "name", "role", Col("queues", prose=True), "last used", "revoked"],
            [
                [
                    str(token.id),
                    token.name,
                    token.role.value,
                    ", ".join(token.queues) or "all",
                    _when(token.last_used_at),
                    _when(token.revoked_at),
                ]
                for token in found
            ],
            fmt=fmt,
            json_rows=[
                {
                    "id": token.id,
                    "name": token.name,
                    "role": token.role.value,
                    "queues": list(token.queues),
                    "last_used_at": token.last_used_at,
                    "revoked_at": token.revoked_at,
                }
                for token in found
            ],
        )

    run_async(with_store(db, show))


@tokens_app.command(name="revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `token list`).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Revoke a token at once; its dashboard sessions end with it."""
    token_id = id_argument(token_id, "token")

    async def revoke(store: Store) -> None:
        token = await store.revoke_token(token_id, time.time())
        console.print(f"token {token.id} ({token.name}) revoked")

    run_async(with_store(db, revoke))


def _when(at: float | None) -> str:
    return "" if at is None else when(at)
