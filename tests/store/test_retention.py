"""Pruning finished items' outputs and history, on SQLite and PostgreSQL.

Items are run into a final state with the engine, then given outputs, a large payload and a
conversation directly in the tables (as the record and the agents write them), and dated back.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from hostile import HOSTILE_BUT_VALID_KEYS
from statewise.actions.retention import Archive, age_rules, policy_rules, prune
from statewise.definition import loads
from statewise.engine import External, SetContext, fail_item, step
from statewise.engine.events import Operate, Operation
from statewise.errors import InvalidInputError
from statewise.store import CommitStatus, StepCommit
from statewise.store.retention import HISTORY_PRUNED, Prunable, PruneRule
from statewise.store.sql import SQLStore
from statewise.store.sqlite import SQLiteStore
from statewise.store.tally import FLOW_COLUMNS
from statewise.worker.writer import ItemWriter

from .conftest import OpenStore, Query
from .helpers import ORDERS, T0, commit, in_review, invariant_holds, noted, run, started

COMMITTED = CommitStatus.COMMITTED
NOW = time.time()
DAY = 86_400.0
OUTPUT = '{"score":0.9,"why":"naïve"}'
BODY = json.dumps({"draft": "x" * 2_000})
DIGEST = "d" * 64
MESSAGES = '[{"role":"user","text":"hello"}]'
# What an item's outputs weigh, as stored (UTF-8): one inline output, one output named by
# hash, its payload, one conversation.
OUTPUT_BYTES = (
    len(OUTPUT.encode()) + len(DIGEST) + len(DIGEST) + len(BODY) + len("writer") + len(MESSAGES)
)
POLICY = """\
workflow: orders
version: 2
retention: {outputs: 30d, history: 365d}
states:
  intake: {kind: initial, command: fetch, transitions: [{to: review}]}
  review:
    kind: waiting
    transitions: [{on: approve, to: approved}]
  approved: {kind: final}
"""


def finished(store: SQLStore, query: Query, *keys: str, days_ago: float = 400) -> None:
    """Run ``keys`` to ``approved`` (done), give each outputs, and date them ``days_ago``."""
    items = run(in_review(store, *keys))
    approved = [step(ORDERS, item, External("approve"), T0 + 2) for item in items.values()]
    run(commit(store, *approved))
    for key in keys:
        give_outputs(query, key)
    date(query, days_ago, *keys)


def give_outputs(query: Query, key: str) -> None:
    """An inline output on the first audit row, a large one by hash on the last, a conversation."""
    ((item_id, seq),) = query("SELECT id, seq FROM items WHERE key = ?", key)
    # Only these outputs, so the figures below are exact: the steps kept theirs (start data).
    query("UPDATE history SET output = NULL, output_hash = NULL WHERE item_id = ?", item_id)
    query("UPDATE history SET output = ? WHERE item_id = ? AND seq = 1", OUTPUT, item_id)
    query("UPDATE history SET output_hash = ? WHERE item_id = ? AND seq = ?", DIGEST, item_id, seq)
    query("INSERT INTO payloads (item_id, hash, body) VALUES (?, ?, ?)", item_id, DIGEST, BODY)
    query(
        "INSERT INTO conversations (item_id, agent, messages, updated_at) VALUES (?, ?, ?, ?)",
        item_id,
        "writer",
        MESSAGES,
        T0,
    )


def date(query: Query, days_ago: float, *keys: str) -> None:
    for key in keys:
        at = NOW - days_ago * DAY
        query("UPDATE items SET updated_at = ?, entered_at = ? WHERE key = ?", at, at, key)


def rows_of(query: Query, key: str) -> list[tuple[Any, ...]]:
    """An item's audit rows as stored, outputs included."""
    return query(
        "SELECT h.* FROM history h JOIN items i ON i.id = h.item_id WHERE i.key = ? ORDER BY h.seq",
        key,
    )


