"""A long-lived worker process: run a catalog's work until SIGTERM, then drain.

Many of these run against one PostgreSQL on many hosts. Each claims leased work of the
versions it holds, heartbeats while commands run, commits only while its lease and the item's
``seq`` hold, and on SIGTERM (or SIGINT) stops claiming, lets running commands finish and
commit for up to ``drain`` seconds, and hands back the rest.

The runner runs under a ``Supervisor``: one that stops (a crash, a lock held elsewhere) is
restarted with backoff, and when it cannot be the process ends with ``RunnerStopped`` (exit
1). With ``health`` set, ``/healthz`` and ``/readyz`` answer on that address meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from statewise.observe.alerting import AlertSettings, Deliverer, alerting
from statewise.observe.health import ReadinessPolicy, readiness, serve_probes
from statewise.store.base import Store
from statewise.worker.catalog import Catalog
from statewise.worker.housekeeping import pruning
from statewise.worker.limits import ConcurrencyLimits
from statewise.worker.refresh import REFRESH_EVERY, CatalogRefresh, Load, refreshing
from statewise.worker.runner import Runner
from statewise.worker.supervisor import RestartPolicy, Supervisor

logger = logging.getLogger("statewise.worker")


async def serve(
    store: Store,
    catalog: Catalog,
    *,
    concurrency: int,
    lease_seconds: float,
    drain: float,
    limits: ConcurrencyLimits | None = None,
    restarts: RestartPolicy | None = None,
    health: tuple[str, int] | None = None,
    ready: ReadinessPolicy | None = None,
    prune_every: float | None = None,
    reload: Load | None = None,
    refresh_every: float | None = REFRESH_EVERY,
    alerts: AlertSettings | None = None,
) -> None:
    """Run until a stop signal, then drain within ``drain`` seconds.

    With ``prune_every``, the workflows' retention policies are applied at start and every
    ``prune_every`` seconds (``worker.housekeeping``). With ``reload``, the catalog is loaded
    again that way whenever the stored versions change, checked every ``refresh_every``
    seconds (``worker.refresh``), so the worker takes up versions deployed while it runs.
    With ``alerts``, the alert rules are judged and their deliveries sent that often
    (``observe.alerting``).

    Raises ``RunnerStopped`` when the runner stopped and could not be restarted.
    """
    runner = Runner(
        store,
        catalog.definitions,
        catalog.registry,
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        limits=limits,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logger.info("worker %s holds %s", runner.owner, ", ".join(catalog.held()) or "nothing")
    for ref, why in catalog.skipped.items():
        logger.warning("worker %s skips %s: %s", runner.owner, ref, why)
    supervisor = Supervisor(runner, restarts)
    refresh = None
    if reload is not None:
        refresh = CatalogRefresh(
            store, catalog, reload, lambda new: runner.hold(new.definitions, new.registry)
        )
    probes = None
    if health is not None:
        policy = ready or ReadinessPolicy()
        probes = await serve_probes(
            *health, lambda: readiness(store, supervisor, policy, time.time())
        )
        logger.info("worker %s answers /healthz and /readyz on %s:%d", runner.owner, *health)
    try:
        deliverer = None if alerts is None else Deliverer(store, alerts)
        async with (
            pruning(store, prune_every),
            refreshing(refresh, refresh_every),
            alerting(store, lambda: runner.definitions.values(), deliverer),
        ):
            await supervisor.run(stop, drain=drain)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if probes is not None:
            probes.close()
            await probes.wait_closed()
    if supervisor.failure is not None:
        raise supervisor.failure
    logger.info("worker %s stopped", runner.owner)
