"""Sending a stopped item back into its process: retry what failed, or move it by hand.

An escalated or quarantined item never moves again on its own. An operator redrives it with a
reason that the audit trail keeps: either the command that failed runs again from a fresh
attempt, or the item enters a state the operator names.
"""

from __future__ import annotations

from collections.abc import Sequence

from statewise.engine.events import Operate, Operation
from statewise.engine.item import HistoryRecord, Item
from statewise.engine.quarantine import QUARANTINED
from statewise.errors import InvalidEventError
from statewise.worker.writer import ItemWriter


async def redrive(
    writer: ItemWriter,
    workflow: str | None,
    key: str,
    *,
    reason: str,
    actor: str,
    to: str | None = None,
) -> Item:
    """Retry the item's failed command (``to`` None) or move it into state ``to``."""
    item = await writer.store.get_item(workflow, key)
    event = await redrive_event(writer, item, reason=reason, actor=actor, to=to)
    return await writer.apply(item.workflow, item.key, event, f"the redrive of {key!r}")


async def redrive_event(
    writer: ItemWriter, item: Item, *, reason: str, actor: str, to: str | None
) -> Operate:
    """The operator event that redrives ``item``; a retry looks up what failed first."""
    if to is not None:
        return Operate(Operation.MOVE, reason, actor, to)
    history = await writer.store.history(item.workflow, item.key)
    target = failed_state(history, item)
    if target is None:
        raise InvalidEventError(
            f"item {item.key!r} has no failed command to retry (nothing in its audit trail "
            f"failed); move it to a named state instead"
        )
    return Operate(Operation.RETRY, reason, actor, target)


def failed_state(history: Sequence[HistoryRecord], item: Item) -> str | None:
    """The state whose command failed last, read back from the audit trail.

    A command's failure row leaves the state the command ran in (``from_state``); a
    quarantine keeps the item in the state it stopped in; a start that failed retries the
    workflow from where it began. Rows after the last redrive are the only ones that count.
    """
    for record in reversed(history):
        if record.event_kind == "operator":
            return None
        if record.error is None:
            continue
        if record.event == QUARANTINED:
            return item.state
        return record.from_state if record.from_state is not None else record.to_state
    return None