def tables(query: Query) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a prune may touch, in a stable order."""
    return {
        "items": query("SELECT id, key, state, status, seq, updated_at FROM items ORDER BY id"),
        "history": query("SELECT * FROM history ORDER BY item_id, seq"),
        "payloads": query("SELECT * FROM payloads ORDER BY item_id, hash"),
        "conversations": query("SELECT * FROM conversations ORDER BY item_id, agent"),
        "context": query("SELECT * FROM context ORDER BY item_id, path"),
    }


def prune_all(
    store: SQLStore,
    what: Prunable,
    *,
    dry_run: bool = False,
    archive: Archive | None = None,
    page: int = 500,
) -> Any:
    async def go() -> Any:
        rules = await age_rules(store, 90 * DAY, NOW, workflow=None, what=what)
        return await prune(
            store, rules, now=NOW, actor="ops", dry_run=dry_run, archive=archive, page=page
        )

    return run(go())


def saved(store: SQLStore) -> SQLStore:
    """The store, holding the definition ``orders@1`` (a prune by age covers stored workflows)."""
    run(store.save_workflow(ORDERS, "orders.yaml", []))
    return store


@pytest.mark.parametrize("what", list(Prunable))
def test_a_dry_run_changes_nothing_and_measures_what_the_prune_drops(
    store: SQLStore, query: Query, what: Prunable
) -> None:
    saved(store)
    finished(store, query, "a", "b", "c")
    before = tables(query)

    dry = prune_all(store, what, dry_run=True, page=2)

    assert tables(query) == before
    done = prune_all(store, what, page=2)
    assert done.total == dry.total and not done.dry_run and dry.dry_run
    assert done.total.items == 3 and done.total.payloads == 3 and done.total.conversations == 3
    assert done.total.outputs == 6
    if what is Prunable.OUTPUTS:
        assert done.total.bytes == 3 * OUTPUT_BYTES
        assert done.total.history_rows == 0
    else:
        rows = before["history"]
        assert done.total.history_rows == len(rows)
        assert done.total.bytes > 3 * OUTPUT_BYTES + sum(len(r[6]) for r in rows)
    assert prune_all(store, what).total.items == 0  # nothing left to drop


def test_an_outputs_prune_keeps_the_audit_rows_and_the_context(
    store: SQLStore, query: Query
) -> None:
    saved(store)
    finished(store, query, "a")
    before = tables(query)

    prune_all(store, Prunable.OUTPUTS)

    after = tables(query)
    assert after["payloads"] == [] and after["conversations"] == []
    assert after["items"] == before["items"] and after["context"] == before["context"]
    assert [row[:7] for row in after["history"]] == [row[:7] for row in before["history"]]
    assert query(
        "SELECT COUNT(*) FROM history WHERE output IS NOT NULL OR output_hash IS NOT NULL"
    ) == [(0,)]


def test_a_history_prune_leaves_one_row_that_says_so_and_the_key_stays_taken(
    store: SQLStore, query: Query
) -> None:
    saved(store)
    finished(store, query, "a")
    item = run(store.get_item("orders", "a"))

    prune_all(store, Prunable.HISTORY)

    (record,) = run(store.history("orders", "a"))
    assert (record.seq, record.event, record.event_kind) == (item.seq, HISTORY_PRUNED, "retention")
    assert (record.from_state, record.to_state, record.actor) == ("approved", "approved", "ops")
    assert record.note is not None
    assert record.note.startswith(f"history pruned {time.strftime('%Y-%m-%d', time.gmtime(NOW))}")
    assert f"{item.seq} audit row(s) of 2023-11-14 to 2023-11-14 removed" in record.note
    assert run(store.get_item("orders", "a")) == item  # the item and its context stay
    assert run(commit(store, started("a"))) == [CommitStatus.DUPLICATE]
    assert query("SELECT COUNT(*) FROM items") == [(1,)]
    moved = run(
        ItemWriter(store, [ORDERS]).apply(
            "orders", "a", Operate(Operation.MOVE, "recheck", "ops", "review"), "a move"
        )
    )
    assert moved.seq == item.seq + 1  # a later step numbers on from the pruned history
    assert [r.event for r in run(store.history("orders", "a"))] == [HISTORY_PRUNED, "moved"]


def test_only_items_finished_long_enough_ago_are_ever_pruned(store: SQLStore, query: Query) -> None:
    saved(store)
    finished(store, query, "done", "cancelled", "young", "failed")
    run(in_review(store, "waiting"))
    run(commit(store, started("active")))
    query("UPDATE items SET status = 'cancelled' WHERE key = 'cancelled'")
    date(query, 1, "young")
    failed = run(store.get_item("orders", "failed"))
    quarantine = fail_item(failed, "a defect", NOW - 400 * DAY)
    assert run(commit(store, quarantine)) == [CommitStatus.COMMITTED]
    date(query, 400, "failed", "waiting", "active")
    for key in ("waiting", "active"):
        give_outputs(query, key)
    kept = {key: rows_of(query, key) for key in ("young", "failed", "waiting", "active")}

    report = prune_all(store, Prunable.HISTORY)

    assert report.total.items == 2
    pruned = query(
        "SELECT i.key FROM items i JOIN history h ON h.item_id = i.id WHERE h.event = ?",
        HISTORY_PRUNED,
    )
    assert sorted(pruned) == [("cancelled",), ("done",)]
    assert {key: rows_of(query, key) for key in kept} == kept
    invariant_holds(store)


def test_the_archive_holds_exactly_the_pruned_items_and_hostile_keys_round_trip(
    store: SQLStore, query: Query, tmp_path: Path
) -> None:
    saved(store)
    keys = [*HOSTILE_BUT_VALID_KEYS, "a\u2028line"]
    finished(store, query, *keys, "young")
    date(query, 1, "young")
    path = tmp_path / "archive.jsonl"
    archive = Archive(path)

    report = prune_all(store, Prunable.HISTORY, archive=archive, page=3)
    archive.close()

    records = [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]
    assert sorted(r["key"] for r in records) == sorted(keys) and report.total.items == len(keys)
    first = records[0]
    assert (first["workflow"], first["version"], first["state"], first["status"]) == (
        "orders", 1, "approved", "done",
    )  # fmt: skip
    assert first["history"][0]["output"] == json.loads(OUTPUT)
    assert first["history"][-1]["output"] == json.loads(BODY)
    assert first["history"][-1]["output_hash"] == DIGEST
    assert first["conversations"] == {"writer": MESSAGES}
    assert [row["seq"] for row in first["history"]] == list(range(1, first["seq"] + 1))
    with pytest.raises(InvalidInputError, match="control"):
        run(ItemWriter(store, [ORDERS]).start(ORDERS, [("nul\x00key", {})]))


def test_an_item_redriven_after_it_was_listed_is_not_pruned(
    store: SQLStore, query: Query, open_store: OpenStore
) -> None:
    saved(store)
    finished(store, query, "a", "b")
    rule = PruneRule("orders", Prunable.HISTORY, NOW - 90 * DAY, "test")
    ids, _ = run(store.prune_candidates(rule, None, 10))
    assert len(ids) == 2
    other = open_store()  # an operator's process moves "a" back into review meanwhile
    run(
        ItemWriter(other, [ORDERS]).apply(
            "orders", "a", Operate(Operation.MOVE, "recheck", "ops", "review"), "a move"
        )
    )
    before = rows_of(query, "a")

    figures = run(store.prune(rule, ids, now=NOW, actor="ops"))

    assert figures.items == 1
    assert rows_of(query, "a") == before
    assert query("SELECT COUNT(*) FROM payloads p JOIN items i ON i.id = p.item_id "
                 "WHERE i.key = 'a'") == [(1,)]  # fmt: skip
    invariant_holds(store)


def test_a_prune_beside_a_writer_and_another_prune_loses_nothing(
    store: SQLStore, query: Query, open_store: OpenStore
) -> None:
    saved(store)
    old = [f"old-{n}" for n in range(12)]
    finished(store, query, *old)
    live = run(in_review(store, *(f"live-{n}" for n in range(4))))
    writer, pruner = open_store(), open_store()

    async def write() -> int:
        steps = 0
        for round_ in range(6):
            for key, item in list(live.items()):
                result = noted(item, SetContext(("round",), round_))
                assert (await writer.commit([StepCommit(result, item.seq)]))[0].status is COMMITTED
                live[key] = result.item
                steps += 1
            await asyncio.sleep(0)
        return steps

    async def both() -> tuple[int, Any, Any]:
        rules = await age_rules(store, 90 * DAY, NOW, workflow=None, what=Prunable.HISTORY)
        return await asyncio.gather(
            write(),
            prune(store, rules, now=NOW, actor="one", dry_run=False, page=2),
            prune(pruner, rules, now=NOW, actor="two", dry_run=False, page=3),
        )

    steps, first, second = run(both())

    assert first.total.items + second.total.items == len(old)  # each item pruned once
    assert query("SELECT COUNT(*) FROM history WHERE event = ?", HISTORY_PRUNED) == [(len(old),)]
    for key, item in live.items():
        assert [r.seq for r in run(store.history("orders", key))] == list(range(1, item.seq + 1))
        assert run(store.get_item("orders", key)).context["round"] == 5
    assert steps == 24
    invariant_holds(store)


def test_the_policy_of_the_newest_version_prunes_every_version(
    store: SQLStore, query: Query
) -> None:
    run(store.save_workflow(loads(POLICY, file="orders.yaml"), "orders.yaml", []))
    finished(store, query, "ancient", "old", "recent")
    date(query, 400, "ancient")
    date(query, 60, "old")
    date(query, 10, "recent")

    async def apply(dry_run: bool) -> Any:
        rules = await policy_rules(store, NOW)
        return await prune(store, rules, now=NOW, actor="retention", dry_run=dry_run)

    dry = run(apply(True))
    report = run(apply(False))

    assert dry.total == report.total
    by_rule = {(line.rule.what, line.rule.workflow): line.figures.items for line in report.lines}
    assert by_rule == {(Prunable.HISTORY, "orders"): 1, (Prunable.OUTPUTS, "orders"): 1}
    assert [r.event for r in run(store.history("orders", "ancient"))] == [HISTORY_PRUNED]
    assert len(run(store.history("orders", "old"))) > 1
    assert run(store.conversations("orders", "old")) == {}
    assert run(store.conversations("orders", "recent")) == {"writer": MESSAGES}


def test_sqlite_with_incremental_auto_vacuum_gives_the_pages_back(tmp_path: Path) -> None:
    path = tmp_path / "vacuumed.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # set before the store makes its tables
    store = SQLiteStore(path)

    def query(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(path, isolation_level=None)) as db:
            return db.execute(sql, args).fetchall()

    try:
        saved(store)
        finished(store, query, *(f"k{n}" for n in range(40)))
        query("UPDATE payloads SET body = ?", "x" * 20_000)  # some pages to free
        report = prune_all(store, Prunable.HISTORY)
        assert "auto_vacuum=incremental" in report.space and report.total.items == 40
        assert query("PRAGMA freelist_count") == [(0,)]
        plain = SQLiteStore(tmp_path / "plain.sqlite")
        try:
            assert "VACUUM" in run(plain.reclaim_space())
        finally:
            run(plain.close())
    finally:
        run(store.close())


def test_a_history_prune_drops_the_flow_figures_from_before_its_moment_only(
    store: SQLStore, query: Query
) -> None:
    """The board's per-minute figures of steps whose audit rows went go too; newer ones stay."""
    saved(store)
    finished(store, query, "a")  # its steps ran at T0, years before the 90-day moment
    recent = int(NOW // 60) - 5
    zeros = ", ".join("0" for column in FLOW_COLUMNS if column != "cost")
    columns = ", ".join(column for column in FLOW_COLUMNS if column != "cost")
    query(
        f"INSERT INTO flows_by_minute (minute, workflow, state, shard, {columns}) "
        f"VALUES (?, 'orders', 'review', 0, {zeros})",
        recent,
    )
    assert query("SELECT COUNT(*) FROM flows_by_minute WHERE minute < ?", recent)[0][0] > 0

    prune_all(store, Prunable.OUTPUTS)
    assert query("SELECT COUNT(*) FROM flows_by_minute WHERE minute < ?", recent)[0][0] > 0

    prune_all(store, Prunable.HISTORY)
    assert query("SELECT minute, state FROM flows_by_minute") == [(recent, "review")]
