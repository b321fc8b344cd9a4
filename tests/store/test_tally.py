"""The counts and per-minute flows commits keep (``store.tally``), on SQLite and PostgreSQL.

Random runs of starts, command results (some failing into retries and escalations), timers,
approvals, cancels, redrives and history prunes are driven through the engine and committed
one step at a time; after each stretch the kept counts must equal a GROUP BY over the items
(``recount``) and the flow figures must equal what the committed audit rows and status
changes say, worked out here on their own. On PostgreSQL two writers commit at once, and a
commit must not wait for another transaction that holds counts of the same state.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import postgres
from statewise.definition.model import ErrorKind
from statewise.engine import (
    CommandSucceeded,
    External,
    Item,
    ItemStatus,
    StepResult,
    start,
    step,
)
from statewise.engine.events import CommandFailed, Event, Operate, Operation
from statewise.errors import InvalidEventError
from statewise.store import CommitStatus, StepCommit, open_store
from statewise.store.base import CountDrift, StateCount
from statewise.store.retention import Prunable, PruneRule
from statewise.store.sql import SQLStore
from statewise.store.tally import FLOW_COLUMNS, Flow, bucket, estimate

from .conftest import Query
from .helpers import ORDERS, run, started

COMMITTED = CommitStatus.COMMITTED


@dataclass
class Expected:
    """The flow figures worked out from what was committed, by (workflow, state)."""

    entered: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    left: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    retries: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    dwells: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ended: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def add(self, before: Item | None, result: StepResult) -> None:
        """One committed step: its audit rows, and the status it ended the item in."""
        for r in result.history:
            if r.from_state != r.to_state or r.dwell is not None:
                self.entered[r.to_state] += 1
            if r.from_state is None:
                continue
            if r.dwell is not None:
                self.left[r.from_state] += 1
                self.dwells[r.from_state].append(r.dwell)
            if r.error and r.command:
                self.failures[r.from_state] += 1
            if r.event == "retry":
                self.retries[r.from_state] += 1
            if r.to_state == "escalated" and r.from_state != "escalated":
                self.ended[("escalated", r.from_state)] += 1
        item = result.item
        if before is not None and before.status is item.status:
            return
        if item.status is ItemStatus.DONE and "escalated" not in item.visits:
            self.ended[("finished", item.state)] += 1
        elif item.status in (ItemStatus.FAILED, ItemStatus.CANCELLED):
            self.ended[(item.status.value, item.state)] += 1


@dataclass
class Driver:
    """Random operations on the ``orders`` items of one store, each step its own commit."""

    store: SQLStore
    rng: random.Random
    prefix: str = "k"
    now: float = field(default_factory=lambda: time.time() - 7_200)
    keys: list[str] = field(default_factory=list)
    expected: Expected = field(default_factory=Expected)

    def tick(self) -> float:
        """Time moves on by up to 90 s a step, so figures spread over many minutes."""
        self.now += self.rng.uniform(0, 90)
        return self.now

    async def start(self) -> None:
        key = f"{self.prefix}-{len(self.keys)}/%ü"
        result = start(ORDERS, key, {}, self.tick())
        (outcome,) = await self.store.commit([StepCommit(result, None)])
        assert outcome.status is COMMITTED
        self.keys.append(key)
        self.expected.add(None, result)

    async def move(self) -> None:
        """One step of a random item: its pending work, an approval, or an operator's action."""
        key = self.rng.choice(self.keys)
        item = await self.store.get_item("orders", key)
        pending = await self.store.pending_work("orders", key)
        event, consumed = self._event(item, pending)
        if event is None:
            return
        try:
            result = step(ORDERS, item, event, self.tick())
        except InvalidEventError:
            return
        (outcome,) = await self.store.commit([StepCommit(result, item.seq, **consumed)])
        assert outcome.status is COMMITTED, outcome
        if result.history:
            self.expected.add(item, result)

    def _event(self, item: Item, pending: Any) -> tuple[Event | None, dict[str, int]]:
        roll = self.rng.random()
        if roll < 0.08:
            return Operate(Operation.CANCEL, "not needed", "op"), {}
        if roll < 0.16:
            return Operate(Operation.RETRY, "again", "op", target="intake"), {}
        if pending.commands:
            run_ = pending.commands[0]
            command = run_.effect
            if self.rng.random() < 0.35:
                kind = self.rng.choice((ErrorKind.TRANSIENT, ErrorKind.PERMANENT))
                event: Event = CommandFailed(
                    command.state, command.visit, command.attempt, kind, "down", duration=0.5
                )
            else:
                event = CommandSucceeded(command.state, command.visit, command.attempt, {"ok": 1})
            return event, {"outbox_id": run_.outbox_id}
        if pending.timers and self.rng.random() < 0.3:
            timer = pending.timers[0]
            return timer.event, {"timer_id": timer.timer_id}
        if item.status is ItemStatus.WAITING:
            return External("approve"), {}
        return None, {}


