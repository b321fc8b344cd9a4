"""Commits with more than one writer: the seq fence, leases (LOST), rejected steps, effects.

Every test runs on SQLite and on PostgreSQL. A "second writer" is a second store object on the
same database (another connection), a stale in-memory copy of an item, or another lease owner.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from statewise.engine import (
    HistoryRecord,
    ItemStatus,
    RunCommand,
    SaveConversation,
    SetContext,
    fail_item,
)
from statewise.errors import NotFoundError, StoreError
from statewise.store import CommitStatus, Lease, StepCommit
from statewise.store.sql import SQLStore

from .conftest import OpenStore, Query
from .helpers import (
    T0,
    commit,
    fanout,
    fetched,
    ignored,
    in_review,
    invariant_holds,
    noted,
    run,
    started,
)

HELD = [("orders", 1)]
LEASE = Lease("w", T0 + 600)


def claim_all(store: SQLStore, owner: str = "w", at: float = T0) -> dict[str, int]:
    """Lease every ready command of orders@1 to ``owner``; outbox ids by item key."""
    return {c.key: c.outbox_id for c in run(store.claim_commands(owner, 100, at, 60.0, HELD))}


def outbox_of(query: Query, key: str) -> list[tuple[int, str | None]]:
    return query(
        "SELECT o.id, o.lease_owner FROM outbox o JOIN items i ON i.id = o.item_id "
        "WHERE i.key = ? ORDER BY o.id",
        key,
    )


# --- new items ------------------------------------------------------------------------------


def test_a_new_item_commits_once_and_a_duplicate_key_writes_nothing(store: SQLStore) -> None:
    assert run(commit(store, started("k1", {"a": 1}))) == [CommitStatus.COMMITTED]
    assert run(commit(store, started("k1", {"a": 2}), started("k2"), started("k2"))) == [
        CommitStatus.DUPLICATE,
        CommitStatus.COMMITTED,
        CommitStatus.DUPLICATE,
    ]

    assert run(store.get_item(None, "k1")).context == {"a": 1}
    assert [len(run(store.history(None, k))) for k in ("k1", "k2")] == [1, 1]
    assert run(store.pending_commands()) == 2


def test_writers_starting_the_same_keys_at_once_create_each_item_once(
    open_store: OpenStore,
) -> None:
    stores = [open_store() for _ in range(3)]
    keys = [f"k{n}" for n in range(40)]

    def start_all(store: SQLStore) -> list[CommitStatus]:
        statuses: list[CommitStatus] = []
        for key in keys:
            statuses += run(commit(store, started(key)))
        return statuses

    with ThreadPoolExecutor(len(stores)) as pool:
        results = list(pool.map(start_all, stores))

    assert [r.count(CommitStatus.COMMITTED) for r in zip(*results, strict=True)] == [1] * 40
    assert len(run(stores[0].list_items(limit=100))) == 40
    assert run(stores[0].pending_commands()) == 40
    invariant_holds(stores[0])


# --- the seq fence --------------------------------------------------------------------------


def test_of_two_writers_stepping_from_the_same_seq_only_the_first_commits(
    open_store: OpenStore,
) -> None:
    left, right = open_store(), open_store()
    first = started("a")
    run(commit(left, first))
    seen_left, seen_right = run(left.get_item(None, "a")), run(right.get_item(None, "a"))

    assert run(commit(left, noted(seen_left, SetContext(("by",), "left")))) == [
        CommitStatus.COMMITTED
    ]
    assert run(commit(right, noted(seen_right, SetContext(("by",), "right")))) == [
        CommitStatus.STALE
    ]
    assert run(right.get_item(None, "a")).context == {"by": "left"}
    assert len(run(right.history(None, "a"))) == 2


def test_writers_racing_on_one_item_never_lose_or_repeat_a_step(open_store: OpenStore) -> None:
    stores = [open_store(), open_store()]
    run(commit(stores[0], started("race")))

    def write(store: SQLStore, name: str, steps: int = 25) -> None:
        async def go() -> None:
            done = 0
            while done < steps:
                item = await store.get_item("orders", "race")
                result = noted(item, SetContext((name,), done))
                (outcome,) = await store.commit([StepCommit(result, item.seq)])
                assert outcome.status in (CommitStatus.COMMITTED, CommitStatus.STALE)
                done += outcome.status is CommitStatus.COMMITTED

        run(go())

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(write, stores, ["left", "right"]))

    history = run(stores[0].history(None, "race"))
    assert [r.seq for r in history] == list(range(1, 52))
    assert run(stores[0].get_item(None, "race")).context == {"left": 24, "right": 24}
    invariant_holds(stores[0])


def test_a_step_from_an_out_of_date_item_is_stale_while_the_rest_of_its_batch_commits(
    store: SQLStore, query: Query
) -> None:
    a, b = started("a"), started("b")
    run(commit(store, a, b))
    claims = claim_all(store)
    run(store.commit([StepCommit(fetched(a.item), a.item.seq, outbox_id=claims["a"])], LEASE))
    committed = run(store.get_item(None, "a"))
    (a_timer, _) = query("SELECT id FROM timers ORDER BY id")

    outcomes = run(
        store.commit(
            [
                StepCommit(fetched(a.item, T0 + 2), a.item.seq, timer_id=a_timer[0]),
                StepCommit(fetched(b.item), b.item.seq, outbox_id=claims["b"]),
            ]
        )
    )

    assert [o.status for o in outcomes] == [CommitStatus.STALE, CommitStatus.COMMITTED]
    assert run(store.get_item(None, "a")) == committed
    assert len(run(store.history(None, "a"))) == 2
    assert len(query("SELECT id FROM timers")) == 4  # a's two kept, b's two new
    assert run(store.get_item(None, "b")).state == "review"
    assert run(store.pending_commands()) == 0


def test_a_stale_copys_ignored_step_keeps_the_work_row_and_a_fresh_one_consumes_it(
    open_store: OpenStore, query: Query
) -> None:
    """The bug of issue 6 A.1: a runner judging from an old copy deleted the new command."""
    runner, sender = open_store(), open_store()
    first = started("a")
    run(commit(runner, first))
    claim_all(runner)  # the runner works on intake's command
    copy = first.item  # and keeps this copy in memory
    # Meanwhile another process moves the item on, queueing a new command.
    current = run(sender.get_item(None, "a"))
    queued = RunCommand("fetch", "intake", 2, 1, None)
    run(commit(sender, noted(current, effects=(queued,))))
    new_row = claim_all(runner, at=T0 + 5)["a"]  # the runner holds the item's work already

    # The runner judges the new command's result against its old copy: stale, so IGNORED.
    (outcome,) = run(runner.commit([StepCommit(ignored(copy), copy.seq, outbox_id=new_row)], LEASE))

    assert outcome.status is CommitStatus.STALE
    assert new_row in [row_id for row_id, _ in outbox_of(query, "a")]
    invariant_holds(runner)
    fresh = run(runner.get_item(None, "a"))
    (again,) = run(runner.commit([StepCommit(ignored(fresh), fresh.seq, outbox_id=new_row)], LEASE))
    assert again.status is CommitStatus.COMMITTED
    assert new_row not in [row_id for row_id, _ in outbox_of(query, "a")]
    assert run(runner.get_item(None, "a")) == fresh
    invariant_holds(runner)


def test_a_failing_statement_rolls_back_its_whole_batch(store: SQLStore) -> None:
    first = started("a")
    run(commit(store, first))
    clash = HistoryRecord(1, T0, "intake", "intake", "note", "test")  # seq 1 exists already
    good = noted(first.item, SetContext(("x",), 1))
    bad = replace(good, history=(clash,))

    # The class is statewise's; the text of the constraint failure is the database's.
    with pytest.raises(StoreError):
        run(store.commit([StepCommit(started("b"), None), StepCommit(bad, 1)]))

    assert run(store.get_item(None, "a")) == first.item
    with pytest.raises(NotFoundError):
        run(store.get_item(None, "b"))


# --- leases: LOST ---------------------------------------------------------------------------


def test_a_step_whose_work_row_another_owner_took_over_is_lost(
    open_store: OpenStore, query: Query
) -> None:
    slow, fast = open_store(), open_store()
    a = started("a")
    run(commit(slow, a))
    (claim,) = run(slow.claim_commands("slow", 10, T0, 30.0, HELD))
    (taken,) = run(fast.claim_commands("fast", 10, T0 + 31, 30.0, HELD))  # slow's lease ran out
    assert taken.outbox_id == claim.outbox_id

    step = StepCommit(fetched(a.item), a.item.seq, outbox_id=claim.outbox_id)
    (late,) = run(slow.commit([step], Lease("slow", T0 + 100)))

    assert late.status is CommitStatus.LOST
    assert run(fast.get_item(None, "a")) == a.item
    assert outbox_of(query, "a") == [(claim.outbox_id, "fast")]
    (on_time,) = run(fast.commit([step], Lease("fast", T0 + 100)))
    assert on_time.status is CommitStatus.COMMITTED
    # The row is gone now: a step consuming it again is lost too, even from the current seq.
    current = run(slow.get_item(None, "a"))
    again = StepCommit(ignored(current), current.seq, outbox_id=claim.outbox_id)
    assert run(slow.commit([again], Lease("slow", T0 + 100)))[0].status is CommitStatus.LOST
    assert run(slow.get_item(None, "a")) == current


def test_a_work_row_of_another_item_is_never_consumed(store: SQLStore, query: Query) -> None:
    a, b = started("a"), started("b")
    run(commit(store, a, b))
    claims = claim_all(store)

    stray = StepCommit(ignored(a.item), a.item.seq, outbox_id=claims["b"])
    assert run(store.commit([stray], LEASE))[0].status is CommitStatus.LOST
    assert run(store.commit([stray]))[0].status is CommitStatus.COMMITTED  # no lease: no check
    assert [row_id for row_id, _ in outbox_of(query, "b")] == [claims["b"]]
    invariant_holds(store)


# --- REJECTED -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_number_json_cannot_carry_is_rejected_never_stored(
    store: SQLStore, query: Query, value: float
) -> None:
    """The codec's last line of defence, behind the input rules: no NaN or Infinity text."""
    begun = started("a")
    run(commit(store, begun))
    (outcome,) = run(
        store.commit([StepCommit(noted(begun.item, SetContext(("score",), {"x": value})), 1)])
    )
    assert outcome.status is CommitStatus.REJECTED
    assert outcome.error is not None and "item 'a'" in outcome.error
    assert run(store.get_item(None, "a")) == begun.item
    assert (
        query("SELECT path FROM context WHERE value LIKE ? OR value LIKE ?", "%NaN%", "%Inf%") == []
    )
    invariant_holds(store)


