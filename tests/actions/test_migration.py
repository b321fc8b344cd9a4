"""Migration onto another version, on SQLite and PostgreSQL: every item a step of its own.

Items waiting in a human task and items mid-command move; the old command's late result is
ignored; a runner holding only the old version neither loses nor corrupts a migrated item
(it leaves the new version's work to a runner that holds it); a second writer ends
consistent; a failed item finishes on the fixed version. The invariant is checked after each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hostile import HOSTILE_BUT_VALID_KEYS
from statewise.actions import Principal, TaskDesk, redrive
from statewise.actions.migration import apply_migration, migrate_item, plan_migration
from statewise.contract import CommandContext, CommandRegistry
from statewise.definition import loads
from statewise.definition.model import Definition, Role
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidEventError, InvalidInputError, TaskError
from statewise.store import open_store
from statewise.store.base import Store, TaskStatus
from statewise.worker.runner import Runner
from statewise.worker.writer import ItemWriter

V1 = """
workflow: claims
version: 1
states:
  intake:
    kind: initial
    command: assess
    transitions:
      - when: intake.value == 0
        to: parked
      - when: intake.value > 100
        to: settle
      - else: true
        to: review
  parked:
    kind: waiting
    transitions:
      - on: release
        to: review
  review:
    kind: human
    task: {queue: claims, title: Check the claim, due: 1h}
    transitions:
      - on: approve
        to: settle
  settle:
    command: settle
    transitions:
      - when: settle.ok
        to: settled
  settled: {kind: final}
"""

# The fix: a refused settlement ends in `refused` instead of failing the item; the review is
# now called `check` (with its own queue), and `parked` is gone.
V2 = """
workflow: claims
version: 2
migrations:
  review: check
states:
  intake:
    kind: initial
    command: assess
    transitions:
      - when: intake.value > 100
        to: settle
      - else: true
        to: check
  check:
    kind: human
    task: {queue: claims_v2, title: Check the claim again}
    transitions:
      - on: approve
        to: settle
  settle:
    command: settle
    transitions:
      - when: settle.ok
        to: settled
      - else: true
        to: refused
  settled: {kind: final}
  refused: {kind: final}
"""

registry = CommandRegistry()
# ``settle`` of an item with ``slow`` waits for ``GATE`` once started (set per test).
GATE: dict[str, asyncio.Event] = {}
SETTLED: list[tuple[str, str]] = []
ALICE = Principal("alice", Role.REVIEWER)


@registry.command()
async def assess(call: CommandContext) -> dict[str, Any]:
    """The claim's amount is its value."""
    return {"value": call.context["amount"]}


@registry.command()
async def settle(call: CommandContext) -> dict[str, Any]:
    """A claim over 1000 is refused; a slow one waits at the gate."""
    SETTLED.append((call.key, call.workflow))
    if call.context.get("slow"):
        GATE["started"].set()
        await GATE["open"].wait()
    return {"ok": call.context["amount"] < 1000}


@pytest.fixture
def v1() -> Definition:
    return loads(V1, file="claims-v1.yaml", commands=registry.names())


@pytest.fixture
def v2() -> Definition:
    return loads(V2, file="claims-v2.yaml", commands=registry.names())


@pytest.fixture(autouse=True)
def fresh_commands() -> None:
    SETTLED.clear()
    GATE.clear()


@contextlib.asynccontextmanager
async def claims(url: str, v1: Definition, v2: Definition, **items: int) -> AsyncIterator[Store]:
    """A store with both versions deployed and ``items`` (key=amount) run on v1 until they wait."""
    store = open_store(url)
    try:
        await store.save_workflow(v1, "claims-v1.yaml", [])
        await store.save_workflow(v2, "claims-v2.yaml", [])
        old = Runner(store, [v1], registry)
        await old.start(v1, [(key, {"amount": amount}) for key, amount in items.items()])
        await old.run(max_wait=0)
        yield store
    finally:
        await store.close()


async def assert_invariant(store: Store) -> None:
    """Every active item has a pending command or timer, or waits."""
    assert await store.stuck_items() == []


