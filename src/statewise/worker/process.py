"""A long-lived worker process: run a catalog's work until SIGTERM, then drain.

Many of these run against one PostgreSQL on many hosts. Each claims leased work of the
versions it holds, heartbeats while commands run, commits only while its lease and the item's
``seq`` hold, and on SIGTERM (or SIGINT) stops claiming, lets running commands finish and
commit for up to ``drain`` seconds, and hands back the rest.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from statewise.store.base import Store
from statewise.worker.catalog import Catalog
from statewise.worker.limits import ConcurrencyLimits
from statewise.worker.runner import Runner

logger = logging.getLogger("statewise.worker")


async def serve(
    store: Store,
    catalog: Catalog,
    *,
    concurrency: int,
    lease_seconds: float,
    drain: float,
    limits: ConcurrencyLimits | None = None,
) -> None:
    """Run until a stop signal, then drain within ``drain`` seconds."""
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
    try:
        await runner.run(stop=stop, drain=drain)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    logger.info("worker %s stopped", runner.owner)
