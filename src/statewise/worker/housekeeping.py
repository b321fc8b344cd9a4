"""Housekeeping a long-running process does beside its work: applying the retention policies.

``statewise worker`` and ``statewise serve`` apply the workflows' ``retention:`` policies when
they start and then every ``--prune-every`` (an hour by default; ``--no-prune`` turns it off),
so an operator need not schedule ``statewise prune``. Many processes may do it on one
PostgreSQL: every item is checked again under lock, so two prunes at once prune each item
once and the later one finds little left. A round that fails is logged and tried again at the
next one; it never stops the process's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from statewise.actions.retention import POLICY_ACTOR, PruneReport, policy_rules, prune
from statewise.errors import StatewiseError
from statewise.store.base import Store
from statewise.worker.background import beside

PRUNE_EVERY = 3600.0
logger = logging.getLogger("statewise.retention")


@contextlib.asynccontextmanager
async def pruning(
    store: Store, every: float | None, clock: Callable[[], float] = time.time
) -> AsyncIterator[None]:
    """Apply the retention policies at once and every ``every`` seconds while the block runs.

    ``every`` None does nothing. Leaving the block stops the rounds (a round in progress
    stops between two pages; each page is its own transaction).
    """
    if every is None:
        yield
        return
    async with beside(_keep_pruning(store, every, clock), "statewise-retention"):
        yield


async def _keep_pruning(store: Store, every: float, clock: Callable[[], float]) -> None:
    while True:
        await prune_by_policy(store, clock())
        await asyncio.sleep(every)


async def prune_by_policy(store: Store, now: float) -> PruneReport | None:
    """One round of the policies, logged; None when it failed (logged with the cause)."""
    try:
        rules = await policy_rules(store, now)
        report = await prune(store, rules, now=now, actor=POLICY_ACTOR, dry_run=False)
    except Exception as exc:  # a failed round must never stop the work; the next one retries
        logger.error(
            "retention: the policies could not be applied this round: %s",
            exc,
            exc_info=None if isinstance(exc, StatewiseError) else exc,  # a bug: trace it
        )
        return None
    for name, why in report.skipped.items():
        logger.warning("retention: the policy of %s cannot be read: %s", name, why)
    for line in report.lines:
        if line.figures.items:
            logger.info(
                "retention: pruned the %s of %d item(s) of %s (%s), %d bytes",
                line.rule.what.value,
                line.figures.items,
                line.rule.workflow,
                line.rule.reason,
                line.figures.bytes,
            )
    return report
