"""Events that arrive early, sent through the runner on both stores: kept, delivered, expired.

Each test ends with the invariant: every active item has a pending command or timer, or waits.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from statewise.actions.events import event_outcome
from statewise.cli import app
from statewise.definition import loads
from statewise.definition.model import Definition
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidEventError, InvalidInputError
from statewise.store import open_store
from statewise.store.base import Store
from statewise.worker.runner import Runner

from .conftest import registry

ORDER_YAML = """
workflow: order
version: 1
events:
  paid:
    description: the customer paid; it may come before the order is approved
    buffer: {ttl: 24h}
    data:
      type: object
      required: [amount]
      properties:
        amount: {type: number}
  approve: a manager approves the order
states:
  intake:
    kind: initial
    command: score
    transitions:
      - to: approval
  approval:
    kind: waiting
    transitions:
      - on: approve
        to: checkout
  checkout:
    kind: waiting
    transitions:
      - on: paid
        when: event.data.amount >= 10
        to: ship
  ship:
    command: ship
    transitions:
      - to: done
  done: {kind: final}
"""
HOUR = 3600.0
COMMANDS = str(Path(__file__).with_name("conftest.py"))
KEY = "o/1?%ü"


@pytest.fixture
def order() -> Definition:
    return loads(ORDER_YAML, file="order.yaml", commands=registry.names())


async def approving(store: Store, order: Definition, *keys: str, clock: Any = time.time) -> Runner:
    """Items through their intake, waiting in `approval`."""
    runner = Runner(store, [order], registry, clock=clock)
    await store.save_workflow(order, "order.yaml", [])
    await runner.start(order, [(key, {"amount": 50}) for key in keys])
    await runner.run(max_wait=0)
    return runner


def events(history: list[Any]) -> list[tuple[str, str, str]]:
    return [(r.event, r.event_kind, r.actor) for r in history if r.event in ("paid", "approve")]


def test_an_early_event_is_kept_then_delivered_when_its_state_comes(
    url: str, order: Definition
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            runner = await approving(store, order, KEY)
            sent_at = time.time()
            kept = await runner.send("order", KEY, "paid", {"amount": 20, "ref": "ключ"}, "shop")

            answer = event_outcome(kept, "paid")
            assert answer.outcome == "buffered" and kept.state == "approval"
            assert answer.buffered_until is not None
            assert sent_at + 24 * HOUR <= answer.buffered_until <= time.time() + 24 * HOUR
            assert answer.message.startswith("paid buffered until ")
            assert "state approval does not accept it yet" in answer.message
            assert await store.stuck_items() == []

            approved = await runner.send("order", KEY, "approve", {}, "boss")
            assert event_outcome(approved, "approve").outcome == "accepted"
            assert approved.state == "ship" and approved.buffer == ()
            await runner.run(max_wait=0)
            done = await store.get_item("order", KEY)
            assert done.state == "done" and done.context["paid"] == {"amount": 20, "ref": "ключ"}
            assert events(await store.history("order", KEY)) == [
                ("paid", "buffered", "shop"),
                ("approve", "external", "boss"),
                ("paid", "buffer_delivered", "shop"),
            ]
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(main())


def test_an_early_event_expires_on_its_timer_while_the_item_waits(
    url: str, order: Definition
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            runner = await approving(store, order, "o-1")
            await runner.send("order", "o-1", "paid", {"amount": 20}, "shop")
            assert await store.next_timer_due() is not None

            tomorrow = Runner(store, [order], registry, clock=lambda: time.time() + 25 * HOUR)
            await tomorrow.run(max_wait=0)

            item = await store.get_item("order", "o-1")
            assert item.state == "approval" and item.status is ItemStatus.WAITING
            assert item.buffer == ()
            last = (await store.history("order", "o-1"))[-1]
            assert (last.event, last.event_kind) == ("paid", "buffer_expired")
            assert await store.next_timer_due() is None
            assert await store.stuck_items() == []

            # Approved later, it now waits for a payment sent afresh: nothing was delivered.
            approved = await tomorrow.send("order", "o-1", "approve", {}, "boss")
            assert approved.state == "checkout" and "paid" not in approved.context
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(main())


def test_two_early_events_from_two_writers_are_both_kept_in_order(
    url: str, order: Definition
) -> None:
    async def main() -> None:
        first, second = open_store(url), open_store(url)
        try:
            runner = await approving(first, order, "o-2")
            other = Runner(second, [order], registry)
            await asyncio.gather(
                runner.send("order", "o-2", "paid", {"amount": 5}, "a"),
                other.send("order", "o-2", "paid", {"amount": 30}, "b"),
            )
            kept = await first.get_item("order", "o-2")
            assert sorted(b.actor for b in kept.buffer) == ["a", "b"]
            assert [b.seq for b in kept.buffer] == sorted(b.seq for b in kept.buffer)
            assert await first.stuck_items() == []

            # In checkout, the 5 fails its guard and stays; the 30 is delivered.
            approved = await other.send("order", "o-2", "approve", {}, "boss")
            assert approved.state == "ship"
            assert [b.data for b in approved.buffer] == [{"amount": 5}]
            await runner.run(max_wait=0)
            assert (await first.get_item("order", "o-2")).buffer == ()  # dropped when done
            assert events(await first.history("order", "o-2"))[-3:] == [
                ("approve", "external", "boss"),
                ("paid", "buffer_delivered", "b"),
                ("paid", "buffer_dropped", "a"),
            ]
            assert await first.stuck_items() == []
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())


def test_an_early_event_racing_the_transition_it_waits_for_is_taken_once(
    url: str, order: Definition
) -> None:
    """Whichever commits first, the payment is taken exactly once: kept then delivered, or live."""

    async def main() -> None:
        first, second = open_store(url), open_store(url)
        try:
            runner = await approving(first, order, *(f"r-{n}" for n in range(4)))
            other = Runner(second, [order], registry)
            sends = []
            for n in range(4):  # in either order, so that each way of taking it is raced
                approve = runner.send("order", f"r-{n}", "approve", {}, "boss")
                paid = other.send("order", f"r-{n}", "paid", {"amount": 20}, "shop")
                sends += [approve, paid] if n % 2 else [paid, approve]
            await asyncio.gather(*sends, other.run(max_wait=0))
            await runner.run(max_wait=0)
            for n in range(4):
                item = await first.get_item("order", f"r-{n}")
                assert item.state == "done" and item.buffer == (), item
                taken = [
                    kind
                    for event, kind, _ in events(await first.history("order", f"r-{n}"))
                    if event == "paid"
                ]
                assert taken in (["buffered", "buffer_delivered"], ["external"]), taken
            assert await first.stuck_items() == []
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())


def test_events_that_are_not_buffered_or_are_hostile_are_refused_and_change_nothing(
    url: str, order: Definition
) -> None:
    async def main() -> None:
        store = open_store(url)
        try:
            runner = await approving(store, order, "o-3")
            await runner.send("order", "o-3", "approve", {}, "boss")
            before = await store.get_item("order", "o-3")
            history = await store.history("order", "o-3")
            refusals: list[tuple[str, dict[str, Any], type[Exception], str]] = [
                ("approve", {}, InvalidEventError, "does not accept event 'approve'"),
                ("päid\x00", {}, InvalidEventError, "does not accept event 'päid\\x00'"),
                ("paid", {"amount": "ü"}, InvalidEventError, "does not fit the event's schema"),
                ("paid", {"a\x00": 1}, InvalidInputError, "control character U+0000"),
            ]
            for name, data, error, why in refusals:
                with pytest.raises(error) as refused:
                    await runner.send("order", "o-3", name, data, "x")
                assert why in str(refused.value)
            assert await store.get_item("order", "o-3") == before
            assert await store.history("order", "o-3") == history
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(main())


def test_statewise_send_says_until_when_an_early_event_is_kept(url: str, order: Definition) -> None:
    async def prepare() -> None:
        store = open_store(url)
        try:
            await store.save_workflow(order, "order.yaml", [COMMANDS])
            runner = Runner(store, [order], registry)
            await runner.start(order, [(KEY, {"amount": 50})])
            await runner.run(max_wait=0)
        finally:
            await store.close()

    asyncio.run(prepare())

    def cli(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, [*args, "--db", url], env={"COLUMNS": "200"})
        return result.exit_code, result.output

    code, out = cli("send", KEY, "paid", "--data", '{"amount": 20}', "--actor", "shop")
    assert code == 0, out
    assert f"{KEY}: paid buffered until " in out and "UTC: state approval does not" in out
    code, out = cli("show", KEY, "--json")
    assert code == 0, out
    (kept,) = json.loads(out)["pending"]["buffered"]
    assert (kept["name"], kept["actor"], kept["data"]) == ("paid", "shop", {"amount": 20})
    code, out = cli("show", KEY)
    assert code == 0 and "buffered event" in out and "paid from shop" in out
    code, out = cli("send", KEY, "approve")
    assert code == 0, out
    assert f"{KEY}: approve accepted; now in ship" in out and f"{KEY}: now in done" in out
    code, out = cli("send", KEY, "approve")
    assert code == 1 and "is finished (in final state 'done')" in out

    async def check() -> None:
        store = open_store(url)
        try:
            assert [kind for _, kind, _ in events(await store.history("order", KEY))] == [
                "buffered",
                "external",
                "buffer_delivered",
            ]
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(check())