def test_a_step_that_cannot_be_stored_is_rejected_alone_and_the_item_can_be_failed(
    store: SQLStore, query: Query
) -> None:
    items = {key: started(key) for key in "abcd"}
    run(commit(store, *items.values()))
    claims = claim_all(store)
    b, c = items["b"].item, items["c"].item
    bad_usage = replace(fetched(b), history=(replace(fetched(b).history[0], usage={"x": {1}}),))
    after_bad = noted(bad_usage.item)
    bad_context = noted(c, SetContext(("when",), object()))

    outcomes = run(
        store.commit(
            [
                StepCommit(fetched(items["a"].item), 1, outbox_id=claims["a"]),
                StepCommit(bad_usage, 1, outbox_id=claims["b"]),
                StepCommit(after_bad, bad_usage.item.seq),
                StepCommit(bad_context, 1, outbox_id=claims["c"]),
                StepCommit(fetched(items["d"].item), 1, outbox_id=claims["d"]),
            ],
            LEASE,
        )
    )

    assert [o.status for o in outcomes] == [
        CommitStatus.COMMITTED,
        CommitStatus.REJECTED,
        CommitStatus.STALE,
        CommitStatus.REJECTED,
        CommitStatus.COMMITTED,
    ]
    error = outcomes[1].error
    assert error is not None and "item 'b'" in error and "cannot be stored" in error
    assert outcomes[3].error is not None and "'c'" in outcomes[3].error
    for key in "bc":
        assert run(store.get_item(None, key)) == items[key].item
        assert [row_id for row_id, _ in outbox_of(query, key)] == [claims[key]]
    assert [run(store.get_item(None, k)).state for k in "ad"] == ["review", "review"]

    failed = fail_item(b, error, T0 + 5)
    assert run(store.commit([StepCommit(failed, b.seq)]))[0].status is CommitStatus.COMMITTED
    stored = run(store.get_item(None, "b"))
    assert (stored.status, stored.state) == (ItemStatus.FAILED, "intake")
    last = run(store.history(None, "b"))[-1]
    assert last.event == "quarantined" and last.error == {"kind": "item_failure", "message": error}
    assert outbox_of(query, "b") == []
    assert [i.key for i in run(store.list_items(status=ItemStatus.FAILED))] == ["b"]


