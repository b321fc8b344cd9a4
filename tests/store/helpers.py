"""Definitions and step builders the store suite shares."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from statewise.definition.model import (
    Branch,
    Command,
    Definition,
    Parallel,
    State,
    StateKind,
    Transition,
)
from statewise.engine import (
    CommandSucceeded,
    HistoryRecord,
    Item,
    Outcome,
    SetContext,
    StepResult,
    start,
    step,
)
from statewise.engine.effects import Effect, apply_patches
from statewise.store import CommitStatus, StepCommit
from statewise.store.sql import SQLStore

T0 = 1_700_000_000.0
T = TypeVar("T")


def orders(name: str = "orders", version: int = 1) -> Definition:
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
    return Definition(
        name=name, version=version, states={s.name: s for s in states}, initial="intake"
    )


def fanout() -> Definition:
    """One parallel state of three fixed branches: starting an item queues three commands."""
    branches = tuple(Branch(n, Command(f"work_{n}", n)) for n in ("a", "b", "c"))
    states = [
        State(
            "split",
            kind=StateKind.PARALLEL,
            parallel=Parallel(branches=branches),
            transitions=(Transition("joined"),),
        ),
        State("joined", kind=StateKind.FINAL),
        State("escalated", kind=StateKind.FINAL),
    ]
    return Definition(name="fanout", version=1, states={s.name: s for s in states}, initial="split")


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


def noted(
    item: Item,
    *patches: SetContext,
    record: HistoryRecord | None = None,
    effects: tuple[Effect, ...] = (),
) -> StepResult:
    """A step that stays put, changes the context by ``patches`` and writes one audit row."""
    seq = item.seq + 1
    row = record or HistoryRecord(seq, T0 + seq, item.state, item.state, "note", "test")
    moved = replace(item, seq=seq, context=apply_patches(item.context, patches))
    return StepResult(
        moved, Outcome.STAYED, effects=effects, patches=patches, history=(replace(row, seq=seq),)
    )


def ignored(item: Item) -> StepResult:
    """What the engine returns for an event it judged stale: nothing to write."""
    return StepResult(item, Outcome.IGNORED)


async def commit(store: SQLStore, *results: StepResult) -> list[CommitStatus]:
    """Commit each result as a step from the item it was computed from (new items: None)."""
    outcomes = await store.commit(
        [
            StepCommit(r, None if r.history[0].from_state is None else r.item.seq - len(r.history))
            for r in results
        ]
    )
    return [outcome.status for outcome in outcomes]


async def in_review(store: SQLStore, *keys: str) -> dict[str, Item]:
    """Start ``keys`` and move them into ``review``; returns the items as committed."""
    firsts = [started(k) for k in keys]
    await commit(store, *firsts)
    seconds = [fetched(r.item) for r in firsts]
    await commit(store, *seconds)
    return {r.item.key: r.item for r in seconds}


def invariant_holds(store: SQLStore) -> None:
    """Every active item has a pending command or timer (waiting ones need neither)."""
    assert run(store.stuck_items()) == []
