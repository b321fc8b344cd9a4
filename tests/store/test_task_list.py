"""The dashboard's task list on both stores: filters, due-time order, paging with a total, and
per-queue counts, with queue names and keys that break SQL LIKE, URLs and ASCII."""

from __future__ import annotations

from typing import Any

import pytest

from hostile import HOSTILE_BUT_VALID_KEYS
from statewise.store.base import QueueCount, TaskOrder, TaskQuery
from statewise.store.sql import SQLStore

from .conftest import Query
from .helpers import T0, run

QUEUES = ["q%", "q_", "q'; DROP TABLE tasks; --", "quë/?"]
NOW = T0 + 10_000


def _fill(store: SQLStore, query: Query) -> list[dict[str, Any]]:
    """Two tasks per hostile key: due soon, overdue or never, claimed or not, in hostile queues."""
    run(store.schema_version())
    made = []
    for n, key in enumerate(HOSTILE_BUT_VALID_KEYS * 2):
        workflow = "orders" if n % 3 else "claims"
        item_id = n + 1
        query(
            "INSERT INTO items (id, workflow, version, key, state, status, entered_at, "
            "created_at, updated_at, seq, attempt, retrying, visits) "
            "VALUES (?, ?, 1, ?, 'review', 'waiting', ?, ?, ?, 1, 1, ?, '{}')",
            item_id, workflow, f"{key}-{n}", T0, T0, T0, False,
        )  # fmt: skip
        due = [NOW + 3600 * (n + 1), NOW - 60 * (n + 1), None][n % 3]
        claimed = "token:ann" if n % 4 == 0 else ("token:bob" if n % 4 == 1 else None)
        task = {
            "id": n + 1, "item_id": item_id, "key": f"{key}-{n}", "workflow": workflow,
            "queue": QUEUES[n % len(QUEUES)], "state": "review" if n % 2 else "second_look",
            "created_at": T0 + n, "due_at": due, "claimed_by": claimed,
            "claim_until": NOW + 600 if claimed else None,
        }  # fmt: skip
        query(
            "INSERT INTO tasks (id, item_id, state, visit, queue, role, status, created_at, "
            "due_at, claimed_by, claim_until) "
            "VALUES (?, ?, ?, 1, ?, 'reviewer', 'open', ?, ?, ?, ?)",
            task["id"], item_id, task["state"], task["queue"], task["created_at"], due,
            claimed, task["claim_until"],
        )  # fmt: skip
        made.append(task)
    query(  # a decided task never shows
        "INSERT INTO tasks (id, item_id, state, visit, queue, role, status, created_at) "
        "VALUES (99, 1, 'review', 2, 'q%', 'reviewer', 'decided', ?)",
        T0,
    )
    return made


def _ids(tasks: list[Any]) -> list[int]:
    return [task.id for task in tasks]


def _due_order(made: list[dict[str, Any]], reverse: bool = False) -> list[int]:
    due = sorted((t for t in made if t["due_at"] is not None),
                 key=lambda t: (t["due_at"], t["id"]), reverse=reverse)  # fmt: skip
    none = sorted((t for t in made if t["due_at"] is None), key=lambda t: t["id"], reverse=reverse)
    return [t["id"] for t in due + none]


def test_pages_follow_due_order_with_undated_tasks_last_and_a_total(
    store: SQLStore, query: Query
) -> None:
    made = _fill(store, query)
    pages = [run(store.task_page(TaskQuery(NOW, limit=5, offset=o))) for o in range(0, 15, 5)]
    assert {page.total for page in pages} == {len(made)}
    listed = [task_id for page in pages for task_id in _ids(page.tasks)]
    assert listed == _due_order(made)
    late_first = run(store.task_page(TaskQuery(NOW, order=TaskOrder.DUE_DESC, limit=100)))
    assert _ids(late_first.tasks) == _due_order(made, reverse=True)
    newest = run(store.task_page(TaskQuery(NOW, order=TaskOrder.CREATED_DESC, limit=3)))
    assert _ids(newest.tasks) == [12, 11, 10]


@pytest.mark.parametrize("queue", QUEUES)
def test_a_hostile_queue_matches_itself_only(store: SQLStore, query: Query, queue: str) -> None:
    made = _fill(store, query)
    page = run(store.task_page(TaskQuery(NOW, queue=queue, limit=100)))
    expected = [t for t in made if t["queue"] == queue]
    assert sorted(_ids(page.tasks)) == [t["id"] for t in expected]
    assert page.total == len(expected)
    assert {task.key for task in page.tasks} == {t["key"] for t in expected}


def test_filters_combine_and_the_total_counts_them_all(store: SQLStore, query: Query) -> None:
    made = _fill(store, query)

    def check(q: TaskQuery, keep: Any) -> None:
        page = run(store.task_page(q))
        expected = [t["id"] for t in made if keep(t)]
        assert (sorted(_ids(page.tasks)), page.total) == (expected, len(expected)), q

    check(TaskQuery(NOW, workflow="claims", limit=100), lambda t: t["workflow"] == "claims")
    check(TaskQuery(NOW, state="second_look", limit=100), lambda t: t["state"] == "second_look")
    check(TaskQuery(NOW, due_before=NOW, limit=100),
          lambda t: t["due_at"] is not None and t["due_at"] <= NOW)  # fmt: skip
    check(TaskQuery(NOW, due_after=NOW, due_before=NOW + 7200, limit=100),
          lambda t: t["due_at"] is not None and NOW < t["due_at"] <= NOW + 7200)  # fmt: skip
    check(TaskQuery(NOW, actor="token:ann", mine=True, limit=100),
          lambda t: t["claimed_by"] == "token:ann")  # fmt: skip
    check(TaskQuery(NOW, unclaimed=True, limit=100), lambda t: t["claimed_by"] is None)
    check(TaskQuery(NOW, queues=("q%", "q_"), workflow="orders", limit=100),
          lambda t: t["queue"] in ("q%", "q_") and t["workflow"] == "orders")  # fmt: skip
    check(TaskQuery(NOW, queues=(), limit=100), lambda t: False)
    # a claim past its time is nobody's: unclaimed, and no longer "mine"
    later = NOW + 601
    check(TaskQuery(later, unclaimed=True, limit=100), lambda t: True)
    check(TaskQuery(later, actor="token:ann", mine=True, limit=100), lambda t: False)


def test_queue_counts_give_open_and_overdue_per_visible_queue(
    store: SQLStore, query: Query
) -> None:
    made = _fill(store, query)

    def expected(queues: list[str]) -> list[QueueCount]:
        return [
            QueueCount(
                queue,
                sum(t["queue"] == queue for t in made),
                sum(
                    t["queue"] == queue and t["due_at"] is not None and t["due_at"] <= NOW
                    for t in made
                ),
            )
            for queue in sorted(queues)
        ]

    counts = run(store.queue_counts(None, NOW))
    assert sorted(counts, key=lambda c: c.queue) == expected(QUEUES)
    picked = run(store.queue_counts(("quë/?", "q%"), NOW))
    assert sorted(picked, key=lambda c: c.queue) == expected(["quë/?", "q%"])
    assert run(store.queue_counts((), NOW)) == []
