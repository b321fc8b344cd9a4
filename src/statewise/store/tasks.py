"""Human tasks in SQL, for every dialect: the inbox, one task, claims.

Tasks are opened and closed only by the steps that enter and leave their states (in
``commit``); here they are read and claimed. A claim is one conditional UPDATE, so two people
claiming at once cannot both win.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from statewise.errors import NotFoundError, TaskError
from statewise.store.base import QueueCount, Task, TaskOrder, TaskPage, TaskQuery, TaskStatus
from statewise.store.connection import Connection, Row

_COLUMNS = (
    "t.id, i.workflow, i.version, i.key, t.state, t.visit, t.queue, t.role, t.status, "
    "t.created_at, t.due_at, t.remind_at, t.reminded_at, t.claimed_by, t.claim_until, "
    "t.decided_by, t.decided_at, t.outcome, t.comment, t.data, t.branch"
)
_FROM = "FROM tasks t JOIN items i ON i.id = t.item_id"


def _task(row: Row) -> Task:
    fields: list[Any] = list(row)
    fields[8] = TaskStatus(fields[8])
    fields[19] = None if fields[19] is None else json.loads(fields[19])
    fields[20] = fields[20] or None  # '': a human state's own task
    return Task(*fields)


def tasks_txn(
    db: Connection,
    status: TaskStatus | None,
    queue: str | None,
    workflow: str | None,
    key: str | None,
    limit: int,
    offset: int,
) -> list[Task]:
    """Tasks matching the filters, oldest first."""
    filters = {"t.status": status, "t.queue": queue, "i.workflow": workflow, "i.key": key}
    used = {column: value for column, value in filters.items() if value is not None}
    where = " AND ".join(f"{column} = ?" for column in used) or "1 = 1"
    rows = db.execute(
        f"SELECT {_COLUMNS} {_FROM} WHERE {where} ORDER BY t.created_at, t.id LIMIT ? OFFSET ?",
        (*used.values(), limit, offset),
    )
    return [_task(row) for row in rows]


_ORDER = {
    TaskOrder.DUE: "t.due_at ASC NULLS LAST, t.id",
    TaskOrder.DUE_DESC: "t.due_at DESC NULLS LAST, t.id DESC",
    TaskOrder.CREATED: "t.created_at, t.id",
    TaskOrder.CREATED_DESC: "t.created_at DESC, t.id DESC",
}


def _page_filter(query: TaskQuery) -> tuple[str, list[Any]]:
    """The WHERE clause of a task list page and its parameters (every value a parameter)."""
    where: list[str] = ["t.status = 'open'"]
    params: list[Any] = []
    if query.queues is not None:
        where.append(f"t.queue IN ({', '.join('?' for _ in query.queues)})")
        params += query.queues
    for column, value in (("t.queue", query.queue), ("t.state", query.state)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.workflow is not None:
        where.append("t.item_id IN (SELECT id FROM items WHERE workflow = ?)")
        params.append(query.workflow)
    if query.due_after is not None:
        where.append("t.due_at > ?")
        params.append(query.due_after)
    if query.due_before is not None:
        where.append("t.due_at <= ?")
        params.append(query.due_before)
    if query.mine:
        where.append("t.claimed_by = ? AND t.claim_until > ?")
        params += [query.actor, query.now]
    if query.unclaimed:
        where.append("(t.claimed_by IS NULL OR t.claim_until <= ?)")
        params.append(query.now)
    return " AND ".join(where), params


def task_page_txn(db: Connection, query: TaskQuery) -> TaskPage:
    """One filtered, sorted page of open tasks and the number matching in all.

    Filtering, counting, sorting and skipping read the tasks table alone (a workflow filter
    looks the item ids up); only the page's own rows are joined to their items, so a page
    deep in costs a sort of narrow rows, not of every joined one.
    """
    if query.queues == ():
        return TaskPage([], 0)
    where, params = _page_filter(query)
    total = db.execute(f"SELECT COUNT(*) FROM tasks t WHERE {where}", params)[0][0]
    order = _ORDER[query.order]
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM (SELECT t.* FROM tasks t WHERE {where} ORDER BY {order} "
        f"LIMIT ? OFFSET ?) t JOIN items i ON i.id = t.item_id ORDER BY {order}",
        (*params, query.limit, query.offset),
    )
    return TaskPage([_task(row) for row in rows], int(total))


def queue_counts_txn(
    db: Connection, queues: tuple[str, ...] | None, now: float
) -> list[QueueCount]:
    """Open and overdue tasks per queue, in queue order, for the queues named (None: all)."""
    if queues == ():
        return []
    where, params = "status = 'open'", [now, *(queues or ())]
    if queues is not None:
        where += f" AND queue IN ({', '.join('?' for _ in queues)})"
    rows = db.execute(
        "SELECT queue, COUNT(*), COALESCE(SUM(CASE WHEN due_at <= ? THEN 1 ELSE 0 END), 0) "
        f"FROM tasks WHERE {where} GROUP BY queue ORDER BY queue",
        params,
    )
    return [QueueCount(str(queue), int(count), int(overdue)) for queue, count, overdue in rows]


def get_task_txn(db: Connection, task_id: int) -> Task:
    """One task; NotFoundError when there is none."""
    rows = db.execute(f"SELECT {_COLUMNS} {_FROM} WHERE t.id = ?", (task_id,))
    if not rows:
        raise NotFoundError(f"there is no task {task_id}")
    return _task(rows[0])


def claim_task_txn(db: Connection, task_id: int, actor: str, now: float, until: float) -> Task:
    """Claim an open task nobody else holds an unexpired claim on."""
    changed = db.execute(
        "UPDATE tasks SET claimed_by = ?, claim_until = ? WHERE id = ? AND status = 'open' "
        "AND (claimed_by IS NULL OR claimed_by = ? OR claim_until <= ?) RETURNING id",
        (actor, until, task_id, actor, now),
    )
    if not changed:
        raise TaskError(_why_not(get_task_txn(db, task_id), "claimed", now))
    return get_task_txn(db, task_id)


def release_task_txn(db: Connection, task_id: int, actor: str, now: float) -> Task:
    """Drop ``actor``'s claim on an open task."""
    changed = db.execute(
        "UPDATE tasks SET claimed_by = NULL, claim_until = NULL "
        "WHERE id = ? AND status = 'open' AND claimed_by = ? RETURNING id",
        (task_id, actor),
    )
    if not changed:
        task = get_task_txn(db, task_id)
        if task.status is TaskStatus.OPEN and task.claimed_by is None:
            raise TaskError(f"task {task_id} is not claimed; nothing to release")
        raise TaskError(_why_not(task, "released", now))
    return get_task_txn(db, task_id)


def _why_not(task: Task, verb: str, now: float) -> str:
    if task.status is not TaskStatus.OPEN:
        by = f" by {task.decided_by}" if task.decided_by else ""
        why = task.why_closed()
        return f"task {task.id} is already {task.status.value}{by}{why}, so it cannot be {verb}"
    return f"task {task.id} is claimed by {task.claimed_by}, so it cannot be {verb} by you"


def open_task_ages_txn(db: Connection) -> Sequence[Row]:
    """Open tasks per (workflow, queue): how many, and when the oldest opened."""
    return db.execute(
        f"SELECT i.workflow, t.queue, COUNT(*), MIN(t.created_at) {_FROM} "
        "WHERE t.status = 'open' GROUP BY i.workflow, t.queue ORDER BY 1, 2"
    )
