"""Human tasks end to end: open on entry, claims, form checks, decisions, reminders, expiry."""

from __future__ import annotations

import asyncio
import time

import pytest

from statewise.actions import Principal, TaskDesk, inspect_item, item_view_json
from statewise.definition.model import Definition, Role
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidEventError, TaskError
from statewise.store import open_store
from statewise.store.base import Store, TaskStatus
from statewise.worker.runner import Runner

from .conftest import registry

ALICE = Principal("alice", Role.REVIEWER, ("compliance",))
BOB = Principal("bob", Role.REVIEWER)
VIEWER = Principal("vic", Role.VIEWER)
ELSEWHERE = Principal("erin", Role.REVIEWER, ("billing",))


async def _review(store: Store, review: Definition, *keys: str, score: int = 50) -> Runner:
    runner = Runner(store, [review], registry)
    await store.save_workflow(review, "review.yaml", [])
    await runner.start(review, [(key, {"amount": score}) for key in keys])
    await runner.run(max_wait=0)
    return runner


def test_a_decision_moves_the_item_and_records_who_what_and_why(
    url: str, review: Definition
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            runner = await _review(store, review, "order-1")
            item = await store.get_item("review", "order-1")
            assert (item.state, item.status) == ("human_review", ItemStatus.WAITING)
            desk = TaskDesk(runner, registry)
            (task,) = await desk.inbox(ALICE)
            assert (task.queue, task.status, task.visit) == ("compliance", TaskStatus.OPEN, 1)
            assert desk.outcomes(task) == ("approve", "reject")
            assert desk.form(task)["required"] == ["risk"]
            assert await desk.inbox(ELSEWHERE) == []
            assert task.due_at is not None and task.due_at - task.created_at == 3600

            claimed = await desk.claim(task.id, ALICE)
            assert claimed.claimed_by == "token:alice"
            with pytest.raises(TaskError, match="claimed by token:alice"):
                await desk.decide(task.id, BOB, "approve", data={"risk": "low"})
            with pytest.raises(TaskError, match="needs role 'reviewer'"):
                await desk.claim(task.id, VIEWER)
            with pytest.raises(TaskError, match="does not include"):
                await desk.decide(task.id, ELSEWHERE, "approve", data={"risk": "low"})
            with pytest.raises(TaskError, match="does not fit its form: risk: "):
                await desk.decide(task.id, ALICE, "approve", data={"risk": "medium"})
            with pytest.raises(TaskError, match="did you mean 'approve'"):
                await desk.decide(task.id, ALICE, "aprove", data={"risk": "low"})
            assert (await store.get_item("review", "order-1")).seq == item.seq  # nothing moved

            moved = await desk.decide(task.id, ALICE, "approve", "looks fine", {"risk": "low"})
            assert moved.state == "ship"
            await runner.run(max_wait=0)
            done = await store.get_item("review", "order-1")
            assert done.state == "approved"
            assert done.context["human_review"]["by"] == "token:alice"
            decided = await store.get_task(task.id)
            assert decided.status is TaskStatus.DECIDED
            assert (decided.decided_by, decided.outcome, decided.comment, decided.data) == (
                "token:alice", "approve", "looks fine", {"risk": "low"}
            )  # fmt: skip
            row = next(r for r in await store.history("review", "order-1") if r.decision)
            assert row.actor == "token:alice" and row.event == "approve"
            assert row.decision == {
                "task_id": task.id, "outcome": "approve", "comment": "looks fine",
                "data": {"risk": "low"},
            }  # fmt: skip
            assert row.dwell is not None and row.dwell >= 0
            with pytest.raises(TaskError, match="already decided by token:alice"):
                await desk.decide(task.id, ALICE, "reject", data={"risk": "high"})
            view = item_view_json(await inspect_item(store, "review", "order-1"))
            assert view["tasks"][0]["status"] == "decided" and view["state"] == "approved"
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(main())


def test_two_reviewers_deciding_at_once_only_one_wins(url: str, review: Definition) -> None:
    """Two writers on two connections: the commit's own fence lets exactly one decision in."""

    async def main() -> None:
        first, second = open_store(url), open_store(url)
        try:
            runner = await _review(first, review, "order-2")
            other = Runner(second, [review], registry)
            (task,) = await first.tasks()
            desks = (TaskDesk(runner, registry), TaskDesk(other, registry))
            results = await asyncio.gather(
                desks[0].decide(task.id, ALICE, "approve", data={"risk": "low"}),
                desks[1].decide(task.id, BOB, "reject", data={"risk": "high"}),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, Exception)]
            assert len(errors) == 1 and isinstance(errors[0], TaskError), results
            decisions = [r for r in await first.history("review", "order-2") if r.decision]
            assert len(decisions) == 1
            assert (await first.get_task(task.id)).status is TaskStatus.DECIDED
            await runner.run(max_wait=0)
            assert await first.stuck_items() == []
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())


def test_the_reminder_marks_the_task_and_the_due_time_escalates(
    url: str, review: Definition
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            await _review(store, review, "order-3")
            (task,) = await store.tasks()
            later = Runner(store, [review], registry, clock=lambda: time.time() + 40 * 60)
            await later.run(max_wait=0)
            reminded = await store.get_task(task.id)
            assert reminded.status is TaskStatus.OPEN and reminded.reminded_at is not None
            events = [r.event for r in await store.history("review", "order-3")]
            assert events[-1] == "task_reminder"

            overdue = Runner(store, [review], registry, clock=lambda: time.time() + 2 * 3600)
            with pytest.raises(TaskError, match="has expired"):
                await TaskDesk(overdue, registry).decide(
                    task.id, ALICE, "approve", data={"risk": "low"}
                )
            await overdue.run(max_wait=0)
            item = await store.get_item("review", "order-3")
            assert item.state == "overdue"
            assert (await store.get_task(task.id)).status is TaskStatus.EXPIRED
            with pytest.raises(TaskError, match="already expired"):
                await TaskDesk(overdue, registry).decide(
                    task.id, ALICE, "approve", data={"risk": "low"}
                )
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(main())


def test_a_human_state_refuses_plain_events(url: str, review: Definition) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            runner = await _review(store, review, "order-4")
            with pytest.raises(InvalidEventError, match="is a human task; decide its task"):
                await runner.send("review", "order-4", "approve", {}, "cli")
        finally:
            await store.close()

    asyncio.run(main())
