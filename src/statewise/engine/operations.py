"""An operator's actions on one item: redrive (retry or move), pause, resume, cancel.

They work whatever the item is doing, because they are how people step in when the process
alone cannot go on: an escalated or quarantined item is sent back, a flood is paused. Each
drops the work the item had pending (its commands, timers and open task; a late result of a
running command is then ignored, its cost still recorded) and leaves an audit row naming the
operator and their reason.
"""

from __future__ import annotations

import difflib
from dataclasses import replace

from statewise.definition.model import DONE_EVENT, Definition
from statewise.engine.builder import StepBuilder
from statewise.engine.defects import DefectKind, defect_kind, defect_of
from statewise.engine.events import Operate, Operation
from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.engine.moves import drop_pending_work, enter, fire
from statewise.engine.result import Hop, StepResult
from statewise.errors import InvalidEventError

_ENTERS = {Operation.RETRY: "redrive", Operation.MOVE: "moved", Operation.RESUME: "resumed"}
_STOPS = {Operation.PAUSE: ItemStatus.PAUSED, Operation.CANCEL: ItemStatus.CANCELLED}
# The defects of deciding where to go after a state's work, which its result alone decides.
_DECISION_DEFECTS = (DefectKind.CONDITION, DefectKind.NO_TRANSITION)
# The statuses each operation may start from; RETRY and MOVE may start from any.
_ALLOWED_FROM = {
    Operation.PAUSE: (ItemStatus.ACTIVE, ItemStatus.WAITING),
    Operation.RESUME: (ItemStatus.PAUSED,),
    Operation.CANCEL: (
        ItemStatus.ACTIVE,
        ItemStatus.WAITING,
        ItemStatus.PAUSED,
        ItemStatus.FAILED,
    ),
}


def operate(builder: StepBuilder, event: Operate) -> StepResult:
    """Apply one operator action; InvalidEventError says why it does not fit the item."""
    item = builder.original
    if not event.reason.strip():
        raise InvalidEventError("an operator action needs a reason, for the audit trail")
    allowed = _ALLOWED_FROM.get(event.operation)
    if allowed is not None and item.status not in allowed:
        raise InvalidEventError(
            f"cannot {event.operation.value} item {item.key!r}: it is {item.status.value} "
            f"(allowed when {' or '.join(s.value for s in allowed)})"
        )
    _drop_pending_work(builder)
    if event.operation in _STOPS:
        return _stop(builder, event, _STOPS[event.operation])
    target = item.state if event.operation is Operation.RESUME else _target(builder, event)
    hop = Hop(event=_ENTERS[event.operation], kind="operator", actor=event.actor, note=event.reason)
    enter(builder, target, hop, budget=False)
    return builder.result()


def _target(builder: StepBuilder, event: Operate) -> str:
    states = builder.definition.states
    if event.target is None:
        raise InvalidEventError(f"{event.operation.value} needs the state to enter")
    if event.target not in states:
        close = difflib.get_close_matches(event.target, list(states), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidEventError(f"{builder.definition.ref} has no state {event.target!r}{hint}")
    return event.target


def _drop_pending_work(builder: StepBuilder) -> None:
    """Commands, timers and the open task of the current visit go; ``enter`` starts anew."""
    drop_pending_work(builder)
    builder.forget_work()


def _stop(builder: StepBuilder, event: Operate, status: ItemStatus) -> StepResult:
    """Pause or cancel in place: the item keeps its state and context, and holds no work."""
    builder.stop(status)
    builder.record(
        Hop(event=str(status), kind="operator", actor=event.actor, note=event.reason),
        to_state=builder.state_name,
    )
    return builder.result()


def redrive_defect(
    definition: Definition,
    item: Item,
    event: Operate,
    failure: HistoryRecord | None,
    now: float,
) -> HistoryRecord | None:
    """The defect that redriving ``item`` with ``event`` would fail it with again, if any.

    ``step`` is pure, so the redrive is computed here and thrown away: a defect in the step
    itself (the state it enters cannot decide where to go) shows at once. A retry of the
    state whose ``done`` met a defect (``failure``: a condition on its command's result, no
    matching transition) runs that ``done`` again on the result the item holds, since a
    command that returns the same would meet the same defect. Returns the defect's audit row.
    """
    found = defect_of(operate(StepBuilder(definition, item, now), event))
    if found is not None or event.operation is not Operation.RETRY or failure is None:
        return found
    decided_on_done = failure.event == DONE_EVENT and failure.from_state == event.target
    if not decided_on_done or defect_kind(failure.error) not in _DECISION_DEFECTS:
        return None
    again = StepBuilder(definition, replace(item, status=ItemStatus.ACTIVE), now)
    fire(again, DONE_EVENT, Hop(event=DONE_EVENT, kind="automatic"))
    return defect_of(again.result())
