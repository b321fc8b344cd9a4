"""Claiming work: leases, held versions, one item on one owner, timers, racing claimers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from statewise.engine import External, TimerFired, step
from statewise.store import CommitStatus, StepCommit
from statewise.store.sql import SQLStore

from .conftest import OpenStore, Query
from .helpers import ORDERS, T0, commit, fanout, in_review, invariant_holds, orders, run, started

HELD = [("orders", 1)]


def test_claimed_commands_are_leased_until_the_lease_runs_out(store: SQLStore) -> None:
    run(commit(store, started("a"), started("b")))

    def claim(owner: str, at: float, limit: int = 10) -> list[str]:
        return [c.key for c in run(store.claim_commands(owner, limit, T0 + at, 30.0, HELD))]

    assert claim("w1", -1) == []  # not available yet
    (first,) = run(store.claim_commands("w1", 1, T0, 30.0, HELD))
    assert (first.workflow, first.key, first.effect.command) == ("orders", "a", "fetch")
    assert claim("w2", 29) == ["b"]
    assert claim("w2", 29.5) == []

    run(store.extend_leases("w1", [first.outbox_id], T0 + 100))
    run(store.extend_leases("w2", [first.outbox_id], T0 + 1000))  # not w2's lease: ignored
    assert claim("w2", 99) == ["b"]  # b's lease ran out, a's was extended
    (again,) = run(store.claim_commands("w2", 10, T0 + 101, 30.0, HELD))
    assert (again.outbox_id, again.effect) == (first.outbox_id, first.effect)

    run(store.release([first.outbox_id], []))
    assert claim("w3", 102) == ["a"]


def test_a_worker_claims_only_work_of_the_versions_it_holds(store: SQLStore) -> None:
    v2, other = orders(version=2), orders("other")
    run(
        commit(store, started("one"), started("two", definition=v2), started("x", definition=other))
    )
    run(in_review(store, "late"))  # orders@1: in review with two timers, its fetch still queued

    def keys(versions: list[tuple[str, int]]) -> list[str]:
        return sorted(c.key for c in run(store.claim_commands("w", 10, T0, 60.0, versions)))

    assert keys([]) == []
    assert keys([("orders", 2), ("missing", 1)]) == ["two"]
    assert keys([("orders", 1), ("other", 1)]) == ["late", "one", "x"]
    assert run(store.claim_timers("w", 10, T0 + 500, 60.0, [("orders", 2)])) == []
    assert len(run(store.claim_timers("w", 10, T0 + 500, 60.0, HELD))) == 2


def test_an_items_commands_go_to_one_owner_at_a_time(store: SQLStore) -> None:
    flow, held = fanout(), [("fanout", 1)]
    run(commit(store, started("x", definition=flow), started("y", definition=flow)))

    first = run(store.claim_commands("w1", 1, T0, 30.0, held))
    assert [c.key for c in first] == ["x"]
    # w2 gets y's three commands, never x's other two while w1 works on x.
    assert sorted(c.key for c in run(store.claim_commands("w2", 10, T0, 30.0, held))) == ["y"] * 3
    assert run(store.claim_commands("w2", 10, T0 + 1, 30.0, held)) == []
    assert [c.key for c in run(store.claim_commands("w1", 10, T0 + 1, 30.0, held))] == ["x", "x"]
    # Once w1's leases run out, another owner may take x's work over.
    assert len(run(store.claim_commands("w3", 10, T0 + 40, 30.0, held))) == 6


def test_only_due_timers_are_claimed_and_each_only_once(store: SQLStore) -> None:
    assert run(store.next_timer_due()) is None
    run(in_review(store, "a"))
    entered = T0 + 1

    assert run(store.next_timer_due()) == entered + 10
    assert run(store.claim_timers("w", 10, entered + 9, 60.0, HELD)) == []
    (due,) = run(store.claim_timers("w", 10, entered + 50, 60.0, HELD))
    assert (due.workflow, due.key, due.event) == ("orders", "a", TimerFired("remind", "review", 1))
    assert run(store.claim_timers("w", 10, entered + 51, 60.0, HELD)) == []
    assert len(run(store.claim_timers("w", 10, entered + 100, 60.0, HELD))) == 1  # expire
    # A timer whose lease ran out (its worker died) is due again, for another worker.
    (again,) = run(store.claim_timers("w2", 10, entered + 111, 60.0, HELD))
    assert again.timer_id == due.timer_id


def test_firing_a_timer_consumes_it_and_leaving_the_state_cancels_the_rest(
    store: SQLStore, query: Query
) -> None:
    items = run(in_review(store, "a", "b"))
    (due, _) = run(store.claim_timers("w", 10, T0 + 20, 60.0, HELD))
    assert due.key == "a"
    fired = step(ORDERS, items["a"], due.event, T0 + 20)

    (outcome,) = run(store.commit([StepCommit(fired, items["a"].seq, timer_id=due.timer_id)]))
    assert outcome.status is CommitStatus.COMMITTED

    assert run(store.get_item(None, "a")).state == "reminded"
    timers = query("SELECT i.key, t.due_at FROM timers t JOIN items i ON i.id = t.item_id")
    assert sorted(timers) == [("b", T0 + 11), ("b", T0 + 101)]
    approved = step(ORDERS, items["b"], External("approve"), T0 + 21)
    run(store.commit([StepCommit(approved, items["b"].seq)]))
    assert run(store.next_timer_due()) is None


def test_racing_claimers_never_get_the_same_row(open_store: OpenStore) -> None:
    first = open_store()
    run(commit(first, *(started(f"k{n:03}") for n in range(120))))
    stores = [first, *(open_store() for _ in range(3))]

    def drain(index: int) -> list[int]:
        store, got = stores[index], []
        while claimed := run(store.claim_commands(f"w{index}", 7, T0, 600.0, HELD)):
            got += [c.outbox_id for c in claimed]
        return got

    with ThreadPoolExecutor(len(stores)) as pool:
        claims = list(pool.map(drain, range(len(stores))))

    every = [outbox_id for got in claims for outbox_id in got]
    assert len(every) == len(set(every)) == 120
    invariant_holds(first)
