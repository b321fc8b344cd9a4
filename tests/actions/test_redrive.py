"""Redrive and bulk operations: escalated items sent back, floods paused, every reason kept."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import pytest

from statewise.actions import Principal, TaskDesk, bulk, redrive
from statewise.actions.redrive import escalation_states, redrive_offer
from statewise.definition.model import Definition, Role
from statewise.engine.events import Operation
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidEventError, StatewiseError
from statewise.store import open_store
from statewise.store.base import ItemFilter, PendingWork, Store, TaskStatus
from statewise.worker.runner import Runner

from .conftest import CARRIER, registry

ALICE = Principal("alice", Role.REVIEWER)


async def _escalated(store: Store, review: Definition, key: str) -> Runner:
    """An item whose shipping failed for good, so it sits escalated."""
    runner = Runner(store, [review], registry)
    await store.save_workflow(review, "review.yaml", [])
    await runner.start(review, [(key, {"amount": 50})])
    await runner.run(max_wait=0)
    CARRIER["up"] = False
    (task,) = await store.tasks(key=key)
    await TaskDesk(runner, registry).decide(task.id, ALICE, "approve", data={"risk": "low"})
    await runner.run(max_wait=0)
    assert (await store.get_item("review", key)).state == "escalated"
    return runner


def test_retry_runs_the_failed_command_again_and_move_goes_where_told(
    url: str, review: Definition
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            runner = await _escalated(store, review, "order-9")
            CARRIER["up"] = True
            item = await redrive(
                runner, "review", "order-9", reason="carrier is back", actor="cli:ops"
            )
            assert (item.state, item.status) == ("ship", ItemStatus.ACTIVE)
            await runner.run(max_wait=0)
            done = await store.get_item("review", "order-9")
            assert (done.state, done.context["ship"]) == ("approved", {"shipped": True})
            rows = await store.history("review", "order-9")
            operator = next(r for r in rows if r.event_kind == "operator")
            assert (operator.event, operator.actor, operator.note) == (
                "redrive", "cli:ops", "carrier is back"
            )  # fmt: skip
            with pytest.raises(InvalidEventError, match="no failed command to retry"):
                await redrive(runner, "review", "order-9", reason="again", actor="cli:ops")

            moved = await redrive(
                runner, "review", "order-9", reason="refund instead", actor="cli:ops", to="rejected"
            )
            assert moved.state == "rejected"
            with pytest.raises(InvalidEventError, match="did you mean 'rejected'"):
                await redrive(runner, "review", "order-9", reason="x", actor="o", to="rejectd")
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(main())


def test_bulk_counts_first_then_pauses_resumes_and_cancels_each_item(
    url: str, review: Definition
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            runner = Runner(store, [review], registry)
            await store.save_workflow(review, "review.yaml", [])
            await runner.start(review, [(f"order-{n}", {"amount": 50}) for n in range(12)])
            await runner.run(max_wait=0)
            waiting = ItemFilter(workflow="review", state="human_review")
            dry = await bulk(runner, waiting, Operation.PAUSE, reason="audit", actor="cli:ops")
            assert (dry.matched, dry.changed, dry.dry_run) == (12, 0, True)
            assert await store.count_items(ItemFilter(status=ItemStatus.PAUSED)) == 0

            paused = await bulk(
                runner, waiting, Operation.PAUSE, reason="audit", actor="cli:ops", dry_run=False
            )
            assert (paused.matched, paused.changed, paused.skipped) == (12, 12, [])
            assert await store.tasks() == []  # every open task closed
            assert len(await store.tasks(status=TaskStatus.CANCELLED)) == 12
            with pytest.raises(InvalidEventError, match="paused in state 'human_review'"):
                await TaskDesk(runner, registry).writer.send(
                    "review", "order-1", "approve", {}, "cli"
                )
            again = await bulk(
                runner, waiting, Operation.PAUSE, reason="twice", actor="cli:ops", dry_run=False
            )
            assert again.changed == 0 and len(again.skipped) == 12
            assert "allowed when active or waiting" in again.skipped[0][1]

            resumed = await bulk(
                runner,
                ItemFilter(status=ItemStatus.PAUSED),
                Operation.RESUME,
                reason="audit over",
                actor="cli:ops",
                dry_run=False,
            )
            assert resumed.changed == 12
            assert len(await store.tasks()) == 12  # a new task per item, on a new visit
            assert {t.visit for t in await store.tasks()} == {2}

            cancelled = await bulk(
                runner,
                ItemFilter(key_contains="order-1"),
                Operation.CANCEL,
                reason="customer left",
                actor="cli:ops",
                dry_run=False,
            )
            assert cancelled.changed == 3  # order-1, order-10, order-11
            assert await store.count_items(ItemFilter(status=ItemStatus.CANCELLED)) == 3
            with pytest.raises(StatewiseError, match="needs a reason"):
                await bulk(runner, waiting, Operation.CANCEL, reason=" ", actor="o")
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(main())


def test_bulk_steps_each_item_under_the_fence_while_another_writer_moves_some(
    url: str, review: Definition
) -> None:
    """A second writer decides tasks while a bulk cancel runs: no item is lost or stuck."""

    async def main() -> None:
        store, other_store = open_store(url), open_store(url)
        try:
            runner = Runner(store, [review], registry)
            await store.save_workflow(review, "review.yaml", [])
            await runner.start(review, [(f"order-{n}", {"amount": 50}) for n in range(40)])
            await runner.run(max_wait=0)
            other = TaskDesk(Runner(other_store, [review], registry), registry)
            tasks = await store.tasks(limit=40)

            async def decide_some() -> None:
                for task in tasks[::2]:
                    # A task the bulk operation cancelled first is refused: that is fine.
                    with contextlib.suppress(StatewiseError):
                        await other.decide(task.id, ALICE, "reject", data={"risk": "high"})

            report, _ = await asyncio.gather(
                bulk(
                    runner,
                    ItemFilter(state="human_review"),
                    Operation.CANCEL,
                    reason="stop",
                    actor="cli:ops",
                    dry_run=False,
                ),
                decide_some(),
            )
            rejected = await store.count_items(ItemFilter(state="rejected"))
            cancelled = await store.count_items(ItemFilter(status=ItemStatus.CANCELLED))
            assert rejected + cancelled == 40
            assert report.changed == cancelled
            for task in await store.tasks(status=None, limit=100):
                assert task.status in (TaskStatus.DECIDED, TaskStatus.CANCELLED)
            assert await store.stuck_items() == []
        finally:
            await store.close()
            await other_store.close()

    asyncio.run(main())


def test_a_redrive_is_offered_only_to_escalated_failed_cancelled_or_stuck_items(
    url: str, review: Definition
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            runner = await _escalated(store, review, "order-1")
            await runner.start(review, [("order-2", {"amount": 50})])
            await runner.run(max_wait=0)

            async def offer(key: str) -> str | None:
                item = await store.get_item("review", key)
                return redrive_offer(item, review, await store.pending_work("review", key))

            assert escalation_states(review) == {"escalated", "overdue"}
            assert await offer("order-1") == "it escalated to escalated"
            assert await offer("order-2") is None  # waiting for its reviewer, as designed
            only = ItemFilter(key_contains="order-2")
            for operation, offered in ((Operation.PAUSE, None),  # resumed, not redriven
                                       (Operation.CANCEL, "it was cancelled")):  # fmt: skip
                done = await bulk(runner, only, operation, reason="r", actor="o", dry_run=False)
                assert done.changed == 1 and await offer("order-2") == offered
            stuck = await store.get_item("review", "order-2")
            empty = PendingWork((), ())
            active = replace(stuck, status=ItemStatus.ACTIVE)
            assert redrive_offer(active, review, empty) == (
                "it is stuck: active, with no pending command or timer"
            )
            failed = replace(stuck, status=ItemStatus.FAILED)
            assert redrive_offer(failed, None, empty) == "it failed"
        finally:
            await store.close()

    asyncio.run(main())
