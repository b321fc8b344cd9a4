"""Events that arrive early: kept on the item, delivered when it enters a state that takes them.

An external event declared with ``buffer: {ttl: ...}`` that reaches an item whose state does
not accept it (yet) is kept on the item (``Item.buffer``) instead of refused, so it commits
with the item's row, in the step that received it, under the same fence. The rules, each one
function here, each called from one place in the step:

1. Keep (``keep_early``, from ``step._on_external``): its data must fit the event's schema,
   as for a live event; it is kept until ``now + ttl`` with an audit row of kind
   ``buffered`` (the event's name, its data as output, the sender as actor). A state that
   accepts it live, or an event not buffered, goes on exactly as before.
2. Deliver (``deliver_on_entry``, from the builder's state entry, before the state's work
   starts): the oldest kept event the entered state accepts, and whose guards hold there,
   fires as the live event would (row kind ``buffer_delivered``). One per entry: the state it
   leads to delivers the next. One whose guards do not hold stays kept; one whose data no
   longer fits, or whose guard cannot be evaluated on it, is refused (``buffer_refused``).
3. Expire (``expire_due``): a kept event past its time is recorded (``buffer_expired``) and
   dropped, lazily on the next entry and at the latest by a timer (``BUFFER_TIMER``) at the
   earliest expiry. That timer is not tied to a state visit: it fires whatever the item's
   state, and ``settle`` starts it again whenever a step dropped the item's timers.
4. Drop (``settle``): an item that finishes or is cancelled drops what it kept
   (``buffer_dropped``). A failed or paused item keeps it: it may be redriven or resumed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statewise.definition.data_schema import schema_problems
from statewise.definition.model import BUFFER_TIMER, DONE_EVENT, ERROR_EVENT, State
from statewise.engine.effects import CancelTimers, StartTimer
from statewise.engine.events import External
from statewise.engine.item import BufferedEvent, ItemStatus
from statewise.engine.result import Hop, Outcome, StepResult
from statewise.engine.transitions import Selection, condition_facts, select_transition
from statewise.errors import ConditionError

if TYPE_CHECKING:  # the builder imports this module to call its hooks
    from statewise.engine.builder import StepBuilder

JSON = Any

KEPT = "buffered"
DELIVERED = "buffer_delivered"
EXPIRED = "buffer_expired"
REFUSED = "buffer_refused"
DROPPED = "buffer_dropped"
# An item that reaches one of these has no further use for what it kept.
_DROPS = (ItemStatus.DONE, ItemStatus.CANCELLED)


def clock(at: float) -> str:
    """A moment as audit rows and senders read it: UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def accepts(state: State, name: str) -> bool:
    """Whether an item in ``state`` can be sent event ``name`` now (a human task is decided)."""
    return state.task is None and any(
        t.on == name and t.after is None and t.on not in (DONE_EVENT, ERROR_EVENT)
        for t in state.transitions
    )


def keep_early(builder: StepBuilder, event: External) -> StepResult | None:
    """Keep ``event`` if it is buffered and the item's state does not accept it; else None.

    The caller has checked its data against the event's schema already.
    """
    spec = (builder.definition.events or {}).get(event.name)
    state = builder.state
    if spec is None or spec.buffer_ttl is None or event.name in state.outcomes:
        return None  # refused or taken as before (a human state's outcome is decided)
    expire_due(builder)
    until = builder.now + spec.buffer_ttl
    hop = Hop(
        event=event.name,
        kind=KEPT,
        actor=event.actor,
        output=event.data,
        note=f"kept until {clock(until)}: state {state.name!r} does not accept it yet",
    )
    builder.record(hop, to_state=state.name)
    kept = BufferedEvent(event.name, event.data, event.actor, builder.seq, builder.now, until)
    builder.keep((*builder.buffer, kept))
    return builder.result()


