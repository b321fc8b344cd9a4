"""What readiness and `statewise check` read: work left due with no runner, recent failures."""

from __future__ import annotations

from statewise.engine import fail_item
from statewise.store import StepCommit
from statewise.store.base import OverdueWork
from statewise.store.sql import SQLStore

from .helpers import T0, commit, in_review, run, started

HELD = [("orders", 1)]


def test_work_due_long_ago_that_no_live_lease_holds_is_overdue(store: SQLStore) -> None:
    run(commit(store, started("waits%/?"), started("ünï")))  # two fetch commands due at T0
    assert run(store.overdue_work(T0)) == OverdueWork(0, 0, None)
    assert run(store.overdue_work(T0 + 1)) == OverdueWork(2, 0, T0)
    claimed = run(store.claim_commands("w1", 1, T0 + 1, 60.0, HELD))
    assert len(claimed) == 1
    assert run(store.overdue_work(T0 + 30)) == OverdueWork(1, 0, T0)  # one is held, alive
    assert run(store.overdue_work(T0 + 100)).commands == 2  # its lease ran out at T0 + 61

    items = run(in_review(store, "timed"))  # review has timers due at T0 + 11 and T0 + 101
    assert items["timed"].state == "review"
    assert run(store.overdue_work(T0 + 50)).timers == 1


def test_failed_since_counts_items_failed_from_then_on(store: SQLStore) -> None:
    run(commit(store, started("a"), started("b")))
    item = run(store.get_item("orders", "a"))
    failed = fail_item(item, "a broken step", T0 + 10)
    run(store.commit([StepCommit(failed, item.seq)]))
    assert run(store.failed_since(T0 + 5)) == 1
    assert run(store.failed_since(T0 + 11)) == 0
    assert run(store.overdue_work(T0 + 20)) == OverdueWork(1, 0, T0)  # a's work went with it
