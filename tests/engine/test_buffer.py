"""Events that arrive early: kept, delivered on entry, expired, dropped; ``step`` only."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from statewise.definition import loads
from statewise.definition.model import BUFFER_TIMER, Definition
from statewise.engine import (
    CancelTimers,
    CommandSucceeded,
    External,
    Item,
    ItemStatus,
    Operate,
    Outcome,
    RunCommand,
    StartTimer,
    StepResult,
    TimerFired,
    start,
    step,
)
from statewise.engine.buffer import kept_by
from statewise.engine.events import Operation
from statewise.errors import InvalidEventError

from .helpers import T0

HOUR = 3600.0

ORDER_YAML = """
workflow: order
version: 1
events:
  paid:
    description: the customer paid
    buffer: {ttl: 24h}
    data:
      type: object
      required: [amount]
      properties:
        amount: {type: number}
  approve: a manager approves the order
  note:
    description: a remark, kept for an hour
    buffer: {ttl: 1h}
states:
  intake:
    kind: initial
    command: check
    transitions:
      - to: approval
  approval:
    kind: waiting
    transitions:
      - on: approve
        to: awaiting_payment
      - after: 2d
        to: timed_out
  awaiting_payment:
    kind: waiting
    transitions:
      - on: paid
        to: ship
        when: event.data.amount >= 10
      - on: note
        to: awaiting_payment
  ship:
    command: ship
    transitions:
      - to: done
  done: {kind: final}
  timed_out: {kind: final}
