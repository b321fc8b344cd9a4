"""Events sent from outside: data that breaks the event's schema, or a guard that cannot be
evaluated on it, refuses the event and changes nothing, whoever else writes meanwhile."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from statewise.definition.model import Definition
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidEventError, InvalidInputError
from statewise.store import open_store
from statewise.store.base import Store
from statewise.worker.runner import Runner

from .conftest import registry


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"amount": 20}
    for _ in range(depth):
        value = {"inner": value}
    return value


HOSTILE_KEY = "k%/?#ü"
CONTROL_KEY = "k%/?\x00\x1fü"

# Data that breaks the event's schema or its conditions: refused by the engine.
REFUSED = [
    ("pay", {"amount": "abc"}, "does not fit the event's schema (amount: "),
    ("pay", {}, "does not fit the event's schema (data: "),
    ("pay", {"amount": _nested(30), HOSTILE_KEY: 1}, "does not fit the event's schema (amount: "),
    ("tip", {"amount": "abc"}, "condition `event.data.amount > 10` failed"),
    ("tip", {}, "condition `event.data.amount > 10`"),
    ("tip", {HOSTILE_KEY: "x"}, "condition `event.data.amount > 10`"),
]
# Data no event may carry: refused by the input rules before the engine sees it.
UNACCEPTABLE = [
    ("pay", {"amount": _nested(300)}, "levels deep"),
    ("tip", {CONTROL_KEY: "x"}, r"control character U\+0000"),
    ("tip", {"amount": 10**400}, "outside the signed 64-bit range"),
]


async def _checkout(store: Store, payment: Definition, *keys: str) -> Runner:
    """Items waiting in `checkout` for their payment."""
    runner = Runner(store, [payment], registry)
    await store.save_workflow(payment, "payment.yaml", [])
    await runner.start(payment, [(key, {"amount": 50}) for key in keys])
    await runner.run(max_wait=0)
    return runner


async def _refused(
    store: Store, payment: Definition, name: str, data: dict[str, Any], error: type[Exception]
) -> tuple[Runner, Exception]:
    """Send ``data`` to an item waiting in `checkout`: refused with ``error``, nothing changed."""
    runner = await _checkout(store, payment, "inv-1")
    before = await store.get_item("payment", "inv-1")
    history = await store.history("payment", "inv-1")
    assert before.state == "checkout" and before.status is ItemStatus.WAITING
    with pytest.raises(error) as refused:
        await runner.send("payment", "inv-1", name, data, "api")
    assert await store.get_item("payment", "inv-1") == before
    assert await store.history("payment", "inv-1") == history
    assert await store.stuck_items() == []
    return runner, refused.value


@pytest.mark.parametrize(("name", "data", "why"), REFUSED)
def test_an_event_with_bad_data_is_refused_and_nothing_changes(
    url: str, payment: Definition, name: str, data: dict[str, Any], why: str
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            runner, refused = await _refused(store, payment, name, data, InvalidEventError)
            message = str(refused)
            assert why in message and message.endswith("nothing changed")
            assert f"event {name!r} for item 'inv-1' was refused" in message
            assert len(message) < 1000  # a huge value is cut, not echoed

            moved = await runner.send("payment", "inv-1", name, {"amount": 20}, "api")
            assert moved.state == "ship"
            await runner.run(max_wait=0)
            assert (await store.get_item("payment", "inv-1")).state == "paid"
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.parametrize(("name", "data", "why"), UNACCEPTABLE)
def test_event_data_breaking_the_input_rules_is_refused_before_the_engine(
    url: str, payment: Definition, name: str, data: dict[str, Any], why: str
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            _, refused = await _refused(store, payment, name, data, InvalidInputError)
            assert re.search(why, str(refused))
        finally:
            await store.close()

    asyncio.run(main())


def test_refused_events_racing_a_good_one_and_a_worker_leave_nothing_stuck(
    url: str, payment: Definition
) -> None:
    """Two writers on two connections: the good event moves the item once, the bad ones never."""

    async def main() -> None:
        first, second = open_store(url), open_store(url)
        try:
            runner = await _checkout(first, payment, "inv-1", "inv-2")
            other = Runner(second, [payment], registry)
            bad = [runner.send("payment", "inv-1", n, d, "bad") for n, d, _ in REFUSED]
            results = await asyncio.gather(
                *bad,
                other.send("payment", "inv-1", "pay", {"amount": 20}, "good"),
                other.send("payment", "inv-2", "pay", {"amount": 5}, "good"),
                other.run(max_wait=0),
                return_exceptions=True,
            )
            refused = results[: len(bad)]
            assert all(isinstance(r, InvalidEventError) for r in refused), results
            assert not any(isinstance(r, BaseException) for r in results[len(bad) :]), results
            assert await first.stuck_items() == []

            external = [
                r for r in await first.history("payment", "inv-1") if r.event_kind == "external"
            ]
            assert [(r.event, r.actor, r.to_state) for r in external] == [("pay", "good", "ship")]
            await runner.run(max_wait=0)
            assert (await first.get_item("payment", "inv-1")).state == "paid"
            assert (await first.get_item("payment", "inv-2")).state == "small"
            assert await first.stuck_items() == []
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())