# --- effects --------------------------------------------------------------------------------


def test_cancel_commands_drops_the_items_commands_and_nobody_elses(
    store: SQLStore, query: Query
) -> None:
    flow = fanout()
    x, y, z = (started(k, definition=flow) for k in "xyz")
    run(commit(store, x, y, z))
    claimed = run(store.claim_commands("w", 100, T0, 60.0, [("fanout", 1)]))
    assert len(claimed) == 9
    consumed = next(c.outbox_id for c in claimed if c.key == "x")

    failed = fail_item(x.item, "bad", T0 + 1)
    step = StepCommit(failed, x.item.seq, outbox_id=consumed)
    (outcome,) = run(store.commit([step], LEASE))

    assert outcome.status is CommitStatus.COMMITTED
    assert outbox_of(query, "x") == []
    assert len(outbox_of(query, "y")) == 3
    # A command queued earlier in the same batch is cancelled with the others.
    extra = noted(z.item, effects=(RunCommand("work_a", "split", 1, 2, None, branch="a"),))
    queued, cancelled = run(
        store.commit(
            [StepCommit(extra, z.item.seq), StepCommit(fail_item(extra.item, "bad", T0), 2)],
            LEASE,
        )
    )
    assert (queued.status, queued.commands, cancelled.status) == (
        CommitStatus.COMMITTED,
        (),
        CommitStatus.COMMITTED,
    )
    assert outbox_of(query, "z") == []
    invariant_holds(store)