"""


@pytest.fixture(scope="module")
def order() -> Definition:
    return loads(ORDER_YAML)


def waiting_for_approval(order: Definition) -> Item:
    """An item through its intake, waiting in ``approval`` with its 2-day timer set."""
    started = start(order, "o-1", {}, T0)
    (run,) = [e for e in started.effects if isinstance(e, RunCommand)]
    done = step(order, started.item, CommandSucceeded("intake", run.visit, 1, {}), T0)
    assert done.item.state == "approval"
    return done.item


def send(order: Definition, item: Item, name: str, data: dict[str, Any], at: float) -> StepResult:
    return step(order, item, External(name, data, actor="shop"), at)


def kinds(result: StepResult) -> list[tuple[str, str]]:
    return [(r.event, r.event_kind) for r in result.history]


def buffer_timers(result: StepResult) -> list[float]:
    return [
        e.due_at for e in result.effects if isinstance(e, StartTimer) and e.name == BUFFER_TIMER
    ]


def test_an_early_event_is_kept_with_its_data_sender_and_a_timer(order: Definition) -> None:
    item = waiting_for_approval(order)
    kept = send(order, item, "paid", {"amount": 50, "ref": "naïve-日本"}, T0 + 10)

    assert kept.outcome is Outcome.STAYED
    assert kept.item.state == "approval" and kept.item.status is ItemStatus.WAITING
    (row,) = kept.history
    assert (row.event, row.event_kind, row.actor) == ("paid", "buffered", "shop")
    assert row.output == {"amount": 50, "ref": "naïve-日本"}
    assert "kept until 1970-01-02 00:16:50 UTC" in (row.note or "")
    (entry,) = kept.item.buffer
    assert (entry.name, entry.actor, entry.seq) == ("paid", "shop", row.seq)
    assert entry.expires_at == T0 + 10 + 24 * HOUR
    assert kept_by(kept.item.seq, kept.item.buffer) == entry
    assert buffer_timers(kept) == [T0 + 10 + 24 * HOUR]
    assert "paid" not in kept.item.context  # the context learns it only when it is delivered


def test_it_is_delivered_when_the_item_enters_a_state_that_accepts_it(order: Definition) -> None:
    kept = send(order, waiting_for_approval(order), "paid", {"amount": 50}, T0 + 10)
    approved = send(order, kept.item, "approve", {}, T0 + 20)

    assert kinds(approved) == [("approve", "external"), ("paid", "buffer_delivered")]
    delivered = approved.history[1]
    assert (delivered.from_state, delivered.to_state) == ("awaiting_payment", "ship")
    assert delivered.actor == "shop" and delivered.output == {"amount": 50}
    assert delivered.condition == "event.data.amount >= 10"
    assert f"audit row {kept.item.seq}" in (delivered.note or "")
    assert approved.item.state == "ship" and approved.item.buffer == ()
    assert approved.item.context["paid"] == {"amount": 50}
    assert any(isinstance(e, RunCommand) and e.command == "ship" for e in approved.effects)
    assert kept_by(approved.item.seq, approved.item.buffer) is None
    assert buffer_timers(approved) == []  # nothing left to expire


def test_the_oldest_goes_first_one_per_entry(order: Definition) -> None:
    item = waiting_for_approval(order)
    first = send(order, item, "note", {"n": 1}, T0 + 1).item
    second = send(order, first, "note", {"n": 2}, T0 + 2).item
    paid = send(order, second, "paid", {"amount": 50}, T0 + 3).item
    assert [b.name for b in paid.buffer] == ["note", "note", "paid"]

    approved = send(order, paid, "approve", {}, T0 + 4)

    # note loops back into awaiting_payment: each entry delivers the next, oldest first.
    assert kinds(approved)[1:] == [
        ("note", "buffer_delivered"),
        ("note", "buffer_delivered"),
        ("paid", "buffer_delivered"),
    ]
    assert [r.output for r in approved.history[1:3]] == [{"n": 1}, {"n": 2}]
    assert approved.item.state == "ship" and approved.item.buffer == ()


def test_guards_that_do_not_hold_keep_it_buffered(order: Definition) -> None:
    kept = send(order, waiting_for_approval(order), "paid", {"amount": 5}, T0 + 10)
    approved = send(order, kept.item, "approve", {}, T0 + 20)

    assert kinds(approved) == [("approve", "external")]
    assert approved.item.state == "awaiting_payment"
    assert approved.item.buffer == kept.item.buffer
    assert "paid" not in approved.item.context
    # Leaving `approval` dropped the item's timers: the buffer's is started again after it.
    cancel = next(i for i, e in enumerate(approved.effects) if isinstance(e, CancelTimers))
    timer = next(
        i
        for i, e in enumerate(approved.effects)
        if isinstance(e, StartTimer) and e.name == BUFFER_TIMER
    )
    assert cancel < timer and buffer_timers(approved) == [T0 + 10 + 24 * HOUR]
    # A live event the state accepts still works beside it.
    paid = send(order, approved.item, "paid", {"amount": 20}, T0 + 30)
    assert paid.item.state == "ship" and len(paid.item.buffer) == 1


def test_an_expired_event_is_recorded_by_its_timer_even_if_the_item_never_moves(
    order: Definition,
) -> None:
    kept = send(order, waiting_for_approval(order), "paid", {"amount": 50}, T0)
    (due,) = buffer_timers(kept)
    timer = TimerFired(BUFFER_TIMER, "approval", 1)

    assert step(order, kept.item, timer, due - 1).outcome is Outcome.IGNORED
    expired = step(order, kept.item, timer, due)

    assert expired.outcome is Outcome.STAYED
    assert kinds(expired) == [("paid", "buffer_expired")]
    assert "sent by shop" in (expired.history[0].note or "")
    assert expired.item.buffer == () and expired.item.state == "approval"
    assert buffer_timers(expired) == []
    # A duplicate of the timer finds nothing left.
    assert step(order, expired.item, timer, due + 1).outcome is Outcome.IGNORED


def test_an_expired_event_is_never_delivered(order: Definition) -> None:
    kept = send(order, waiting_for_approval(order), "paid", {"amount": 50}, T0)
    late = send(order, kept.item, "approve", {}, T0 + 25 * HOUR)

    assert kinds(late) == [("approve", "external"), ("paid", "buffer_expired")]
    assert late.item.state == "awaiting_payment" and late.item.buffer == ()


def test_the_next_expiry_gets_its_timer_when_the_first_one_goes(order: Definition) -> None:
    note = send(order, waiting_for_approval(order), "note", {}, T0).item
    both = send(order, note, "paid", {"amount": 50}, T0 + 10)
    assert buffer_timers(both) == []  # the note's timer comes due first, and is set

    expired = step(order, both.item, TimerFired(BUFFER_TIMER, "approval", 1), T0 + HOUR)

    assert kinds(expired) == [("note", "buffer_expired")]
    assert buffer_timers(expired) == [T0 + 10 + 24 * HOUR]


def test_an_event_that_is_not_buffered_is_refused_as_before(order: Definition) -> None:
    item = waiting_for_approval(order)
    approved = send(order, item, "approve", {}, T0).item
    with pytest.raises(InvalidEventError, match="does not accept event 'approve'"):
        send(order, approved, "approve", {}, T0)
    with pytest.raises(InvalidEventError, match="does not accept event 'nope\\\\x00'"):
        send(order, item, "nope\x00", {}, T0)


def test_early_data_that_breaks_the_schema_is_refused_not_kept(order: Definition) -> None:
    with pytest.raises(InvalidEventError, match="does not fit the event's schema"):
        send(order, waiting_for_approval(order), "paid", {"amount": "ü"}, T0)


def test_a_finished_or_cancelled_item_drops_what_it_kept(order: Definition) -> None:
    kept = send(order, waiting_for_approval(order), "note", {}, T0).item
    cancel = Operate(Operation.CANCEL, "customer left", "ops")
    cancelled = step(order, kept, cancel, T0 + 1)

    assert kinds(cancelled) == [("cancelled", "operator"), ("note", "buffer_dropped")]
    assert "the item is cancelled" in (cancelled.history[1].note or "")
    assert cancelled.item.buffer == () and buffer_timers(cancelled) == []

    paid = send(order, kept, "paid", {"amount": 50}, T0 + 47 * HOUR).item
    timed_out = step(order, paid, TimerFired("timer:2d", "approval", 1), T0 + 48 * HOUR)
    assert timed_out.item.status is ItemStatus.DONE
    assert kinds(timed_out)[1:] == [("paid", "buffer_dropped")]  # the note had expired
    assert timed_out.item.buffer == ()


def test_a_paused_item_keeps_its_buffer_and_still_records_expiry(order: Definition) -> None:
    kept = send(order, waiting_for_approval(order), "note", {}, T0).item
    paused = step(order, kept, Operate(Operation.PAUSE, "audit", "ops"), T0 + 1)

    assert paused.item.status is ItemStatus.PAUSED and len(paused.item.buffer) == 1
    assert buffer_timers(paused) == [T0 + HOUR]  # pausing dropped every timer: set again
    expired = step(order, paused.item, TimerFired(BUFFER_TIMER, "approval", 1), T0 + HOUR)
    assert kinds(expired) == [("note", "buffer_expired")]
    assert expired.item.status is ItemStatus.PAUSED


def test_a_human_state_keeps_events_that_are_not_its_outcomes() -> None:
    definition = loads(
        """