def grouped(query: Query) -> list[tuple[Any, ...]]:
    """The items counted the slow way, as ``state_counts`` gives them."""
    return [
        (w, int(v), s, st, int(c), float(e))
        for w, v, s, st, c, e in query(
            "SELECT workflow, version, state, status, COUNT(*), MIN(entered_at) FROM items "
            "GROUP BY workflow, version, state, status ORDER BY workflow, version, state, status"
        )
    ]


def as_rows(counts: list[StateCount]) -> list[tuple[Any, ...]]:
    return [
        (c.workflow, c.version, c.state, c.status.value, c.count, c.oldest_entered_at)
        for c in counts
    ]


def check(store: SQLStore, query: Query, expected: Expected) -> None:
    """Kept counts equal the items; kept flows equal what the committed steps said."""
    assert run(store.recount()) == []
    assert as_rows(run(store.state_counts())) == grouped(query)
    assert run(store.stuck_items()) == []
    stats = {s.state: s for s in run(store.state_stats(0.0, "orders"))}
    states = set(expected.entered) | set(expected.left) | {s for _, s in expected.ended}
    assert set(stats) == states
    for state, figures in stats.items():
        assert figures.entered == expected.entered[state], state
        assert figures.left == expected.left[state], state
        assert figures.failures == expected.failures[state], state
        assert figures.retries == expected.retries[state], state
        for outcome in ("finished", "escalated", "failed", "cancelled"):
            assert getattr(figures, outcome) == expected.ended[(outcome, state)], (outcome, state)
        dwells = sorted(expected.dwells[state])
        for fraction, estimated in ((0.5, figures.dwell_p50), (0.95, figures.dwell_p95)):
            if not dwells:
                assert estimated is None
                continue
            exact = dwells[max(1, math.ceil(len(dwells) * fraction)) - 1]
            assert estimated is not None
            assert bucket(estimated) == bucket(exact), (state, fraction, estimated, exact)


def test_random_runs_keep_counts_and_flows_equal_to_the_items_and_steps(
    store: SQLStore, query: Query
) -> None:
    """Starts, results, failures, timers, approvals, cancels, redrives and prunes."""
    run(store.save_workflow(ORDERS, "orders.yaml", []))
    driver = Driver(store, random.Random(16))

    async def stretch(moves: int) -> None:
        for _ in range(moves):
            if not driver.keys or driver.rng.random() < 0.2:
                await driver.start()
            else:
                await driver.move()

    for _ in range(4):
        run(stretch(60))
        check(store, query, driver.expected)
        rule = PruneRule("orders", Prunable.HISTORY, driver.now + 1, "test")
        ids, _ = run(store.prune_candidates(rule, None, 1000))
        run(store.prune(rule, ids, now=driver.now, actor="test"))
        check(store, query, driver.expected)  # pruning the audit trail keeps the figures
    statuses = {row[3] for row in grouped(query)}
    assert {"done", "cancelled"} <= statuses
    figures = run(store.state_stats(0.0))
    assert sum(s.escalated for s in figures) > 0
    assert sum(s.failures for s in figures) > 0


