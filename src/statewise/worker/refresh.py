"""Keeping a long-running process's catalog in step with the store, so a deploy needs no restart.

``statewise serve`` and ``statewise worker`` load the stored versions when they start, then
every ``--refresh-every`` seconds (5 by default) read the store's stamps, (name, version,
content hash, command modules) of each stored version, in one small query that reads no
source, and compare them with the stamps their catalog was loaded from. Only when they differ
is the catalog loaded again, with the same modules, and handed to the process: its runner
claims the new versions' work from its next loop pass, and the service answers with them.

A version whose commands no module of this process registers is skipped, logged once with
the reason, and shown as not ``held``; its work is never claimed here, so it waits for a
process that has those commands. A refresh that fails is logged and tried again at the next
round (one whose cause is not an outage only once the store changes again); it never stops
the work, which goes on with the catalog the process has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from statewise.errors import StatewiseError, TransientStoreError
from statewise.store.base import Store, WorkflowStamp
from statewise.worker.background import beside
from statewise.worker.catalog import Catalog

REFRESH_EVERY = 5.0
logger = logging.getLogger("statewise.worker")

Load = Callable[[Store], Awaitable[Catalog]]
"""How a process loads its catalog from a store (its modules, its agent settings)."""


class CatalogRefresh:
    """One process's catalog, loaded again by ``load`` whenever the stored versions change.

    ``adopt`` hands each new catalog to whatever works with it (a runner, a service).
    """

    def __init__(
        self, store: Store, catalog: Catalog, load: Load, adopt: Callable[[Catalog], None]
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.load = load
        self.adopt = adopt
        self._refused: tuple[WorkflowStamp, ...] | None = None
        self._one_at_a_time = asyncio.Lock()  # the round and a request may ask at once

    async def refresh(self) -> bool:
        """Load and adopt the catalog again if the store's versions changed; whether it did.

        Raises what loading raised; a cause that is not an outage is not tried again until
        the stored versions change once more.
        """
        async with self._one_at_a_time:
            return await self._refresh()

    async def _refresh(self) -> bool:
        stamp = tuple(await self.store.workflow_stamps())
        if stamp in (self.catalog.stamp, self._refused):
            return False
        try:
            catalog = await self.load(self.store)
        except TransientStoreError:
            raise
        except StatewiseError:
            self._refused = stamp
            raise
        self._report(catalog)
        self.catalog = catalog
        self.adopt(catalog)
        return True

    async def try_refresh(self) -> bool:
        """``refresh``, with a failure logged instead of raised: the work goes on regardless."""
        try:
            return await self.refresh()
        except Exception as exc:  # a failed refresh must never stop the work; the next retries
            logger.error(
                "the stored workflows could not be loaded again: %s",
                exc,
                exc_info=None if isinstance(exc, StatewiseError) else exc,  # a bug: trace it
            )
            return False

    def _report(self, new: Catalog) -> None:
        """Log what the new catalog holds or skips that the old one did not."""
        before = set(self.catalog.held())
        for ref in new.held():
            if ref not in before:
                logger.info("now holds %s, stored since this process loaded its workflows", ref)
        for ref in before - set(new.held()):
            logger.warning("no longer holds %s: %s", ref, new.skipped.get(ref, "not stored"))
        for ref, why in new.skipped.items():
            if self.catalog.skipped.get(ref) != why:
                logger.warning(
                    "skips %s, which cannot run here: %s; its work waits for a process whose "
                    "--commands register its commands",
                    ref,
                    why,
                )


@contextlib.asynccontextmanager
async def refreshing(refresh: CatalogRefresh | None, every: float | None) -> AsyncIterator[None]:
    """Refresh the catalog every ``every`` seconds while the block runs (None: never)."""
    if refresh is None or every is None:
        yield
        return
    async with beside(_keep_refreshing(refresh, every), "statewise-refresh"):
        yield


async def _keep_refreshing(refresh: CatalogRefresh, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await refresh.try_refresh()
