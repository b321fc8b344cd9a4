"""The Python API refuses what the input rules refuse, and a refusal changes nothing.

``Runner.start``, ``Runner.send`` and ``TaskDesk.decide`` on SQLite and PostgreSQL: a bad
key or document raises InvalidInputError before anything is written, while a second writer
goes on starting items; a command whose result breaks the rules fails that attempt as
invalid output.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from hostile import HOSTILE_BUT_VALID_KEYS, nested
from statewise.actions import Principal, TaskDesk
from statewise.contract import CommandContext, CommandRegistry
from statewise.definition import loads
from statewise.definition.model import Definition, Role
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidInputError
from statewise.inputs import InputLimits
from statewise.store import open_store
from statewise.store.base import Store
from statewise.worker.runner import Runner

from .conftest import registry

BOB = Principal("bob", Role.REVIEWER)
BAD_STARTS: list[tuple[str, Any, str]] = [
    ("", {"amount": 1}, "must not be empty or blank"),
    ("   ", {"amount": 1}, "must not be empty or blank"),
    ("a\x00b", {"amount": 1}, "control character U+0000"),
    ("a\x1fb", {"amount": 1}, "control character U+001F"),
    ("k" * 513, {"amount": 1}, "the limit is 512"),
    ("deep", {"amount": 1, "x": nested(260)}, "nested more than 64 levels deep"),
    ("nan", {"amount": float("nan")}, "holds nan"),
    ("inf", {"amount": float("inf")}, "holds inf"),
    ("huge", {"amount": 10**26}, "outside the signed 64-bit range"),
    ("sep", {"amount": 1, "review\x1fdecision": "forged"}, "control character U+001F"),
    ("big", {"amount": 1, "x": "y" * 2000}, "bytes as JSON; the limit is 1,000"),
]
SMALL = InputLimits(max_item_bytes=1000)


async def _snapshot(store: Store) -> list[tuple[str, str, int, int]]:
    """Every item's key, state and seq, and the length of its history: what a refusal keeps."""
    items = await store.list_items(limit=1000)
    return sorted(
        [(i.key, i.state, i.seq, len(await store.history(i.workflow, i.key))) for i in items]
    )


@pytest.mark.parametrize(("key", "data", "message"), BAD_STARTS)
def test_a_start_breaking_a_rule_is_refused_and_stores_nothing(
    url: str, review: Definition, key: str, data: Any, message: str
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            await store.save_workflow(review, "review.yaml", [])
            runner = Runner(store, [review], registry, input_limits=SMALL)
            other = Runner(store, [review], registry, input_limits=SMALL)
            await runner.start(review, [("before", {"amount": 1})])
            before = await _snapshot(store)

            async def refused() -> None:
                with pytest.raises(InvalidInputError, match=re.escape(message)) as caught:
                    await runner.start(review, [(key, data)])
                assert caught.value.code == "invalid_input"

            # A second writer starts its items meanwhile; only the refused one is missing.
            await asyncio.gather(
                refused(), other.start(review, [(f"other-{n}", {"amount": n}) for n in range(20)])
            )
            after = await _snapshot(store)
            assert [row for row in after if not row[0].startswith("other-")] == before
            assert len(after) == len(before) + 20
            await runner.run(max_wait=0)
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(main())


def test_keys_with_url_characters_and_non_ascii_start_and_run(url: str, review: Definition) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            await store.save_workflow(review, "review.yaml", [])
            runner = Runner(store, [review], registry)
            starts = [(key, {"amount": 95, "note%/?é": key}) for key in HOSTILE_BUT_VALID_KEYS]
            report = await runner.start(review, starts)
            assert report.created == len(HOSTILE_BUT_VALID_KEYS)
            await runner.run(max_wait=0)
            for key in HOSTILE_BUT_VALID_KEYS:
                item = await store.get_item("review", key)
                assert (item.key, item.status) == (key, ItemStatus.DONE)
                assert item.context["note%/?é"] == key
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"risk": "low", "x": nested(260)}, "nested more than 64 levels deep"),
        ({"risk": float("nan")}, "holds nan"),
        ({"risk": "low", "n": 2**64}, "outside the signed 64-bit range"),
    ],
)
def test_an_event_or_a_decision_breaking_a_rule_is_refused_and_changes_nothing(
    url: str, review: Definition, data: dict[str, Any], message: str
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            await store.save_workflow(review, "review.yaml", [])
            runner = Runner(store, [review], registry)
            await runner.start(review, [("order-1", {"amount": 50})])
            await runner.run(max_wait=0)
            before = await _snapshot(store)
            with pytest.raises(InvalidInputError, match=re.escape(message)):
                await runner.send("review", "order-1", "approve", data, "cli")
            desk = TaskDesk(runner, registry)
            (task,) = await desk.inbox(BOB)
            with pytest.raises(InvalidInputError, match=re.escape(message)):
                await desk.decide(task.id, BOB, "approve", "", data)
            with pytest.raises(InvalidInputError, match="task 18446744073709551616 is out of"):
                await desk.decide(2**64, BOB, "approve", "", {"risk": "low"})
            with pytest.raises(InvalidInputError, match="out of range"):
                await desk.claim(2**64, BOB)
            assert await _snapshot(store) == before
            assert (await store.get_task(task.id)).status.value == "open"
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(main())


DEEP = """
workflow: deep
states:
  make:
    kind: initial
    command: {name: make, result: made}
    transitions:
      - to: done
  done: {kind: final}
"""


def test_a_command_result_breaking_a_rule_fails_its_attempt_as_invalid_output(
    url: str,
) -> None:
    commands = CommandRegistry()
    shapes = {"deep": nested(260), "huge": {"n": 10**30}, "fine": nested(64)}

    @commands.command()
    async def make(call: CommandContext) -> Any:
        return shapes[call.key]

    definition = loads(DEEP, file="deep.yaml", commands=commands.names())

    async def main() -> None:
        store = open_store(url)
        try:
            await store.save_workflow(definition, "deep.yaml", [])
            runner = Runner(store, [definition], commands)
            await runner.start(definition, [(key, {}) for key in shapes])
            await runner.run(max_wait=0)
            for key in ("deep", "huge"):
                item = await store.get_item("deep", key)
                assert item.state == "make" and "made" not in item.context  # it will retry
                failure = (await store.history("deep", key))[-1]
                assert failure.error is not None
                assert failure.error["kind"] == "invalid_output", failure.error
            assert (await store.get_item("deep", "fine")).context["made"] == nested(64)
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(main())
