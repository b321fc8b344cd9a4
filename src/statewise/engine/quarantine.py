"""Quarantine: the recorded failure of one item that cannot be stepped any further.

Whatever an item carries that makes a step impossible (a version no worker has, a value the
store cannot encode, a loop past every budget) must stop that item alone, never the runner.
``fail_item`` is the pure step that does so: it moves the item to status ``failed`` where it
stands, records why in its audit trail, and drops its pending work (and any open human
task) so nothing waits on it.
"""

from __future__ import annotations

from dataclasses import replace

from statewise.engine.effects import CancelCommands, CancelTimers, CloseTask
from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.engine.result import Outcome, StepResult

QUARANTINED = "quarantined"


def fail_item(item: Item, reason: str, now: float, *, kind: str = "item_failure") -> StepResult:
    """Fail ``item`` in its current state with ``reason``; its context stays as it was."""
    record = HistoryRecord(
        seq=item.seq + 1,
        at=now,
        from_state=item.state,
        to_state=item.state,
        event=QUARANTINED,
        event_kind="failure",
        error={"kind": kind, "message": reason},
        note="the item was stopped alone; the others go on",
    )
    failed = replace(
        item, status=ItemStatus.FAILED, seq=item.seq + 1, updated_at=now, retrying=False
    )
    return StepResult(
        item=failed,
        outcome=Outcome.MOVED,
        effects=(CancelTimers(), CancelCommands(), CloseTask(item.state, item.visit, "cancelled")),
        history=(record,),
    )
