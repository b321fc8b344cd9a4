"""A parallel join met by ``any`` cancels the losing branches, and their cost is still counted.

Through the real runner on a real SQLite file: the fast branch wins the join, the slow one is
cancelled in the middle of its (metered) work, and what it had spent reaches the audit trail
and ``costs``; nothing it proposed reaches the context, and the invariant holds.
"""

from __future__ import annotations

import asyncio

from statewise.contract import CommandContext, CommandRegistry, CommandResult
from statewise.definition.model import Branch, Definition, JoinKind, Parallel, State, StateKind
from statewise.engine import ItemStatus
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner

from .workflows import cmd, flow, to

SPENT = {"agent": "slowpoke", "model": "openai:gpt-4.1-mini", "input_tokens": 120,
         "output_tokens": 0, "cost": 0.002}  # fmt: skip


def race() -> Definition:
    """Two branches asking the same question; the first answer wins."""
    parallel = Parallel(
        branches=(Branch("fast", cmd("fast", "answers")), Branch("slow", cmd("slow", "answers"))),
        join=JoinKind.ANY,
    )
    ask = State(name="ask", kind=StateKind.PARALLEL, parallel=parallel, transitions=(to("done"),))
    return flow("race", ask)


def test_the_losing_branch_is_cancelled_and_its_usage_is_recorded(store: SQLiteStore) -> None:
    commands = CommandRegistry()
    finished: list[str] = []

    @commands.command()
    async def fast(call: CommandContext) -> CommandResult:
        await asyncio.sleep(0.05)
        return CommandResult({"by": "fast"}, {**SPENT, "agent": "quick", "cost": 0.001})

    @commands.command()
    async def slow(call: CommandContext) -> dict[str, str]:
        call.track_usage(lambda outcome: {**SPENT, "outcome": outcome})
        await asyncio.sleep(5)
        finished.append(call.key)  # never: the join was met long before
        return {"by": "slow"}

    definition = race()

    async def scenario() -> None:
        runner = Runner(store, [definition], commands)
        await runner.start(definition, [("q-1", {})])
        await runner.run(max_wait=0.5)
        assert await store.stuck_items() == []

    asyncio.run(scenario())
    item = asyncio.run(store.get_item("race", "q-1"))
    assert (item.state, item.status) == ("done", ItemStatus.DONE)
    assert item.context["answers"] == {"fast": {"by": "fast"}}
    assert finished == []
    rows = asyncio.run(store.history("race", "q-1"))
    (late,) = [r for r in rows if r.event == "result_ignored"]
    assert (late.branch, late.command, late.from_state) == ("slow", "slow", "ask")
    assert late.usage is not None and late.usage["cost"] == 0.002
    assert late.usage["outcome"] == "permanent"
    costs = {row.agent: row for row in asyncio.run(store.costs("race"))}
    assert costs["slowpoke"].cost == 0.002 and costs["slowpoke"].calls == 1
    assert costs["quick"].cost == 0.001
    assert asyncio.run(store.pending_commands()) == 0
