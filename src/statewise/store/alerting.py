"""Alert episodes and their webhook deliveries in SQL, for every dialect.

An episode is one stretch of a rule firing on one (workflow, state). Any number of processes
evaluate the rules; the store decides which of them opens or resolves an episode, so each is
delivered once:

- opening is an insert guarded by a partial unique index over the open episodes, with
  ``ON CONFLICT DO NOTHING``: of two evaluators at once exactly one gets the row back, and
  only that one queues the ``opened`` deliveries, in the same transaction;
- resolving is an ``UPDATE ... WHERE resolved_at IS NULL``: again one winner, which queues
  the ``resolved`` deliveries for the destinations the opening went to.

Deliveries wait in ``alert_deliveries`` with their next attempt's time, so a process that
restarts picks them up again. A sender claims due ones by moving their ``next_attempt_at``
to a lease's end in a conditional update (the condition re-checked under the row lock on
PostgreSQL), so two senders never send the same attempt; a sender that dies mid-send leaves
the row to be tried again when the lease runs out.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from statewise.store.connection import Connection, Dialect, Row

OPEN_INDEX = (
    "CREATE UNIQUE INDEX alert_episodes_open ON alert_episodes (workflow, rule, state) "
    "WHERE resolved_at IS NULL"
)
_EPISODE = "id, workflow, rule, state, opened_at, resolved_at, observed, threshold, detail"
_DELIVERY = (
    "id, episode_id, kind, destination, attempts, next_attempt_at, last_status, last_error, "
    "delivered_at"
)


class DeliveryKind(StrEnum):
    """Which message of an episode a delivery carries."""

    OPENED = "opened"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Firing:
    """A rule reaching its threshold this round, and the destinations its episode goes to.

    ``rule`` names the kind (``max_age``, ``failure_rate``, ``stuck``, ``entered`` ...);
    ``state`` is empty for a rule over every state. ``detail`` is what the message adds (for
    example the keys of the items that entered an escalation state).
    """

    workflow: str
    rule: str
    state: str
    observed: float
    threshold: float
    destinations: tuple[str, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def ref(self) -> tuple[str, str, str]:
        """What identifies its episode while open: (workflow, rule, state)."""
        return (self.workflow, self.rule, self.state)


@dataclass(frozen=True, slots=True)
class AlertDelivery:
    """One message of one episode to one destination, and how sending it went.

    ``next_attempt_at`` is None once delivered or given up; ``last_status`` is the HTTP
    status of the last answer (None when none came), ``last_error`` why it failed.
    """

    id: int
    episode_id: int
    kind: DeliveryKind
    destination: str
    attempts: int
    next_attempt_at: float | None
    last_status: int | None
    last_error: str | None
    delivered_at: float | None

    @property
    def failing(self) -> bool:
        """Not delivered, and the last attempt failed."""
        return self.delivered_at is None and self.last_error is not None


@dataclass(frozen=True, slots=True)
class AlertEpisode:
    """One stretch of a rule firing; ``resolved_at`` None while it still fires."""

    id: int
    workflow: str
    rule: str
    state: str
    opened_at: float
    resolved_at: float | None
    observed: float
    threshold: float
    detail: Mapping[str, Any] = field(default_factory=dict, hash=False)
    deliveries: tuple[AlertDelivery, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertRound:
    """The episodes this round opened and resolved (none when another process did it first)."""

    opened: tuple[AlertEpisode, ...] = ()
    resolved: tuple[AlertEpisode, ...] = ()


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A due delivery leased to one sender, with the episode it tells about."""

    delivery: AlertDelivery
    episode: AlertEpisode


@dataclass(frozen=True, slots=True)
class AlertSummary:
    """What the board's strip says: episodes firing, deliveries failing (``alert_summary_txn``)."""

    firing: int
    failing: int


def _episode(row: Row, deliveries: tuple[AlertDelivery, ...] = ()) -> AlertEpisode:
    episode_id, workflow, rule, state, opened, resolved, observed, threshold, detail = row
    return AlertEpisode(
        episode_id,
        workflow,
        rule,
        state,
        opened,
        resolved,
        observed,
        threshold,
        json.loads(detail),
        deliveries,
    )


