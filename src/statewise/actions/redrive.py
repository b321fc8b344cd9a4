"""Sending a stopped item back into its process: retry what failed, or move it by hand.

An escalated or failed item never moves again on its own. An operator redrives it with a
reason that the audit trail keeps: either the command that failed runs again from a fresh
attempt, or the item enters a state the operator names. A redrive that would only fail the
item again with the same defect (the condition still cannot be evaluated under the item's
definition) is refused, saying so, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from statewise.actions.deployment import stored_version
from statewise.actions.migration import migrate_item
from statewise.definition.model import Definition
from statewise.engine.events import Operate, Operation
from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.engine.operations import redrive_defect
from statewise.engine.quarantine import QUARANTINED
from statewise.errors import InvalidEventError
from statewise.store.base import PendingWork
from statewise.worker.writer import ItemWriter


async def redrive(
    writer: ItemWriter,
    workflow: str | None,
    key: str,
    *,
    reason: str,
    actor: str,
    to: str | None = None,
    to_version: int | None = None,
) -> Item:
    """Retry the item's failed command (``to`` None) or move it into state ``to``.

    With ``to_version`` the item moves onto that version of its workflow (a fixed one), into
    ``to`` or the state its own state maps to there: a migration of this one item.
    """
    item = await writer.store.get_item(workflow, key)
    if to_version is not None:
        await stored_version(writer.store, item.workflow, to_version)
        new = writer.definition(item.workflow, to_version)
        _, moved = await migrate_item(
            writer, item.workflow, key, new, actor=actor, reason=reason, to=to, any_status=True
        )
        return moved
    event = await redrive_event(writer, item, reason=reason, actor=actor, to=to)
    return await writer.apply(item.workflow, item.key, event, f"the redrive of {key!r}")


async def redrive_event(
    writer: ItemWriter, item: Item, *, reason: str, actor: str, to: str | None
) -> Operate:
    """The operator event that redrives ``item``; a retry looks up what failed first.

    InvalidEventError when the redrive would fail the item again with a defect.
    """
    if to is not None:
        event, failure = Operate(Operation.MOVE, reason, actor, to), None
    else:
        failure = last_failure(await writer.store.history(item.workflow, item.key))
        target = failed_state(failure, item)
        if target is None:
            raise InvalidEventError(
                f"item {item.key!r} has no failed command to retry (nothing in its audit trail "
                f"failed); move it to a named state instead"
            )
        event = Operate(Operation.RETRY, reason, actor, target)
    definition = writer.definition(item.workflow, item.version)
    defect = redrive_defect(definition, item, event, failure, writer.clock())
    if defect is not None and defect.error is not None:
        raise InvalidEventError(
            f"redrive of item {item.key!r} refused: on {definition.ref} it would fail again in "
            f"state {defect.to_state!r} with the same defect ({defect.error['kind']}: "
            f"{defect.error['message']}); nothing changed. The workflow must be fixed first "
            f"(in a new version); until then, move the item to a state past the defect"
        )
    return event


def last_failure(history: Sequence[HistoryRecord]) -> HistoryRecord | None:
    """The last audit row with an error, counting only rows after the last redrive."""
    for record in reversed(history):
        if record.event_kind == "operator":
            return None
        if record.error is not None:
            return record
    return None


def failed_state(failure: HistoryRecord | None, item: Item) -> str | None:
    """The state whose command failed last, read back from its failure row.

    A command's failure row leaves the state the command ran in (``from_state``); a
    quarantine keeps the item in the state it stopped in; a start that failed retries the
    workflow from where it began.
    """
    if failure is None:
        return None
    if failure.event == QUARANTINED:
        return item.state
    return failure.from_state if failure.from_state is not None else failure.to_state


def redrive_offer(item: Item, definition: Definition | None, pending: PendingWork) -> str | None:
    """Why redriving ``item`` makes sense now, or None when it does not.

    A failed or cancelled item moves again only when redriven; an escalated one (in a state
    its workflow escalates to) waits for a person; a stuck one (active with no pending
    command or timer: the invariant broken) would never move. Any other item is moving or
    waiting as its workflow says, and a redrive would only cut that short.
    """
    if item.status is ItemStatus.FAILED:
        return "it failed"
    if item.status is ItemStatus.CANCELLED:
        return "it was cancelled"
    if definition is not None and item.state in escalation_states(definition):
        return f"it escalated to {item.state}"
    if item.status is ItemStatus.ACTIVE and not pending.commands and not pending.timers:
        return "it is stuck: active, with no pending command or timer"
    return None


def escalation_states(definition: Definition) -> frozenset[str]:
    """The states items escalate to: the workflow's and each task's, visit limit's and budget's.

    Only names the definition has: the default escalation state need not exist.
    """
    budgets = [definition.budget, *(state.budget for state in definition.states.values())]
    named = {
        definition.escalation,
        *(s.task.escalate_to for s in definition.states.values() if s.task is not None),
        *(s.on_exhausted for s in definition.states.values()),
        *(b.on_exceeded for b in budgets if b is not None),
    }
    return frozenset(name for name in named if name is not None and name in definition.states)