def test_a_dry_run_lists_each_move_and_the_items_left_alone(
    url: str, v1: Definition, v2: Definition
) -> None:
    async def main() -> None:
        async with claims(url, v1, v2, a=50, big=5000, parked=0) as store:
            writer = ItemWriter(store, [v1, v2])
            plan = await plan_migration(writer, v2)
            moves = {m.key: (m.from_state, m.to_state, m.status) for m in plan.moves}
            assert moves == {
                "a": ("review", "check", ItemStatus.WAITING),
                "big": ("settle", "settle", ItemStatus.FAILED),
            }
            ((left),) = plan.left
            assert (left.key, left.state) == ("parked", "parked")
            assert "--map parked=STATE" in left.why
            # An operator's mapping covers it; a mapping into a state v2 lacks is refused.
            mapped = await plan_migration(writer, v2, {"parked": "check"})
            assert {m.key: m.to_state for m in mapped.moves}["parked"] == "check"
            with pytest.raises(InvalidInputError, match="has no state 'nowhere'"):
                await plan_migration(writer, v2, {"parked": "nowhere"})
            # Nothing moved.
            assert {i.version for i, _ in await _all(store)} == {1}

    asyncio.run(main())


async def _all(store: Store) -> list[tuple[Any, Any]]:
    from statewise.store.base import ItemFilter

    return await store.find_items(ItemFilter(workflow="claims"), limit=100)


def test_waiting_and_failed_items_move_each_with_an_audit_row_and_finish_on_the_fix(
    url: str, v1: Definition, v2: Definition
) -> None:
    async def main() -> None:
        async with claims(url, v1, v2, a=50, big=5000, parked=0) as store:
            (old_task,) = await store.tasks(key="a")
            assert (await store.pending_work("claims", "a")).timers  # the task's due time
            big = await store.get_item("claims", "big")
            assert big.status is ItemStatus.FAILED
            runner = Runner(store, [v1, v2], registry)
            plan = await apply_migration(runner, v2, actor="cli:ops", reason="settle fixed")
            assert sorted(m.key for m in plan.moved) == ["a", "big"]
            assert [left.key for left in plan.left] == ["parked"]
            await assert_invariant(store)
            # The human task: the old one cancelled with its due timer, the new one open.
            a = await store.get_item("claims", "a")
            assert (a.version, a.state, a.status) == (2, "check", ItemStatus.WAITING)
            assert (await store.get_task(old_task.id)).status is TaskStatus.CANCELLED
            assert not (await store.pending_work("claims", "a")).timers
            (new_task,) = await store.tasks(key="a")
            assert (new_task.state, new_task.queue, new_task.version) == ("check", "claims_v2", 2)
            row = (await store.history("claims", "a"))[-1]
            assert (row.event, row.event_kind, row.actor) == ("migrated", "operator", "cli:ops")
            assert (row.from_state, row.to_state) == ("review", "check")
            assert row.note == (
                "from claims@1 state 'review' to claims@2 state 'check': settle fixed"
            )
            # The failed item re-enters settle on v2 and ends where the fix sends it.
            await runner.run(max_wait=0)
            big = await store.get_item("claims", "big")
            assert (big.version, big.state, big.status) == (2, "refused", ItemStatus.DONE)
            await TaskDesk(runner, registry).decide(new_task.id, ALICE, "approve")
            await runner.run(max_wait=0)
            assert (await store.get_item("claims", "a")).state == "settled"
            parked = await store.get_item("claims", "parked")
            assert (parked.version, parked.state) == (1, "parked")
            await assert_invariant(store)
            # Migrating again moves nothing more: the items are on v2 or left alone.
            again = await apply_migration(runner, v2, actor="cli:ops", reason="again")
            assert again.moved == [] and [left.key for left in again.left] == ["parked"]

    asyncio.run(main())


def test_an_item_mid_command_moves_and_a_runner_holding_only_the_old_version_ignores_it(
    url: str, v1: Definition, v2: Definition
) -> None:
    async def main() -> None:
        async with claims(url, v1, v2) as store:
            GATE["started"], GATE["open"] = asyncio.Event(), asyncio.Event()
            old = Runner(store, [v1], registry)
            await old.start(v1, [("slow", {"amount": 500, "slow": True})])
            working = asyncio.create_task(old.run(max_wait=0))
            await asyncio.wait_for(GATE["started"].wait(), 30)
            item = await store.get_item("claims", "slow")
            assert (item.state, item.status) == ("settle", ItemStatus.ACTIVE)
            # The operator migrates while v1's settle runs under the old runner's lease.
            writer = ItemWriter(store, [v1, v2])
            _, moved = await migrate_item(
                writer, "claims", "slow", v2, actor="ops", reason="move to v2"
            )
            assert (moved.version, moved.state, moved.visits["settle"]) == (2, "settle", 2)
            await assert_invariant(store)
            GATE["open"].set()  # the old result arrives late: its work row is gone
            await asyncio.wait_for(working, 30)
            item = await store.get_item("claims", "slow")
            assert (item.version, item.state, item.seq) == (2, "settle", moved.seq)
            (pending,) = (await store.pending_work("claims", "slow")).commands
            assert (pending.effect.state, pending.effect.visit) == ("settle", 2)
            # The old runner, run again, does not take work of a version it lacks.
            await old.run(max_wait=0)
            assert (await store.get_item("claims", "slow")).seq == moved.seq
            await assert_invariant(store)
            # A runner holding v2 finishes it; the old visit's result left no row.
            await Runner(store, [v1, v2], registry).run(max_wait=0)
            done = await store.get_item("claims", "slow")
            assert (done.state, done.status) == ("settled", ItemStatus.DONE)
            rows = await store.history("claims", "slow")
            after = rows[[r.event for r in rows].index("migrated") + 1 :]
            assert [(r.from_state, r.to_state, r.event) for r in after] == [
                ("settle", "settled", "done")
            ]
            assert SETTLED == [("slow", "claims"), ("slow", "claims")]
            await assert_invariant(store)

    asyncio.run(main())


