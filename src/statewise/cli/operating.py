"""Commands for operators: long-lived workers, and the invariant every store must keep."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import typer

from statewise.cli.alerting import (
    DEFAULT_ALERTS_EVERY,
    AlertsEveryOption,
    AlertsOption,
    alert_settings,
)
from statewise.cli.common import (
    DEFAULT_DB,
    MAX_SECONDS,
    DbOption,
    ReadyMaxFailedOption,
    ReadyWindowOption,
    RefreshEveryOption,
    RestartDelayOption,
    RestartsOption,
    age,
    app,
    console,
    emit_table,
    fail,
    nothing_deployed,
    run_async,
    with_store,
)
from statewise.cli.retention import (
    DEFAULT_PRUNE_EVERY,
    PruneEveryOption,
    PruneOption,
    prune_interval,
)
from statewise.observe.health import ReadinessPolicy
from statewise.store import Store, open_store
from statewise.worker.catalog import Catalog, load_catalog
from statewise.worker.limits import ConcurrencyLimits
from statewise.worker.process import serve
from statewise.worker.refresh import REFRESH_EVERY
from statewise.worker.registry import load_registry
from statewise.worker.supervisor import RestartPolicy


@app.command()
def worker(
    db: DbOption = DEFAULT_DB,
    commands: Annotated[
        list[str] | None,
        typer.Option(
            "--commands",
            "-c",
            help="Importable module (dotted name) exposing a `registry`; every host names the "
            "same modules. Repeatable.",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Commands running at once.")] = 64,
    lease: Annotated[
        float,
        typer.Option(min=0.5, max=MAX_SECONDS, help="Seconds a claim lasts without a heartbeat."),
    ] = 30.0,
    drain: Annotated[
        float,
        typer.Option(
            min=0, max=MAX_SECONDS, help="On SIGTERM, seconds running commands get to finish."
        ),
    ] = 30.0,
    state_limit: Annotated[
        list[str] | None, typer.Option(help="STATE=N: at most N commands of STATE at once.")
    ] = None,
    agent_limit: Annotated[
        list[str] | None, typer.Option(help="AGENT=N: at most N runs of AGENT at once.")
    ] = None,
    model_concurrency: Annotated[
        int, typer.Option(min=1, help="Model requests in flight per provider.")
    ] = 8,
    restarts: RestartsOption = 5,
    restart_delay: RestartDelayOption = 1.0,
    health_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Serve /healthz and /readyz on this port."),
    ] = None,
    health_host: Annotated[
        str, typer.Option(help="Address of the --health-port probes.")
    ] = "127.0.0.1",
    ready_max_failed: ReadyMaxFailedOption = 50,
    ready_window: ReadyWindowOption = 600.0,
    prune: PruneOption = True,
    prune_every: PruneEveryOption = DEFAULT_PRUNE_EVERY,
    refresh_every: RefreshEveryOption = REFRESH_EVERY,
    alerts: AlertsOption = True,
    alerts_every: AlertsEveryOption = DEFAULT_ALERTS_EVERY,
) -> None:
    """Run work from the store until SIGTERM, beside any number of other workers.

    Start as many as you like, on as many hosts, against one PostgreSQL. Each holds the
    stored workflow versions its modules can run and claims only their work; versions
    deployed meanwhile (or after it started on an empty store) are taken up within
    --refresh-every seconds. A runner that
    stops is restarted with backoff; when it cannot be, the worker exits 1. The workflows'
    retention policies are applied at start and every --prune-every, and their alert rules
    judged (and due deliveries sent) every --alerts-every.
    """
    if not commands:
        fail("--commands names the module(s) whose registry runs the workflows", 2)
    pruning = prune_interval(prune, prune_every)
    alerting = alert_settings(alerts, alerts_every)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def load(store: Store) -> Catalog:
        return await load_catalog(
            store,
            commands or [],
            stored_modules=False,
            ai={"default_concurrency": model_concurrency},
        )

    async def work(store: Store) -> None:
        if not await store.workflow_stamps():
            nothing_deployed(db, "worker", refresh_every)
            catalog = Catalog([], load_registry(commands or []))
        else:
            catalog = await load(store)
            if not catalog.definitions:  # modules misnamed, most likely: say so at once
                skipped = "; ".join(f"{ref}: {why}" for ref, why in catalog.skipped.items())
                fail(f"these modules can run none of the stored workflows ({skipped})", 1)
        limits = ConcurrencyLimits.parse(state_limit or (), agent_limit or ())
        await serve(
            store,
            catalog,
            concurrency=concurrency,
            lease_seconds=lease,
            drain=drain,
            limits=limits,
            restarts=RestartPolicy(restarts, restart_delay),
            health=None if health_port is None else (health_host, health_port),
            ready=ReadinessPolicy(ready_window, ready_max_failed),
            prune_every=pruning,
            reload=load,
            refresh_every=refresh_every,
            alerts=alerting,
        )

    run_async(with_store(db, work))


db_app = typer.Typer(help="Look after a store's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(db: DbOption = DEFAULT_DB) -> None:
    """Apply the migrations the store lacks (safe while workers run); print its schema version."""

    async def upgrade() -> int:
        store = open_store(db)  # opening a store applies its missing migrations, under a lock
        try:
            return await store.schema_version()
        finally:
            await store.close()

    console.print(f"schema version {run_async(upgrade())}")


@app.command()
def check(
    db: DbOption = DEFAULT_DB,
    stalled_after: Annotated[
        float,
        typer.Option(
            min=0, help="Work due this many seconds ago that no runner took means none runs."
        ),
    ] = 300.0,
) -> None:
    """Check the invariant and that a runner works: exits 1 and lists what is wrong.

    The invariant: every active item has a pending command or timer, or waits. A command or
    timer due for more than ``--stalled-after`` seconds that no runner holds means no runner
    works this store (it crashed, or none was started). Nothing should ever be listed.
    """

    async def inspect(store: Store) -> int:
        now = time.time()
        stuck = await store.stuck_items()
        overdue = await store.overdue_work(now - stalled_after)
        if stuck:
            emit_table(
                ["workflow", "key", "state", "seq"],
                [[item.workflow, item.key, item.state, str(item.seq)] for item in stuck],
                title="active items with nothing pending",
            )
        if overdue:
            oldest = age(now - overdue.oldest_due) if overdue.oldest_due is not None else "?"
            console.print(
                f"stalled: {overdue.commands} command(s) and {overdue.timers} timer(s) have been "
                f"due for more than {stalled_after:g}s (the oldest for {oldest}) and no runner "
                "took them; start `statewise worker` or `statewise serve`, or see why it stopped"
            )
        if stuck or overdue:
            return 1
        console.print("ok: every active item has a pending command or timer, or waits")
        return 0

    if run_async(with_store(db, inspect)):
        raise typer.Exit(1)