def test_a_batch_counts_each_item_once_where_it_ends(store: SQLStore) -> None:
    """Several steps of one item in one commit move its count once, start to last state."""
    run(store.save_workflow(ORDERS, "orders.yaml", []))
    first = started("a")
    second = step(
        ORDERS, first.item, CommandSucceeded("intake", 1, 1, {"ok": 1}), first.item.updated_at + 1
    )
    outcomes = run(store.commit([StepCommit(first, None), StepCommit(second, first.item.seq)]))
    assert [o.status for o in outcomes] == [COMMITTED, COMMITTED]
    assert [(c.state, c.status.value, c.count) for c in run(store.state_counts())] == [
        ("review", "waiting", 1)
    ]
    assert run(store.recount()) == []


def test_recount_finds_and_repairs_drift(store: SQLStore, query: Query) -> None:
    run(store.save_workflow(ORDERS, "orders.yaml", []))
    run(store.commit([StepCommit(started(k), None) for k in ("a", "b")]))
    query("UPDATE counts_by_state SET count = count + 5")
    assert run(store.recount()) == [CountDrift("orders", 1, "intake", "active", 7, 2)]
    assert run(store.recount(repair=True)) == [CountDrift("orders", 1, "intake", "active", 7, 2)]
    assert run(store.recount()) == []
    assert [c.count for c in run(store.state_counts())] == [2]


def test_the_migration_counts_the_items_already_stored(store: SQLStore, query: Query) -> None:
    """The backfill the migration runs gives the counts a GROUP BY gives."""
    from statewise.store.tally import backfill_counts_txn

    run(store.save_workflow(ORDERS, "orders.yaml", []))
    run(store.commit([StepCommit(started(k), None) for k in ("a", "b", "c")]))
    query("DELETE FROM counts_by_state")
    run(store._write(backfill_counts_txn))
    assert as_rows(run(store.state_counts())) == grouped(query)


def test_a_flow_row_lists_its_figures_in_column_order() -> None:
    flow = Flow(*range(1, 11))
    flow.dwells[3] = 7
    row = dict(zip(FLOW_COLUMNS, flow.values(), strict=True))
    assert {name: row[name] for name in FLOW_COLUMNS if name in Flow.__slots__} == {
        name: getattr(flow, name) for name in FLOW_COLUMNS if name in Flow.__slots__
    }
    assert row["d3"] == 7


def test_the_dwell_estimate_is_within_its_power_of_two_bucket() -> None:
    rng = random.Random(3)
    dwells = sorted(rng.lognormvariate(3, 2) for _ in range(5_000))
    histogram = [0] * 25
    for dwell in dwells:
        histogram[bucket(dwell)] += 1
    for fraction in (0.5, 0.95):
        exact = dwells[math.ceil(len(dwells) * fraction) - 1]
        estimated = estimate(histogram, fraction)
        assert estimated is not None
        assert exact / 2 <= estimated <= exact * 2
    assert estimate([0] * 25, 0.5) is None


# PostgreSQL: many writers.