def _delivery(row: Row) -> AlertDelivery:
    delivery_id, episode_id, kind, destination, attempts, due, status, error, delivered = row
    return AlertDelivery(
        delivery_id,
        episode_id,
        DeliveryKind(kind),
        destination,
        attempts,
        due,
        status,
        error,
        delivered,
    )


def record_alerts_txn(
    db: Connection, firing: Sequence[Firing], workflows: Collection[str], now: float
) -> AlertRound:
    """Open an episode for each new firing, refresh the open ones, resolve the rest.

    Only episodes of ``workflows`` (those the caller evaluated) are resolved, so a process
    holding some workflows never ends another's episodes.
    """
    opened = [episode for f in firing if (episode := _open(db, f, now)) is not None]
    firing_refs = {f.ref for f in firing}
    # In id order, so two evaluators resolving the same episodes lock them in the same order.
    open_rows = db.execute(
        f"SELECT {_EPISODE} FROM alert_episodes WHERE resolved_at IS NULL ORDER BY id"
    )
    resolved = []
    for row in open_rows:
        episode = _episode(row)
        if episode.workflow not in workflows or (episode.workflow, row[2], row[3]) in firing_refs:
            continue
        done = _resolve(db, episode.id, now)
        if done is not None:
            resolved.append(done)
    return AlertRound(tuple(opened), tuple(resolved))


def _open(db: Connection, firing: Firing, now: float) -> AlertEpisode | None:
    """The episode opened for ``firing``, or None when one is open already (refreshed)."""
    detail = json.dumps(dict(firing.detail), ensure_ascii=False)
    rows = db.execute(
        "INSERT INTO alert_episodes (workflow, rule, state, opened_at, observed, threshold, "
        "detail, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (workflow, rule, state) WHERE resolved_at IS NULL DO NOTHING "
        f"RETURNING {_EPISODE}",
        (*firing.ref, now, firing.observed, firing.threshold, detail, now),
    )
    if not rows:
        db.execute(
            "UPDATE alert_episodes SET observed = ?, detail = ?, seen_at = ? "
            "WHERE workflow = ? AND rule = ? AND state = ? AND resolved_at IS NULL",
            (firing.observed, detail, now, *firing.ref),
        )
        return None
    episode = _episode(rows[0])
    db.executemany(
        "INSERT INTO alert_deliveries (episode_id, kind, destination, attempts, "
        "next_attempt_at) VALUES (?, ?, ?, 0, ?)",
        [(episode.id, DeliveryKind.OPENED.value, name, now) for name in firing.destinations],
    )
    return episode


def _resolve(db: Connection, episode_id: int, now: float) -> AlertEpisode | None:
    rows = db.execute(
        f"UPDATE alert_episodes SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL "
        f"RETURNING {_EPISODE}",
        (now, episode_id),
    )
    if not rows:
        return None  # another evaluator resolved it a moment ago
    db.execute(
        "INSERT INTO alert_deliveries (episode_id, kind, destination, attempts, next_attempt_at) "
        "SELECT episode_id, ?, destination, 0, ? FROM alert_deliveries "
        "WHERE episode_id = ? AND kind = ?",
        (DeliveryKind.RESOLVED.value, now, episode_id, DeliveryKind.OPENED.value),
    )
    return _episode(rows[0])


