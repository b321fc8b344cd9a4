"""Each step's output in the store: small ones on their row, large ones once per item.

Every test runs on SQLite and on PostgreSQL, through ``commit`` and ``history`` as the runner
and the readers use them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from statewise.definition.model import Command, Definition, State, StateKind, Transition
from statewise.engine import CommandSucceeded, HistoryRecord, Item, StepResult, start, step
from statewise.store import CommitStatus
from statewise.store.codec import INLINE_ROW_CHARS
from statewise.store.sql import SQLStore

from .conftest import OpenStore, Query
from .helpers import T0, commit, invariant_holds, noted, run

HOSTILE = "naïve \x00 ключ ✓ %/?"
# Larger than what a row keeps inline, with NUL and non-ASCII text in it.
LARGE = {"score": 40, "draft": "x" * INLINE_ROW_CHARS + HOSTILE}
# score runs its command, then goes through revise (no command) into score again, for ever.
LOOP = Definition(
    name="drafts",
    version=1,
    states={
        "score": State(
            "score",
            command=Command("score", "score"),
            transitions=(Transition("revise", is_else=True),),
        ),
        "revise": State("revise", transitions=(Transition("score"),)),
        "escalated": State("escalated", kind=StateKind.FINAL),
    },
    initial="score",
)


def scored(item: Item, result: Any, at: float) -> StepResult:
    """The score command of the item's current visit returned ``result``."""
    return step(LOOP, item, CommandSucceeded("score", item.visit, 1, result), at)


def rows_of(query: Query, key: str) -> list[tuple[int, str | None, str | None]]:
    return query(
        "SELECT h.seq, h.output, h.output_hash FROM history h JOIN items i ON i.id = h.item_id "
        "WHERE i.key = ? ORDER BY h.seq",
        key,
    )


def payloads_of(query: Query, key: str) -> list[tuple[str, str]]:
    return query(
        "SELECT p.hash, p.body FROM payloads p JOIN items i ON i.id = p.item_id WHERE i.key = ?",
        key,
    )


def test_a_large_output_two_rounds_produce_is_stored_once_and_read_back_on_both(
    store: SQLStore, query: Query
) -> None:
    steps = [start(LOOP, "d1", {"title": HOSTILE}, T0)]
    for n in (1, 2):
        steps.append(scored(steps[-1].item, LARGE, T0 + n))
    assert run(commit(store, *steps)) == [CommitStatus.COMMITTED] * 3

    history = run(store.history("drafts", "d1"))
    assert [(r.seq, r.from_state, r.visit, r.output) for r in history] == [
        (1, None, None, {"title": HOSTILE}),
        (2, "score", 1, LARGE),
        (3, "revise", None, None),
        (4, "score", 2, LARGE),
        (5, "revise", None, None),
    ]
    text = json.dumps(LARGE, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert payloads_of(query, "d1") == [(digest, text)]
    stored = rows_of(query, "d1")
    assert json.loads(stored[0][1] or "") == {"title": HOSTILE} and stored[0][2] is None
    assert [row[1:] for row in stored[1:]] == [(None, digest), (None, None)] * 2
    invariant_holds(store)


def test_small_outputs_stay_on_their_rows_and_a_large_one_is_kept_once_per_item(
    store: SQLStore, query: Query
) -> None:
    for key in ("a", "b"):
        began = start(LOOP, key, {}, T0)
        statuses = run(commit(store, began, scored(began.item, LARGE, T0 + 1)))
        assert statuses == [CommitStatus.COMMITTED] * 2
    small = {"score": 1, "note": HOSTILE}
    item = run(store.get_item("drafts", "a"))
    assert run(commit(store, scored(item, small, T0 + 2))) == [CommitStatus.COMMITTED]

    assert [len(payloads_of(query, key)) for key in ("a", "b")] == [1, 1]
    assert json.loads(rows_of(query, "a")[3][1] or "") == small
    outputs = [r.output for r in run(store.history("drafts", "a"))]
    assert outputs == [{}, LARGE, None, small, None]


def test_a_stale_writers_large_output_leaves_no_payload(
    open_store: OpenStore, query: Query
) -> None:
    left, right = open_store(), open_store()
    run(commit(left, start(LOOP, "k", {}, T0)))
    seen_left, seen_right = run(left.get_item(None, "k")), run(right.get_item(None, "k"))
    row = HistoryRecord(0, T0 + 1, "score", "score", "note", "test")

    kept = noted(seen_left, record=replace(row, output={"by": "left"}))
    assert run(commit(left, kept)) == [CommitStatus.COMMITTED]
    lost = noted(seen_right, record=replace(row, output=LARGE))
    assert run(commit(right, lost)) == [CommitStatus.STALE]

    assert payloads_of(query, "k") == []
    assert [r.output for r in run(right.history(None, "k"))] == [{}, {"by": "left"}]
    invariant_holds(right)
