"""The SQLite store: commits, fencing, context changes, audit rows, leases, timers, queries."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine
from contextlib import closing
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statewise.definition.model import Command, Definition, State, StateKind, Transition
from statewise.engine import (
    CommandSucceeded,
    External,
    HistoryRecord,
    Item,
    ItemStatus,
    Outcome,
    SetContext,
    StepResult,
    TimerFired,
    start,
    step,
)
from statewise.engine.effects import apply_patches
from statewise.errors import NotFoundError, StoreError
from statewise.store import CommitStatus, StateCount, StepCommit, open_store
from statewise.store.sqlite import MIGRATIONS, SQLiteStore

T0 = 1_700_000_000.0
T = TypeVar("T")
OpenStore = Callable[[], SQLiteStore]


def orders(name: str = "orders") -> Definition:
    """intake runs ``fetch``; review waits for approval, with reminder and expiry timers."""
    states = [
        State("intake", command=Command("fetch", "fetch"), transitions=(Transition("review"),)),
        State(
            "review",
            kind=StateKind.WAITING,
            transitions=(
                Transition("approved", on="approve"),
                Transition("reminded", on="remind", after=10.0),
                Transition("expired", on="expire", after=100.0),
            ),
        ),
        *(State(n, kind=StateKind.FINAL) for n in ("approved", "reminded", "expired", "escalated")),
    ]
    return Definition(name=name, version=1, states={s.name: s for s in states}, initial="intake")


ORDERS = orders()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def started(
    key: str, data: dict[str, Any] | None = None, definition: Definition = ORDERS
) -> StepResult:
    return start(definition, key, data or {}, T0)


def fetched(item: Item, at: float = T0 + 1) -> StepResult:
    """``fetch`` succeeded: the item moves into ``review`` and its two timers start."""
    return step(ORDERS, item, CommandSucceeded("intake", 1, 1, {"ok": True}), at)


def noted(item: Item, *patches: SetContext, record: HistoryRecord | None = None) -> StepResult:
    """A step that stays put, changes the context by ``patches`` and writes one audit row."""
    seq = item.seq + 1
    row = record or HistoryRecord(seq, T0 + seq, item.state, item.state, "note", "test")
    moved = replace(item, seq=seq, context=apply_patches(item.context, patches))
    return StepResult(moved, Outcome.STAYED, patches=patches, history=(replace(row, seq=seq),))


async def commit(store: SQLiteStore, *results: StepResult) -> list[CommitStatus]:
    """Commit each result as a step from the item it was computed from (new items: None)."""
    outcomes = await store.commit(
        [
            StepCommit(r, None if r.history[0].from_state is None else r.item.seq - len(r.history))
            for r in results
        ]
    )
    return [outcome.status for outcome in outcomes]


async def in_review(store: SQLiteStore, *keys: str) -> dict[str, Item]:
    """Start ``keys`` and move them into ``review``; returns the items as committed."""
    firsts = [started(k) for k in keys]
    await commit(store, *firsts)
    seconds = [fetched(r.item) for r in firsts]
    await commit(store, *seconds)
    return {r.item.key: r.item for r in seconds}


def query(store: SQLiteStore, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the file directly, through a separate connection."""
    with closing(sqlite3.connect(store.path)) as db:
        return db.execute(sql, args).fetchall()


# --- schema and commits ---------------------------------------------------------------------