def test_a_decision_arriving_during_the_migration_ends_consistent(
    url: str, v1: Definition, v2: Definition
) -> None:
    async def main() -> None:
        async with claims(url, v1, v2, **{f"c{n}": 50 for n in range(6)}) as store:
            runner = Runner(store, [v1, v2], registry)
            desk = TaskDesk(runner, registry)
            tasks = {t.key: t.id for t in await store.tasks()}

            async def decide(key: str) -> str:
                try:
                    await desk.decide(tasks[key], ALICE, "approve")
                except TaskError as exc:
                    return str(exc)
                return "decided"

            migrating = apply_migration(runner, v2, actor="ops", reason="race")
            deciding = asyncio.gather(*map(decide, sorted(tasks)))
            plan, decisions = await asyncio.gather(migrating, deciding)
            await assert_invariant(store)
            for key, decision in zip(sorted(tasks), decisions, strict=True):
                item = await store.get_item("claims", key)
                events = [r.event for r in await store.history("claims", key)]
                assert events.count("migrated") == 1, (key, events)
                assert item.version == 2
                if decision == "decided":  # the decision came first: settle, then moved on
                    assert events.index("approve") < events.index("migrated")
                    assert item.state in ("settle", "settled")
                else:  # the migration came first: the old task was cancelled under it
                    assert "cancelled" in decision or "already" in decision, decision
                    assert item.state == "check"
            assert sorted(m.key for m in plan.moved) == sorted(tasks)
            await runner.run(max_wait=0)
            await assert_invariant(store)

    asyncio.run(main())


def test_redrive_to_version_moves_one_item_and_refuses_what_cannot_move(
    url: str, v1: Definition, v2: Definition
) -> None:
    async def main() -> None:
        async with claims(url, v1, v2, big=5000, parked=0) as store:
            runner = Runner(store, [v1, v2], registry)
            with pytest.raises(InvalidEventError, match="has no state 'parked'"):
                await redrive(runner, "claims", "parked", reason="r", actor="ops", to_version=2)
            with pytest.raises(Exception, match=r"claims@3 is not stored \(stored: claims@1"):
                await redrive(runner, "claims", "big", reason="r", actor="ops", to_version=3)
            item = await redrive(
                runner, "claims", "parked", reason="parked is gone", actor="ops",
                to="check", to_version=2,
            )  # fmt: skip
            assert (item.version, item.state, item.status) == (2, "check", ItemStatus.WAITING)
            item = await redrive(runner, "claims", "big", reason="fixed", actor="ops", to_version=2)
            assert (item.version, item.state) == (2, "settle")
            with pytest.raises(InvalidEventError, match="already on claims@2"):
                await redrive(runner, "claims", "big", reason="again", actor="ops", to_version=2)
            await runner.run(max_wait=0)
            assert (await store.get_item("claims", "big")).state == "refused"
            await assert_invariant(store)

    asyncio.run(main())


def test_migrations_must_name_states_of_the_new_version_and_survive_to_yaml(
    v2: Definition,
) -> None:
    from statewise.definition import to_yaml
    from statewise.errors import DefinitionError

    assert loads(to_yaml(v2), file="again.yaml", commands=registry.names()) == v2
    wrong = V2.replace("review: check", "review: chek")
    with pytest.raises(DefinitionError) as refused:
        loads(wrong, file="claims-v2.yaml", commands=registry.names())
    (problem,) = refused.value.problems
    assert problem.line == 5
    assert "`migrations` sends `review` to unknown state `chek`; did you mean `check`?" in str(
        problem
    )


