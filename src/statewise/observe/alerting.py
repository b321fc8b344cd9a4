"""Alerts that reach someone: judge the rules, record episodes, deliver what is due.

Every ``statewise serve`` and ``statewise worker`` runs these rounds beside its work (every
30 s by default). A round reads only what its rules need (per-state counts for backlog rules,
the audit figures of each window for rate and entry rules, the invariant check for stuck
rules), hands the firing rules to the store, which opens, refreshes and resolves episodes so
that each is opened and resolved by one process, and then sends the deliveries that are due.
A failed attempt is tried again after an exponential backoff with jitter, capped, until
``max_attempts``; the schedule lives in the store, so a restarted process carries on with it.
A round that fails is logged and the next one tries again; it never stops the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from statewise.definition.model import Definition
from statewise.errors import StatewiseError
from statewise.observe.alerts import Alert, RuleKind, evaluate, evaluate_flow, newest, rule_windows
from statewise.observe.delivery import Answer, DestinationError, Request, post, request_for
from statewise.store.alerting import AlertRound, Attempt, ClaimedDelivery, Firing
from statewise.store.base import Store
from statewise.worker.background import beside

ALERT_EVERY = 30.0
PUBLIC_URL_ENV = "STATEWISE_PUBLIC_URL"
"""The address people reach the dashboard at, for the links in messages (default: none)."""
logger = logging.getLogger("statewise.alerts")

Definitions = Callable[[], Iterable[Definition]]
Sender = Callable[[Request, float], Awaitable[Answer]]
DeliveryObserver = Callable[[str, bool], None]
"""Told of each attempt: the destination's name and whether it was delivered."""


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """How often rounds run, and how deliveries are retried.

    The n-th failed attempt waits ``backoff * 2**(n-1)`` seconds, at most ``max_backoff``,
    times a random factor between 0.5 and 1 (so many processes do not retry in step); after
    ``max_attempts`` a delivery is given up and shown as failing. ``lease`` is how long a
    claimed delivery is held by its sender before another may try it.
    """

    every: float = ALERT_EVERY
    backoff: float = 10.0
    max_backoff: float = 1800.0
    max_attempts: int = 12
    timeout: float = 10.0
    lease: float = 60.0
    batch: int = 20
    public_url: str = field(default_factory=lambda: os.environ.get(PUBLIC_URL_ENV, ""))


async def judge(store: Store, definitions: Iterable[Definition], now: float) -> list[Firing]:
    """The rules firing now, each with the destinations it notifies, from the store's figures."""
    held = newest(definitions).values()
    rules = [rule for d in held for rule in d.alerts]
    alerts: list[Alert] = []
    if any(rule.max_age is not None or rule.max_items is not None for rule in rules):
        alerts += evaluate(held, await store.state_counts(), now)
    windows = rule_windows(held)
    stats = {window: await store.state_stats(now - window) for window in sorted(windows)}
    stuck = await store.stuck_items() if any(rule.stuck for rule in rules) else []
    alerts += evaluate_flow(held, stats, stuck)
    by_name = {d.name: d for d in held}
    firing = []
    for alert in alerts:
        if not alert.firing:
            continue
        detail = dict(alert.detail)
        if alert.rule is RuleKind.ENTERED:
            since = now - float(detail["window"])
            detail["keys"] = await store.recent_arrivals(alert.workflow, alert.state, since)
        declared = tuple(by_name[alert.workflow].destinations)
        notify = declared if alert.notify is None else alert.notify
        firing.append(
            Firing(
                alert.workflow,
                alert.rule.value,
                alert.state,
                alert.observed,
                alert.threshold,
                notify,
                detail,
            )
        )
    return firing


async def record_round(store: Store, definitions: Iterable[Definition], now: float) -> AlertRound:
    """Judge the rules and record the episodes they open, keep and resolve."""
    held = list(definitions)
    firing = await judge(store, held, now)
    return await store.record_alerts(firing, {d.name for d in held}, now)


def retry_at(
    attempts: int, now: float, settings: AlertSettings, rand: Callable[[], float]
) -> float | None:
    """When to try again after ``attempts`` failed ones; None once they are used up."""
    if attempts >= settings.max_attempts:
        return None
    delay = min(settings.max_backoff, settings.backoff * 2.0 ** (attempts - 1))
    return now + delay * (0.5 + rand() / 2)