def test_migrations_create_the_tables_once_and_reopening_keeps_the_data(
    open_store: OpenStore,
) -> None:
    first = open_store()
    run(commit(first, started("k1", {"a": 1})))
    again = open_store()

    tables = {name for (name,) in query(again, "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"workflows", "items", "context", "history", "timers", "outbox"} <= tables
    assert query(again, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    assert run(again.get_item("orders", "k1")).context == {"a": 1}


def test_a_new_item_commits_once_and_a_duplicate_key_writes_nothing(store: SQLiteStore) -> None:
    assert run(commit(store, started("k1", {"a": 1}))) == [CommitStatus.COMMITTED]
    assert run(commit(store, started("k1", {"a": 2}), started("k2"), started("k2"))) == [
        CommitStatus.DUPLICATE,
        CommitStatus.COMMITTED,
        CommitStatus.DUPLICATE,
    ]

    assert run(store.get_item(None, "k1")).context == {"a": 1}
    assert [len(run(store.history(None, k))) for k in ("k1", "k2")] == [1, 1]
    assert run(store.pending_commands()) == 2


def test_a_step_from_an_out_of_date_item_is_stale_while_the_rest_of_its_batch_commits(
    store: SQLiteStore,
) -> None:
    a, b = started("a"), started("b")
    run(commit(store, a, b))
    claims = {c.key: c.outbox_id for c in run(store.claim_commands("w", 10, T0, 60.0))}
    run(store.commit([StepCommit(fetched(a.item), a.item.seq, outbox_id=claims["a"])]))
    committed = run(store.get_item(None, "a"))
    (a_timer, _) = query(store, "SELECT id FROM timers ORDER BY id")

    statuses = run(
        store.commit(
            [
                StepCommit(fetched(a.item, T0 + 2), a.item.seq, timer_id=a_timer[0]),
                StepCommit(fetched(b.item), b.item.seq, outbox_id=claims["b"]),
            ]
        )
    )

    assert [o.status for o in statuses] == [CommitStatus.STALE, CommitStatus.COMMITTED]
    assert run(store.get_item(None, "a")) == committed
    assert len(run(store.history(None, "a"))) == 2
    assert len(query(store, "SELECT id FROM timers")) == 4  # a's two kept, b's two new
    assert run(store.get_item(None, "b")).state == "review"
    assert run(store.pending_commands()) == 0


def test_a_failing_step_rolls_back_its_whole_batch(store: SQLiteStore) -> None:
    first = started("a")
    run(commit(store, first))
    clash = HistoryRecord(1, T0, "intake", "intake", "note", "test")  # seq 1 exists already
    good = noted(first.item, SetContext(("x",), 1))
    bad = replace(good, history=(clash,))

    with pytest.raises(StoreError, match="UNIQUE constraint failed"):
        run(store.commit([StepCommit(started("b"), None), StepCommit(bad, 1)]))

    assert run(store.get_item(None, "a")) == first.item
    with pytest.raises(NotFoundError):
        run(store.get_item(None, "b"))


# --- context --------------------------------------------------------------------------------


def test_context_is_written_as_changes_and_resetting_a_parent_drops_its_children(
    store: SQLiteStore,
) -> None:
    first = started("k", {"review": {"score": 1}, "keep": True})
    branches = noted(
        first.item,
        SetContext(("translate",), {}),
        SetContext(("translate", "de"), "Hallo"),
        SetContext(("translate", "fr"), "Bonjour"),
        SetContext(("review", "score"), 2),
    )
    reset = noted(branches.item, SetContext(("translate",), {"es": "Hola"}))
    run(commit(store, first, branches))
    paths = [p for (p,) in query(store, "SELECT path FROM context ORDER BY path")]

    assert run(store.get_item(None, "k")).context == branches.item.context
    assert branches.item.context["translate"] == {"de": "Hallo", "fr": "Bonjour"}
    assert paths == [
        "keep",
        "review",
        "review\x1fscore",
        "translate",
        "translate\x1fde",
        "translate\x1ffr",
    ]

    run(commit(store, reset))

    assert run(store.get_item(None, "k")).context == {
        "review": {"score": 2},
        "keep": True,
        "translate": {"es": "Hola"},
    }
    assert [p for (p,) in query(store, "SELECT path FROM context WHERE path LIKE 'tr%'")] == [
        "translate"
    ]


_NAMES = st.sampled_from(["a", "b", "c"])
_VALUES = st.recursive(
    st.none() | st.integers(-3, 3) | st.text("xy", max_size=2),
    lambda inner: st.dictionaries(_NAMES, inner, max_size=3),
    max_leaves=6,
)
_PATCHES = st.lists(
    st.builds(SetContext, st.lists(_NAMES, min_size=1, max_size=3).map(tuple), _VALUES),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_PATCHES, min_size=1, max_size=4), data=st.dictionaries(_NAMES, _VALUES))
def test_decoding_the_stored_context_equals_applying_the_patches(
    store: SQLiteStore, steps: list[list[SetContext]], data: dict[str, Any]
) -> None:
    key = f"k{run(store.pending_commands())}"  # every example starts one more item
    results = [started(key, data)]
    for patches in steps:
        results.append(noted(results[-1].item, *patches))
    run(commit(store, *results))

    assert run(store.get_item(None, key)).context == results[-1].item.context


# --- audit rows -----------------------------------------------------------------------------


def test_history_rows_round_trip_exactly(store: SQLiteStore) -> None:
    full = HistoryRecord(
        seq=2,
        at=T0 + 0.125,
        from_state="intake",
        to_state="review",
        event="approve",
        event_kind="external",
        actor="alice",
        transition=1,
        condition="review.score > 80 && visits.enrich < 3",
        values={"review": {"score": 91.5, "tags": ["a", "ü"]}, "visits": {"enrich": 0}},
        command="fetch",
        branch="de",
        attempt=0,
        duration=0.0,
        error={"kind": "transient", "message": "timed out"},
        note="retry in 0.01s",
    )
    first, other = started("k"), started("k2")
    moved = fetched(other.item)
    run(commit(store, first, noted(first.item, record=full), other, moved))

    assert run(store.history("orders", "k")) == [*first.history, full]
    assert run(store.history(None, "k2")) == [*other.history, *moved.history]


# --- leases and timers ----------------------------------------------------------------------


def test_claimed_commands_are_leased_until_the_lease_runs_out(store: SQLiteStore) -> None:
    run(commit(store, started("a"), started("b")))

    def claim(owner: str, at: float, limit: int = 10) -> list[str]:
        return [c.key for c in run(store.claim_commands(owner, limit, T0 + at, 30.0))]

    assert claim("w1", -1) == []  # not available yet
    (first,) = run(store.claim_commands("w1", 1, T0, 30.0))
    assert (first.workflow, first.key, first.effect.command) == ("orders", "a", "fetch")
    assert claim("w2", 29) == ["b"]
    assert claim("w2", 29.5) == []

    run(store.extend_leases("w1", [first.outbox_id], T0 + 100))
    run(store.extend_leases("w2", [first.outbox_id], T0 + 1000))  # not w2's lease: ignored
    assert claim("w2", 99) == ["b"]  # b's lease ran out, a's was extended
    (again,) = run(store.claim_commands("w2", 10, T0 + 101, 30.0))
    assert (again.outbox_id, again.effect) == (first.outbox_id, first.effect)

    run(store.release([first.outbox_id], []))
    assert claim("w3", 102) == ["a"]


def test_only_due_timers_are_claimed_and_each_only_once(store: SQLiteStore) -> None:
    assert run(store.next_timer_due()) is None
    run(in_review(store, "a"))
    entered = T0 + 1

    assert run(store.next_timer_due()) == entered + 10
    assert run(store.claim_timers("w", 10, entered + 9, 60.0)) == []
    (due,) = run(store.claim_timers("w", 10, entered + 50, 60.0))
    assert (due.workflow, due.key, due.event) == ("orders", "a", TimerFired("remind", "review", 1))
    assert run(store.claim_timers("w", 10, entered + 51, 60.0)) == []
    assert len(run(store.claim_timers("w", 10, entered + 100, 60.0))) == 1  # expire


def test_firing_a_timer_consumes_it_and_leaving_the_state_cancels_the_rest(
    store: SQLiteStore,
) -> None:
    items = run(in_review(store, "a", "b"))
    (due, _) = run(store.claim_timers("w", 10, T0 + 20, 60.0))
    assert due.key == "a"
    fired = step(ORDERS, items["a"], due.event, T0 + 20)

    (outcome,) = run(store.commit([StepCommit(fired, items["a"].seq, timer_id=due.timer_id)]))
    assert outcome.status is CommitStatus.COMMITTED

    assert run(store.get_item(None, "a")).state == "reminded"
    timers = query(store, "SELECT i.key, t.due_at FROM timers t JOIN items i ON i.id = t.item_id")
    assert sorted(timers) == [("b", T0 + 11), ("b", T0 + 101)]
    approved = step(ORDERS, items["b"], External("approve"), T0 + 21)
    run(store.commit([StepCommit(approved, items["b"].seq)]))
    assert run(store.next_timer_due()) is None


def test_running_takes_the_file_lock_and_frees_leases_a_dead_runner_left(
    open_store: OpenStore,
) -> None:
    first, second = open_store(), open_store()
    run(commit(first, started("a")))

    async def scenario() -> None:
        assert len(await first.claim_commands("dead", 10, T0, 600.0)) == 1
        assert await second.claim_commands("late", 10, T0 + 1, 60.0) == []  # leased
        async with first.running("runner-1"):
            (claim,) = await first.claim_commands("runner-1", 10, T0 + 1, 60.0)
            assert claim.key == "a"
            with pytest.raises(StoreError, match=r"already being run by pid \d+ \(runner-1\)"):
                async with second.running("runner-2"):
                    pass  # pragma: no cover
        async with second.running("runner-2"):
            assert len(await second.claim_commands("runner-2", 10, T0 + 2, 60.0)) == 1

    run(scenario())


# --- queries --------------------------------------------------------------------------------


def test_state_counts_and_list_items_filter_and_order(store: SQLiteStore) -> None:
    run(commit(store, started("new"), started("other", definition=orders("other"))))
    run(in_review(store, "r1", "r2"))

    assert run(store.state_counts("orders")) == [
        StateCount("orders", 1, "intake", ItemStatus.ACTIVE, 1, T0),
        StateCount("orders", 1, "review", ItemStatus.WAITING, 2, T0 + 1),
    ]
    assert [(c.workflow, c.state, c.count) for c in run(store.state_counts())] == [
        ("orders", "intake", 1),
        ("orders", "review", 2),
        ("other", "intake", 1),
    ]

    def keys(**filters: Any) -> list[str]:
        return [i.key for i in run(store.list_items(**filters))]

    assert keys() == ["new", "other", "r1", "r2"]
    assert keys(workflow="orders", state="intake") == ["new"]
    assert keys(status=ItemStatus.WAITING) == ["r1", "r2"]
    assert keys(status=ItemStatus.WAITING, limit=1, offset=1) == ["r2"]
    assert keys(state="approved") == []
    assert all(i.context == {} for i in run(store.list_items()))


def test_get_item_says_what_is_missing_or_ambiguous(store: SQLiteStore) -> None:
    run(commit(store, started("dup", {"n": 1}), started("dup", {"n": 2}, orders("other"))))

    with pytest.raises(NotFoundError, match=r"^no item with key 'nope'$"):
        run(store.get_item(None, "nope"))
    with pytest.raises(NotFoundError, match=r"no item with key 'dup' in workflow 'third'"):
        run(store.get_item("third", "dup"))
    with pytest.raises(NotFoundError, match=r"several workflows \(orders, other\); name one"):
        run(store.history(None, "dup"))
    assert run(store.get_item("other", "dup")).context == {"n": 2}
    items = run(store.get_items([("orders", "dup"), ("other", "dup"), ("orders", "nope")]))
    assert {ref: i.context for ref, i in items.items()} == {
        ("orders", "dup"): {"n": 1},
        ("other", "dup"): {"n": 2},
    }
    assert run(store.get_items([])) == {}


def test_saved_workflows_keep_their_first_source(store: SQLiteStore) -> None:
    run(store.save_workflow(replace(ORDERS, source="v1 text"), "orders.yaml", ["a.py"]))
    run(store.save_workflow(replace(ORDERS, source="changed"), "orders.yaml", ["a.py", "b"]))

    (saved,) = run(store.workflows())
    assert (saved.name, saved.version, saved.source, saved.commands) == (
        "orders",
        1,
        "v1 text",
        ("a.py", "b"),
    )


def test_open_store_reads_sqlite_urls_and_refuses_other_schemes(tmp_path: Any) -> None:
    for url in (f"sqlite:///{tmp_path}/a.sqlite", tmp_path / "b.sqlite"):
        opened = open_store(url)
        assert isinstance(opened, SQLiteStore)
        run(opened.close())
    with pytest.raises(StoreError, match="unsupported store URL scheme 'postgres'"):
        open_store("postgres://localhost/db")


def test_conversations_are_kept_per_item_and_agent(store: SQLiteStore) -> None:
    run(commit(store, started("a"), started("b")))
    run(store.save_conversation("orders", "a", "writer", '[{"turn": 1}]'))
    run(store.save_conversation("orders", "a", "reviewer", '[{"turn": 1}]'))
    run(store.save_conversation("orders", "a", "writer", '[{"turn": 1}, {"turn": 2}]'))

    assert run(store.conversations("orders", "a")) == {
        "writer": '[{"turn": 1}, {"turn": 2}]',
        "reviewer": '[{"turn": 1}]',
    }
    assert run(store.conversations("orders", "b")) == {}


def test_the_response_cache_keeps_the_first_response(store: SQLiteStore) -> None:
    assert run(store.cached_response("k")) is None
    run(store.cache_response("k", "first"))
    run(store.cache_response("k", "second"))
    assert run(store.cached_response("k")) == "first"