workflow: review
events:
  paid: {description: paid, buffer: {ttl: 1h}}
  approve: a person approves
states:
  begin:
    kind: initial
    transitions:
      - {to: check}
  check:
    kind: human
    task: {queue: q}
    transitions:
      - {on: approve, to: wait}
  wait:
    kind: waiting
    transitions:
      - {on: paid, to: done}
  done: {kind: final}
"""
    )
    item = start(definition, "r-1", {}, T0).item
    kept = step(definition, item, External("paid", {}, "shop"), T0)
    assert kinds(kept) == [("paid", "buffered")]
    with pytest.raises(InvalidEventError, match="is a human task; decide its task"):
        step(definition, item, External("approve", {}, "shop"), T0)


def test_a_kept_event_a_guard_cannot_read_is_refused_on_entry_and_the_state_works_on() -> None:
    definition = loads(
        """
workflow: notes
events:
  note: {description: a remark, buffer: {ttl: 1h}}
  go: move on
states:
  begin:
    kind: initial
    transitions:
      - {to: first}
  first:
    kind: waiting
    transitions:
      - {on: go, to: second}
  second:
    kind: waiting
    transitions:
      - {on: note, when: event.data.n > 1, to: done}
      - {after: 1h, to: done}
  done: {kind: final}
"""
    )
    item = start(definition, "n-1", {}, T0).item
    kept = step(definition, item, External("note", {"m": 1}, "shop"), T0).item
    moved = step(definition, kept, External("go", {}, "boss"), T0 + 1)

    assert kinds(moved) == [("go", "external"), ("note", "buffer_refused")]
    assert "a guard in state 'second' cannot read it" in (moved.history[1].note or "")
    assert moved.item.state == "second" and moved.item.buffer == ()
    assert any(isinstance(e, StartTimer) and e.name == "timer:1h" for e in moved.effects)


def test_kept_data_that_no_longer_fits_the_schema_is_refused_on_entry(order: Definition) -> None:
    """An item moved onto a version whose schema its kept event's data breaks."""
    kept = send(order, waiting_for_approval(order), "note", {"n": "x"}, T0).item
    events = dict(order.events or {})
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    events["note"] = replace(events["note"], data=schema)
    stricter = replace(order, events=events)

    approved = step(stricter, kept, External("approve", {}, "boss"), T0 + 1)

    assert kinds(approved) == [("approve", "external"), ("note", "buffer_refused")]
    assert "its data does not fit the event's schema now (n: " in (approved.history[1].note or "")
    assert approved.item.state == "awaiting_payment" and approved.item.buffer == ()
