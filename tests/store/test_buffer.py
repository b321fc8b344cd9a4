"""Kept early events are stored on the item's row, in the step's commit, under its fence.

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from statewise.definition import loads
from statewise.definition.model import BUFFER_TIMER
from statewise.engine import CommandSucceeded, External, Item, StepResult, start, step
from statewise.store import CommitStatus, Lease, StepCommit
from statewise.store.sql import SQLStore

from .conftest import OpenStore, Query
from .helpers import T0, invariant_holds, run

PAYMENT = loads(
    """
workflow: payment
events:
  paid:
    description: the customer paid
    buffer: {ttl: 1h}
  approve: a manager approves
states:
  intake:
    kind: initial
    command: check
    transitions:
      - to: approval
  approval:
    kind: waiting
    transitions:
      - on: approve
        to: checkout
  checkout:
    kind: waiting
    transitions:
      - on: paid
        to: done
  done: {kind: final}
"""
)
VERSIONS = [("payment", 1)]
# Data no URL, byte string or ASCII assumption survives unharmed: stored and read back as is.
HOSTILE = {"ref": "naïve-日本 %/?#", "nul": "a\x00b", "big": 2**63 - 1, "list": [1.5, None]}


async def waiting(store: SQLStore, key: str) -> Item:
    """An item committed through its intake, waiting in ``approval``."""
    first = start(PAYMENT, key, {}, T0)
    second = step(PAYMENT, first.item, CommandSucceeded("intake", 1, 1, {}), T0 + 1)
    for result, seq in ((first, None), (second, first.item.seq)):
        (outcome,) = await store.commit([StepCommit(result, seq)])
        assert outcome.status is CommitStatus.COMMITTED
    return second.item


def send(item: Item, data: dict[str, Any], at: float, actor: str = "shop") -> StepResult:
    return step(PAYMENT, item, External("paid", data, actor), at)


def test_a_kept_event_and_its_timer_commit_with_the_step_and_read_back(
    store: SQLStore, query: Query
) -> None:
    async def main() -> None:
        item = await waiting(store, "p/1?ü")
        kept = send(item, HOSTILE, T0 + 2)
        (outcome,) = await store.commit([StepCommit(kept, item.seq)])
        assert outcome.status is CommitStatus.COMMITTED

        stored = await store.get_item("payment", "p/1?ü")
        assert stored.buffer == kept.item.buffer and stored.buffer[0].data == HOSTILE
        (row,) = (await store.history("payment", "p/1?ü"))[-1:]
        assert (row.event, row.event_kind, row.actor, row.output) == (
            "paid",
            "buffered",
            "shop",
            HOSTILE,
        )
        assert await store.stuck_items() == []

        # Its expiry timer is a timer row like any other, due at the kept event's end.
        assert await store.claim_timers("w", 10, T0 + 3599, 60.0, VERSIONS) == []
        (due,) = await store.claim_timers("w", 10, T0 + 3602, 60.0, VERSIONS)
        assert due.event.name == BUFFER_TIMER
        expired = step(PAYMENT, stored, due.event, T0 + 3602)
        (outcome,) = await store.commit(
            [StepCommit(expired, stored.seq, timer_id=due.timer_id)], Lease("w", T0 + 4000)
        )
        assert outcome.status is CommitStatus.COMMITTED
        after = await store.get_item("payment", "p/1?ü")
        assert after.buffer == () and after.state == "approval"
        assert (await store.history("payment", "p/1?ü"))[-1].event_kind == "buffer_expired"
        assert query("SELECT buffer FROM items WHERE key = ?", "p/1?ü") == [(None,)]
        assert query("SELECT COUNT(*) FROM timers") == [(0,)]

    run(main())


def test_two_writers_keeping_an_event_each_keep_both_after_a_retry(
    open_store: OpenStore,
) -> None:
    """Both compute from the same copy: one commits, the other is STALE and steps again."""

    async def main() -> None:
        first, second = open_store(), open_store()
        item = await waiting(first, "p-2")
        mine, theirs = send(item, {"n": 1}, T0 + 2, "a"), send(item, {"n": 2}, T0 + 3, "b")
        (won,) = await first.commit([StepCommit(mine, item.seq)])
        (lost,) = await second.commit([StepCommit(theirs, item.seq)])
        assert (won.status, lost.status) == (CommitStatus.COMMITTED, CommitStatus.STALE)

        fresh = await second.get_item("payment", "p-2")
        again = send(fresh, {"n": 2}, T0 + 3, "b")
        (retried,) = await second.commit([StepCommit(again, fresh.seq)])
        assert retried.status is CommitStatus.COMMITTED

        stored = await first.get_item("payment", "p-2")
        assert [(b.actor, b.data) for b in stored.buffer] == [("a", {"n": 1}), ("b", {"n": 2})]
        approved = step(PAYMENT, stored, External("approve", {}, "boss"), T0 + 4)
        (outcome,) = await first.commit([StepCommit(approved, stored.seq)])
        assert outcome.status is CommitStatus.COMMITTED
        done = await second.get_item("payment", "p-2")
        assert done.state == "done" and done.buffer == ()
        events = [(r.event, r.event_kind, r.actor) for r in await first.history("payment", "p-2")]
        assert events[-3:] == [
            ("approve", "external", "boss"),
            ("paid", "buffer_delivered", "a"),
            ("paid", "buffer_dropped", "b"),
        ]

    run(main())
    invariant_holds(open_store())
