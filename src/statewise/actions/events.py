"""What became of an external event someone sent: taken at once, or kept until a time.

An event declared with ``buffer:`` that reaches an item before a state that accepts it is
kept (``engine.buffer``); its sender must hear that it was kept and until when, not that it
was accepted, so a script can tell the two apart. Shared by ``statewise send`` and the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from statewise.engine.buffer import clock, kept_by
from statewise.engine.item import Item


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """``accepted`` (the item took it) or ``buffered`` (kept until ``buffered_until``)."""

    outcome: Literal["accepted", "buffered"]
    message: str
    buffered_until: float | None = None


def event_outcome(item: Item, name: str) -> EventOutcome:
    """What sending event ``name`` did, read from the item the send committed."""
    kept = kept_by(item.seq, item.buffer)
    if kept is None:
        return EventOutcome(
            "accepted", f"{name} accepted; now in {item.state} ({item.status.value})"
        )
    return EventOutcome(
        "buffered",
        f"{name} buffered until {clock(kept.expires_at)}: state {item.state} does not accept "
        f"it yet; it is delivered when the item enters a state that does",
        kept.expires_at,
    )
