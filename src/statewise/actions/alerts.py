"""Alert episodes and their deliveries as people and programs read them.

``GET /api/alerts`` and the dashboard's alerts page show the same thing: the episodes firing
now and the latest resolved ones, each with every destination's delivery state, read from the
store, so every process shows what any process delivered.
"""

from __future__ import annotations

from typing import Any

from statewise.observe.delivery import status_of
from statewise.store.alerting import AlertDelivery, AlertEpisode
from statewise.store.base import Store

RECENT = 50
"""Resolved episodes shown besides the firing ones."""


def delivery_state(delivery: AlertDelivery) -> str:
    """``delivered``, ``pending`` (not tried yet), ``retrying`` or ``given up``."""
    if delivery.delivered_at is not None:
        return "delivered"
    if delivery.next_attempt_at is None:
        return "given up"
    return "retrying" if delivery.attempts else "pending"


def delivery_json(delivery: AlertDelivery) -> dict[str, Any]:
    """One delivery: which message, where, and how sending it went."""
    return {
        "destination": delivery.destination,
        "message": status_of(delivery.kind),
        "state": delivery_state(delivery),
        "attempts": delivery.attempts,
        "delivered_at": delivery.delivered_at,
        "next_attempt_at": delivery.next_attempt_at,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
    }


def episode_json(episode: AlertEpisode) -> dict[str, Any]:
    """One episode with its deliveries."""
    return {
        "id": episode.id,
        "workflow": episode.workflow,
        "alert": episode.rule,
        "state": episode.state or None,
        "status": "firing" if episode.resolved_at is None else "resolved",
        "opened_at": episode.opened_at,
        "resolved_at": episode.resolved_at,
        "observed": episode.observed,
        "threshold": episode.threshold,
        "detail": dict(episode.detail),
        "deliveries": [delivery_json(d) for d in episode.deliveries],
    }


async def alert_report(store: Store, recent: int = RECENT) -> dict[str, Any]:
    """``{firing, failing, episodes}``: the counts and the episodes, firing ones first."""
    episodes = await store.alert_episodes(recent)
    summary = await store.alert_summary()
    return {
        "firing": summary.firing,
        "failing": summary.failing,
        "episodes": [episode_json(e) for e in episodes],
    }