def claim_deliveries_txn(
    db: Connection,
    dialect: Dialect,
    workflows: Collection[str],
    now: float,
    until: float,
    limit: int,
) -> list[ClaimedDelivery]:
    """Lease up to ``limit`` due deliveries of ``workflows`` until ``until``, oldest first.

    Only the workflows the caller holds: their definitions name the destinations' addresses.
    """
    if not workflows:
        return []
    held, params = dialect.any_of("e.workflow", workflows)
    rows = db.execute(
        f"UPDATE alert_deliveries SET next_attempt_at = ? WHERE next_attempt_at <= ? AND id IN "
        f"(SELECT d.id FROM alert_deliveries d JOIN alert_episodes e ON e.id = d.episode_id "
        f"WHERE d.next_attempt_at <= ? AND {held} "
        f"ORDER BY d.next_attempt_at, d.id LIMIT ?) RETURNING {_DELIVERY}",
        (until, now, now, *params, limit),
    )
    deliveries = sorted((_delivery(row) for row in rows), key=lambda d: d.id)
    episodes = _episodes_by_id(db, {d.episode_id for d in deliveries})
    return [ClaimedDelivery(d, episodes[d.episode_id]) for d in deliveries]


def _episodes_by_id(db: Connection, ids: Collection[int]) -> dict[int, AlertEpisode]:
    found: dict[int, AlertEpisode] = {}
    for episode_id in ids:
        rows = db.execute(f"SELECT {_EPISODE} FROM alert_episodes WHERE id = ?", (episode_id,))
        found[episode_id] = _episode(rows[0])
    return found


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one attempt went: the answer's status, the error, and when to try again (if)."""

    status: int | None
    error: str | None
    delivered_at: float | None
    next_attempt_at: float | None


def finish_delivery_txn(db: Connection, delivery_id: int, attempt: Attempt) -> None:
    """Record an attempt: delivered, or failed with when to try again (None: given up)."""
    db.execute(
        "UPDATE alert_deliveries SET attempts = attempts + 1, last_status = ?, last_error = ?, "
        "delivered_at = ?, next_attempt_at = ? WHERE id = ?",
        (attempt.status, attempt.error, attempt.delivered_at, attempt.next_attempt_at, delivery_id),
    )


def alert_episodes_txn(db: Connection, limit: int) -> list[AlertEpisode]:
    """Every open episode and the ``limit`` latest resolved ones, each with its deliveries."""
    rows = db.execute(
        f"SELECT {_EPISODE} FROM alert_episodes WHERE resolved_at IS NULL "
        f"ORDER BY opened_at DESC, id DESC",
    )
    rows += db.execute(
        f"SELECT {_EPISODE} FROM alert_episodes WHERE resolved_at IS NOT NULL "
        f"ORDER BY resolved_at DESC, id DESC LIMIT ?",
        (limit,),
    )
    by_episode: dict[int, list[AlertDelivery]] = {row[0]: [] for row in rows}
    for episode_id in by_episode:
        by_episode[episode_id] = [
            _delivery(row)
            for row in db.execute(
                f"SELECT {_DELIVERY} FROM alert_deliveries WHERE episode_id = ? ORDER BY id",
                (episode_id,),
            )
        ]
    return [_episode(row, tuple(by_episode[row[0]])) for row in rows]


def alert_summary_txn(db: Connection) -> AlertSummary:
    """Counts for the board's strip.

    Failing: deliveries still being retried after a failure, and those given up while their
    episode fires; one given up on an episode long resolved is history (the page lists it).
    """
    firing = db.execute("SELECT COUNT(*) FROM alert_episodes WHERE resolved_at IS NULL")
    failing = db.execute(
        "SELECT COUNT(*) FROM alert_deliveries d JOIN alert_episodes e ON e.id = d.episode_id "
        "WHERE d.delivered_at IS NULL AND d.last_error IS NOT NULL "
        "AND (d.next_attempt_at IS NOT NULL OR e.resolved_at IS NULL)"
    )
    return AlertSummary(int(firing[0][0]), int(failing[0][0]))


def recent_arrivals_txn(
    db: Connection, workflow: str, state: str, since: float, limit: int
) -> list[str]:
    """Keys of the items in ``state`` that entered it since ``since``, newest first."""
    rows = db.execute(
        "SELECT key FROM items WHERE workflow = ? AND state = ? AND entered_at >= ? "
        "ORDER BY entered_at DESC LIMIT ?",
        (workflow, state, since, limit),
    )
    return [key for (key,) in rows]