def test_hostile_keys_move_and_an_event_racing_the_migration_ends_consistent(
    url: str, v1: Definition, v2: Definition
) -> None:
    keys = {key: 0 for key in HOSTILE_BUT_VALID_KEYS}  # each parked, waiting for `release`

    async def main() -> None:
        async with claims(url, v1, v2, **keys) as store:
            runner = Runner(store, [v1, v2], registry)
            dry = await plan_migration(runner, v2, {"parked": "check"})
            assert sorted(m.key for m in dry.moves) == sorted(keys)

            async def release(key: str) -> str:
                try:
                    await runner.send("claims", key, "release", {}, "someone")
                except InvalidEventError as exc:
                    return str(exc)
                return "released"

            migrating = apply_migration(runner, v2, actor="ops", reason="r", mapping=dict(
                parked="check"
            ))  # fmt: skip
            sending = asyncio.gather(*map(release, sorted(keys)))
            plan, answers = await asyncio.gather(migrating, sending)
            assert sorted(m.key for m in plan.moved) == sorted(keys)
            for key, answer in zip(sorted(keys), answers, strict=True):
                item = await store.get_item("claims", key)
                events = [r.event for r in await store.history("claims", key)]
                assert (item.version, item.status, events.count("migrated")) == (
                    2, ItemStatus.WAITING, 1
                )  # fmt: skip
                if answer == "released":  # the event came first: review, then check
                    assert events.index("release") < events.index("migrated")
                    assert [m.from_state for m in plan.moved if m.key == key] == ["review"]
                else:  # check takes no `release`: refused, nothing changed by it
                    assert "release" not in events, answer
                assert item.state == "check"
                assert [t.state for t in await store.tasks(key=key)] == ["check"]
            await assert_invariant(store)

    asyncio.run(main())


def test_on_postgresql_an_old_and_a_new_worker_running_beside_a_migration_end_consistent(
    postgres_url: str, v1: Definition, v2: Definition
) -> None:
    """Two live workers, one holding only v1: every migrated item finishes once, on v2."""
    keys = [f"slow-{n}" for n in range(6)]

    async def main() -> None:
        async with claims(postgres_url, v1, v2) as store:
            GATE["started"], GATE["open"] = asyncio.Event(), asyncio.Event()
            stop = asyncio.Event()
            old, new = Runner(store, [v1], registry), Runner(store, [v1, v2], registry)
            await ItemWriter(store, [v1]).start(
                v1, [(key, {"amount": 500, "slow": True}) for key in keys]
            )
            workers = [asyncio.create_task(r.run(stop=stop)) for r in (old, new)]
            for _ in range(600):
                if len(SETTLED) == len(keys):
                    break
                await asyncio.sleep(0.05)
            assert len(SETTLED) == len(keys)  # every v1 settle is running, on either worker
            plan = await apply_migration(ItemWriter(store, [v1, v2]), v2, actor="ops", reason="r")
            assert sorted(m.key for m in plan.moved) == keys
            GATE["open"].set()
            for _ in range(600):
                items = [await store.get_item("claims", key) for key in keys]
                if all(item.status is ItemStatus.DONE for item in items):
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*workers), 60)
            for key in keys:
                item = await store.get_item("claims", key)
                assert (item.version, item.state) == (2, "settled"), key
                rows = await store.history("claims", key)
                after = [r.event for r in rows[[r.event for r in rows].index("migrated") + 1 :]]
                assert after == ["done"], (key, after)
            assert len(SETTLED) == 2 * len(keys)
            await assert_invariant(store)

    asyncio.run(main())


def test_the_pure_step_refuses_a_move_that_does_not_fit(v1: Definition, v2: Definition) -> None:
    from statewise.engine.migration import migrate
    from statewise.engine.step import start

    item = start(v1, "k", {"amount": 50}, 1.0).item
    with pytest.raises(InvalidEventError, match="needs a reason"):
        migrate(v1, v2, item, "check", "ops", " ", 2.0)
    with pytest.raises(InvalidEventError, match="has no state 'nowhere'"):
        migrate(v1, v2, item, "nowhere", "ops", "r", 2.0)
    with pytest.raises(InvalidEventError, match="already on claims@1"):
        migrate(v1, v1, item, "review", "ops", "r", 2.0)
    with pytest.raises(InvalidEventError, match="cannot move from claims@2"):
        migrate(v2, v1, item, "review", "ops", "r", 2.0)
    moved = migrate(v1, v2, item, "check", "ops", "r", 5.0)
    (row,) = moved.history
    assert (row.from_state, row.to_state, row.dwell, row.event_kind) == (
        "intake", "check", 4.0, "operator"
    )  # fmt: skip
    assert (moved.item.version, moved.item.state, moved.item.seq) == (2, "check", item.seq + 1)
