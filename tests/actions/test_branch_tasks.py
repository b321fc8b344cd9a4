"""People deciding the tasks of parallel branches, on SQLite and PostgreSQL, two at a time.

Two reviewers decide both branches at the same instant from two connections: both decisions
land and the join fires once. With ``join: any`` their decisions race the join: one wins, the
other task is cancelled and its decision refused, saying why. The invariant holds after each.
"""

from __future__ import annotations

import asyncio

import pytest

from statewise.actions import Principal, TaskDesk
from statewise.definition import loads
from statewise.definition.model import Definition, Role
from statewise.engine.item import ItemStatus
from statewise.errors import TaskError
from statewise.store import open_store
from statewise.store.base import Store, TaskStatus
from statewise.worker.runner import Runner

from .conftest import registry

SENIOR = Principal("sam", Role.REVIEWER, ("senior",))
LEGAL = Principal("lee", Role.REVIEWER, ("legal",))

PAIR_YAML = """
workflow: pair
version: 1
states:
  intake:
    kind: initial
    command: score
    transitions: [{to: review}]
  review:
    kind: parallel
    join: JOIN
    branches:
      senior:
        task: {queue: senior, title: Senior review, due: 1h}
        outcomes: [approve, reject]
      legal:
        task:
          queue: legal
          form: {type: object, properties: {note: {type: string}}, required: [note]}
        outcomes: [approve, reject]
    transitions: [{to: ship}]
  ship:
    command: ship
    transitions: [{to: approved}]
  approved: {kind: final}
"""


@pytest.fixture(params=["all", "any"])
def pair(request: pytest.FixtureRequest) -> Definition:
    return loads(PAIR_YAML.replace("JOIN", str(request.param)))


async def _started(store: Store, definition: Definition, key: str) -> Runner:
    runner = Runner(store, [definition], registry)
    await store.save_workflow(definition, "pair.yaml", [])
    await runner.start(definition, [(key, {"amount": 50})])
    await runner.run(max_wait=0)
    return runner


def test_two_reviewers_decide_both_branches_at_the_same_instant(url: str, pair: Definition) -> None:
    """Both decide at once from two connections; the join settles once, as it says."""

    async def main() -> None:
        first, second = open_store(url), open_store(url)
        try:
            runner = await _started(first, pair, "doc-1")
            waiting = await first.get_item("pair", "doc-1")
            assert (waiting.state, waiting.status) == ("review", ItemStatus.WAITING)
            desk = TaskDesk(runner, registry)
            senior_task, legal_task = sorted(await first.tasks(), key=lambda t: t.id)
            assert (senior_task.branch, legal_task.branch) == ("senior", "legal")
            assert senior_task.place == "review/senior"  # as the task list and CLI show it
            assert desk.title(senior_task) == "Senior review"
            assert desk.title(legal_task) == "review (legal)"
            assert desk.outcomes(legal_task) == ("approve", "reject")
            with pytest.raises(TaskError, match="does not fit its form"):
                await desk.decide(legal_task.id, LEGAL, "approve", data={})
            with pytest.raises(TaskError, match="does not include"):
                await desk.decide(legal_task.id, SENIOR, "approve", data={"note": "x"})

            other = TaskDesk(Runner(second, [pair], registry), registry)
            results = await asyncio.gather(
                desk.decide(senior_task.id, SENIOR, "reject", "no"),
                other.decide(legal_task.id, LEGAL, "approve", data={"note": "fine"}),
                return_exceptions=True,
            )
            await runner.run(max_wait=0)
            item = await first.get_item("pair", "doc-1")
            assert item.state == "approved"
            tasks = {t.branch: t for t in await first.tasks(status=None)}
            rows = [r for r in await first.history("pair", "doc-1") if r.decision]
            if pair.state("review").parallel.join == "all":  # type: ignore[union-attr]
                assert not [r for r in results if isinstance(r, Exception)], results
                assert item.context["review"]["senior"]["outcome"] == "reject"
                assert item.context["review"]["legal"]["data"] == {"note": "fine"}
                assert {t.status for t in tasks.values()} == {TaskStatus.DECIDED}
                assert sorted(r.branch or "" for r in rows) == ["legal", "senior"]
            else:  # the decisions race the join: exactly one lands
                errors = [r for r in results if isinstance(r, Exception)]
                assert len(errors) == 1 and isinstance(errors[0], TaskError), results
                assert len(rows) == 1
                statuses = sorted(t.status.value for t in tasks.values())
                assert statuses == ["cancelled", "decided"]
                loser = next(t for t in tasks.values() if t.status is TaskStatus.CANCELLED)
                assert loser.comment == "cancelled: join any of 'review' was met without it"
                late = SENIOR if loser.branch == "senior" else LEGAL
                with pytest.raises(TaskError, match=r"already cancelled \(cancelled: join any"):
                    await desk.decide(loser.id, late, "approve", data={"note": "late"})
            assert await first.stuck_items() == []
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())