def on_postgres(server: str, schema: str) -> Query:
    """``query`` for the PostgreSQL-only tests (the fixture runs on both stores)."""

    def query(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with closing(postgres.connect(server, schema)) as conn:
            cursor = conn.execute(sql.replace("?", "%s"), args)
            return cursor.fetchall() if cursor.description else []

    return query


def test_two_writers_at_once_lose_no_count_and_keep_the_invariant(
    postgres_url: str, postgres_server: str, postgres_schema: str
) -> None:
    """Two threads, each with its own store (own connections), commit their own items."""
    query = on_postgres(postgres_server, postgres_schema)
    setup = open_store(postgres_url)
    assert isinstance(setup, SQLStore)
    run(setup.save_workflow(ORDERS, "orders.yaml", []))
    failures: list[BaseException] = []
    drivers: list[Driver] = []

    def writer(seed: int) -> None:
        store = open_store(postgres_url)
        assert isinstance(store, SQLStore)
        driver = Driver(store, random.Random(seed), prefix=f"w{seed}")
        drivers.append(driver)

        async def work() -> None:
            for _ in range(120):
                if not driver.keys or driver.rng.random() < 0.25:
                    await driver.start()
                else:
                    await driver.move()

        try:
            asyncio.run(work())
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
        finally:
            asyncio.run(store.close())

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    stuck: list[Any] = []
    while any(t.is_alive() for t in threads):
        stuck += run(setup.stuck_items())
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert failures == []
    assert stuck == []
    assert run(setup.recount()) == []
    assert as_rows(run(setup.state_counts())) == grouped(query)
    total = Expected()
    for driver in drivers:
        for name in ("entered", "left"):
            for state, count in getattr(driver.expected, name).items():
                getattr(total, name)[state] += count
    stats = {s.state: s for s in run(setup.state_stats(0.0))}
    assert {s: f.entered for s, f in stats.items() if f.entered} == dict(total.entered)
    assert {s: f.left for s, f in stats.items() if f.left} == dict(total.left)
    run(setup.close())


def test_a_commit_does_not_wait_for_another_holding_counts_of_the_same_state(
    postgres_url: str, postgres_server: str, postgres_schema: str
) -> None:
    """The first transaction moves an item intake -> review and stays open; a second commit
    moving another item the same way commits at once, and both changes are counted."""
    from statewise.store.commit import commit_txn
    from statewise.store.postgres import _PostgresConnection

    store = open_store(postgres_url)
    assert isinstance(store, SQLStore)
    run(store.save_workflow(ORDERS, "orders.yaml", []))
    starts = [started(k) for k in ("held", "free")]
    run(store.commit([StepCommit(r, None) for r in starts]))
    moved = [
        step(ORDERS, r.item, CommandSucceeded("intake", 1, 1, {"ok": 1}), r.item.updated_at + 1)
        for r in starts
    ]
    outcomes: list[CommitStatus] = []

    def second() -> None:
        done = run(store.commit([StepCommit(moved[1], starts[1].item.seq)]))
        outcomes.extend(o.status for o in done)

    other = threading.Thread(target=second)
    holder = postgres.connect(postgres_server, postgres_schema)
    holder.autocommit = False
    try:
        outcome = commit_txn(
            _PostgresConnection(holder), store, [StepCommit(moved[0], starts[0].item.seq)], None
        )
        assert [o.status for o in outcome] == [COMMITTED]
        began = time.monotonic()
        other.start()
        other.join(timeout=5.0)
        waited = time.monotonic() - began
        assert outcomes == [COMMITTED], f"the second commit still waits after {waited:.1f} s"
        holder.commit()
    finally:
        holder.close()  # a transaction still open rolls back, and a waiting commit goes on
        if other.is_alive():
            other.join()
    assert [(c.state, c.count) for c in run(store.state_counts())] == [("review", 2)]
    assert run(store.recount()) == []
    run(store.close())


def test_the_shard_a_transaction_takes_is_its_own(
    postgres_url: str, postgres_server: str, postgres_schema: str
) -> None:
    """While one transaction holds shard 0, the next takes shard 1, and 0 again afterwards."""
    from statewise.store.postgres import _PostgresConnection

    store = open_store(postgres_url)
    assert isinstance(store, SQLStore)
    first = postgres.connect(postgres_server, postgres_schema)
    second = postgres.connect(postgres_server, postgres_schema)
    try:
        first.autocommit = second.autocommit = False
        assert store.tally_shard_txn(_PostgresConnection(first)) == 0
        assert store.tally_shard_txn(_PostgresConnection(second)) == 1
        second.commit()
        first.commit()
        assert store.tally_shard_txn(_PostgresConnection(second)) == 0
        second.commit()
    finally:
        first.close()
        second.close()
    run(store.close())