@dataclass
class Deliverer:
    """Sends due deliveries of the held workflows and records each attempt in the store."""

    store: Store
    settings: AlertSettings = field(default_factory=AlertSettings)
    send: Sender = post
    observe: DeliveryObserver | None = None
    clock: Callable[[], float] = time.time
    rand: Callable[[], float] = random.random

    async def deliver_due(self, definitions: Iterable[Definition]) -> list[Attempt]:
        """Claim what is due, send it all at once, and record how each attempt went."""
        held = newest(definitions)
        now = self.clock()
        claimed = await self.store.claim_deliveries(
            list(held), now, now + self.settings.lease, self.settings.batch
        )
        return list(await asyncio.gather(*(self._deliver(c, held) for c in claimed)))

    async def _deliver(self, claimed: ClaimedDelivery, held: dict[str, Definition]) -> Attempt:
        delivery, episode = claimed.delivery, claimed.episode
        destination = held[episode.workflow].destinations.get(delivery.destination)
        if destination is None:
            attempt = Attempt(
                None,
                f"destination {delivery.destination} is no longer declared in {episode.workflow}",
                None,
                None,
            )
        else:
            try:
                request = request_for(
                    destination,
                    episode,
                    delivery.kind,
                    self.clock(),
                    public_url=self.settings.public_url,
                )
            except DestinationError as exc:
                answer = Answer(None, str(exc))
            else:
                answer = await self.send(request, self.settings.timeout)
            attempt = self._attempt(answer, delivery.attempts + 1)
        await self.store.finish_delivery(delivery.id, attempt)
        self._report(claimed, attempt)
        return attempt

    def _attempt(self, answer: Answer, attempts: int) -> Attempt:
        now = self.clock()
        if answer.delivered:
            return Attempt(answer.status, None, now, None)
        error = answer.error or f"HTTP {answer.status}"
        again = retry_at(attempts, now, self.settings, self.rand)
        if again is None:
            error = f"gave up after {attempts} attempts: {error}"
        return Attempt(answer.status, error, None, again)

    def _report(self, claimed: ClaimedDelivery, attempt: Attempt) -> None:
        delivery, episode = claimed.delivery, claimed.episode
        delivered = attempt.delivered_at is not None
        if self.observe is not None:
            self.observe(delivery.destination, delivered)
        where = f"{episode.workflow}/{episode.state or '*'}"
        if delivered:
            logger.info(
                "alerts: %s %s of %s delivered to %s",
                episode.rule,
                delivery.kind.value,
                where,
                delivery.destination,
            )
        else:
            logger.warning(
                "alerts: %s %s of %s not delivered to %s: %s",
                episode.rule,
                delivery.kind.value,
                where,
                delivery.destination,
                attempt.error,
            )


@contextlib.asynccontextmanager
async def alerting(
    store: Store, definitions: Definitions, deliverer: Deliverer | None
) -> AsyncIterator[None]:
    """Run alert rounds every ``deliverer.settings.every`` seconds while the block runs.

    ``deliverer`` None (``--no-alerts``) does nothing.
    """
    if deliverer is None:
        yield
        return
    async with beside(_keep_alerting(store, definitions, deliverer), "statewise-alerts"):
        yield


async def _keep_alerting(store: Store, definitions: Definitions, deliverer: Deliverer) -> None:
    while True:
        await alert_round(store, list(definitions()), deliverer)
        await asyncio.sleep(deliverer.settings.every)


async def alert_round(
    store: Store, definitions: list[Definition], deliverer: Deliverer
) -> AlertRound | None:
    """One round, logged; None when it failed (the next round tries again)."""
    try:
        found = await record_round(store, definitions, deliverer.clock())
        await deliverer.deliver_due(definitions)
    except Exception as exc:  # a failed round must never stop the work
        logger.error(
            "alerts: this round failed: %s",
            exc,
            exc_info=None if isinstance(exc, StatewiseError) else exc,
        )
        return None
    for episode in found.opened:
        logger.warning("alerts: %s fires on %s/%s", episode.rule, episode.workflow, episode.state)
    for episode in found.resolved:
        logger.info("alerts: %s resolved on %s/%s", episode.rule, episode.workflow, episode.state)
    return found