def test_a_conversation_is_kept_only_by_the_step_that_commits_it(open_store: OpenStore) -> None:
    store, other = open_store(), open_store()
    a = started("a")
    run(commit(store, a, started("b")))
    talk = noted(a.item, effects=(SaveConversation("writer", '[{"turn": 1}]'),))
    stale = noted(a.item, effects=(SaveConversation("writer", '[{"turn": "stale"}]'),))
    rejected = noted(
        talk.item, SetContext(("x",), {1}), effects=(SaveConversation("critic", '["no"]'),)
    )

    assert run(commit(store, talk)) == [CommitStatus.COMMITTED]
    assert run(commit(other, stale)) == [CommitStatus.STALE]
    assert run(commit(other, rejected)) == [CommitStatus.REJECTED]
    assert run(other.conversations("orders", "a")) == {"writer": '[{"turn": 1}]'}

    both = (SaveConversation("writer", '[{"turn": 2}]'), SaveConversation("critic", '["ok"]'))
    run(commit(other, noted(talk.item, effects=both)))
    assert run(store.conversations("orders", "a")) == {
        "writer": '[{"turn": 2}]',
        "critic": '["ok"]',
    }
    assert run(store.conversations("orders", "b")) == {}


def test_a_step_built_on_a_refused_step_of_its_batch_is_stale_even_when_seqs_line_up(
    store: SQLStore, query: Query
) -> None:
    """The fleet's stuck item: a runner stepped two timers of one item from an old copy.

    The first step is STALE; the second, computed on top of it, expects exactly the seq that
    another writer's one step produced. It must not pass the fence (it would delete a timer
    on the judgement of an item that never existed).
    """
    item = run(in_review(store, "a"))["a"]
    run(commit(store, noted(item)))  # another writer: one step, seq + 1
    (timer, *_) = query("SELECT id FROM timers ORDER BY id")
    first = noted(item)  # from the old copy: STALE
    chained = ignored(first.item)  # built on it; expects the seq the other writer reached

    outcomes = run(
        store.commit(
            [
                StepCommit(first, item.seq),
                StepCommit(chained, first.item.seq, timer_id=timer[0]),
            ]
        )
    )

    assert [o.status for o in outcomes] == [CommitStatus.STALE, CommitStatus.STALE]
    assert timer in query("SELECT id FROM timers ORDER BY id")  # the timer is kept
    invariant_holds(store)