def kept_by(item_seq: int, buffer: tuple[BufferedEvent, ...]) -> BufferedEvent | None:
    """The event the step that left the item at ``item_seq`` kept, if that step kept one.

    A step that keeps an event records it last, so its row is the item's latest.
    """
    return buffer[-1] if buffer and buffer[-1].seq == item_seq else None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A kept event that fires in the state just entered: where it leads, and its audit hop."""

    target: str
    hop: Hop
    selection: Selection


def deliver_on_entry(builder: StepBuilder, state: State) -> Delivery | None:
    """Take the oldest kept event the entered ``state`` accepts and whose guards hold there.

    Called as the state is entered, before its work starts (``moves``, which then enters
    the delivery's target): an event that fires leaves the state at once, so its command is
    never started and its timers never set.
    """
    if not builder.buffer:
        return None
    expire_due(builder)
    for kept in builder.buffer:  # taking or refusing one replaces the builder's tuple
        if accepts(state, kept.name):
            delivery = _take(builder, state, kept)
            if delivery is not None:
                return delivery
    return None


def _take(builder: StepBuilder, state: State, kept: BufferedEvent) -> Delivery | None:
    """Take ``kept`` in ``state`` if its guards hold; refuse it if they cannot be evaluated."""
    spec = (builder.definition.events or {}).get(kept.name)
    problems = schema_problems(spec.data, kept.data) if spec and spec.data else []
    if problems:  # the item moved to another version meanwhile, with another schema
        why = f"its data does not fit the event's schema now ({'; '.join(problems)})"
        _drop(builder, kept, REFUSED, why)
        return None
    context = {**builder.context, kept.name: kept.data}
    facts = condition_facts(builder.definition, builder.item, context, kept.name, kept.data, None)
    try:
        selection = select_transition(state, kept.name, facts)
    except ConditionError as exc:
        _drop(builder, kept, REFUSED, f"a guard in state {state.name!r} cannot read it: {exc}")
        return None
    if selection is None:
        return None  # its guards do not hold here: it stays kept
    builder.keep(tuple(b for b in builder.buffer if b is not kept))
    builder.set((kept.name,), kept.data)
    hop = Hop(
        event=kept.name,
        kind=DELIVERED,
        actor=kept.actor,
        event_data=kept.data,
        output=kept.data,
        note=f"delivered from the buffer: sent at {clock(kept.received_at)} (audit row {kept.seq})",
    )
    return Delivery(selection.transition.target, hop, selection)


def expire_due(builder: StepBuilder) -> bool:
    """Record and drop every kept event whose time has passed; True if there was any."""
    due = [b for b in builder.buffer if b.expires_at <= builder.now]
    for kept in due:
        _drop(builder, kept, EXPIRED, f"not taken by {clock(kept.expires_at)}")
    return bool(due)


def on_expiry_timer(builder: StepBuilder) -> StepResult:
    """The buffer's timer came due: record what expired, or nothing (IGNORED)."""
    if not expire_due(builder):
        return StepResult(builder.original, Outcome.IGNORED)
    return builder.result()


def _drop(builder: StepBuilder, kept: BufferedEvent, kind: str, why: str) -> None:
    builder.keep(tuple(b for b in builder.buffer if b is not kept))
    note = f"event {kept.name!r} sent by {kept.actor} at {clock(kept.received_at)}: {why}"
    builder.record(Hop(event=kept.name, kind=kind, actor=kept.actor, note=note))


def settle(builder: StepBuilder) -> None:
    """At the end of a step: drop the buffer of an item that ended; keep its timer set.

    The timer is started when the earliest expiry changed, or when the step dropped the
    item's timers (leaving a state with timers, pausing, failing): ``CancelTimers`` drops
    every timer of the item, this one included.
    """
    if builder.buffer and builder.status in _DROPS:
        for kept in builder.buffer:
            _drop(builder, kept, DROPPED, f"dropped: the item is {builder.status.value}")
    if not builder.buffer:
        return
    earliest = min(b.expires_at for b in builder.buffer)
    before = min((b.expires_at for b in builder.original.buffer), default=None)
    if earliest != before or builder.has_emitted(CancelTimers):
        builder.emit(StartTimer(BUFFER_TIMER, earliest, builder.state_name, builder.visit))
