"""One operator action on every item a filter matches, counted first, applied item by item.

A bulk operation is a dry run unless asked otherwise: it says how many items match. Applied,
it walks the matching items a page at a time and steps each one under the store's fence, so
a bulk operation is just many ordinary writers' steps. An item that cannot take the action
(already done, no failed command to retry, a redrive that would meet the same defect again)
is skipped with the reason; it never stops the others. Items the operation itself moves
re-enter their state after it began and so drop out of the filter: nothing is operated on
twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from statewise.actions.redrive import redrive_event
from statewise.engine.events import Operate, Operation
from statewise.engine.item import Item
from statewise.errors import InvalidInputError, StatewiseError
from statewise.inputs import check_text
from statewise.store.base import CommitStatus, ItemFilter, StepCommit
from statewise.worker.writer import ItemWriter

PAGE = 200
_REDRIVES = (Operation.RETRY, Operation.MOVE)


@dataclass(frozen=True, slots=True)
class BulkReport:
    """What a bulk operation matched, changed and skipped (with each skipped key's reason)."""

    operation: Operation
    matched: int
    changed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = True


async def bulk(
    writer: ItemWriter,
    where: ItemFilter,
    operation: Operation,
    *,
    reason: str,
    actor: str,
    target: str | None = None,
    dry_run: bool = True,
) -> BulkReport:
    """Count the items ``where`` matches, and unless ``dry_run`` apply ``operation`` to each."""
    if operation is Operation.MOVE and not target:
        raise InvalidInputError("a bulk move needs the state to move the items to")
    if not reason.strip():
        raise InvalidInputError("a bulk operation needs a reason, for the audit trail")
    check_text(reason, "the reason of a bulk operation")
    matched = await writer.store.count_items(where)
    if dry_run:
        return BulkReport(operation, matched)
    started = writer.clock()
    bound = started if where.entered_before is None else min(where.entered_before, started)
    pinned = replace(where, entered_before=bound)
    changed, skipped = 0, []
    cursor: tuple[float, int] | None = None
    while True:
        page = await writer.store.find_items(pinned, limit=PAGE, after=cursor)
        if not page:
            break
        cursor = page[-1][1]
        done, refused = await _apply_page(
            writer, [item for item, _ in page], operation, reason, actor, target
        )
        changed += done
        skipped += refused
    return BulkReport(operation, matched, changed, skipped, dry_run=False)


async def _apply_page(
    writer: ItemWriter,
    listed: list[Item],
    operation: Operation,
    reason: str,
    actor: str,
    target: str | None,
) -> tuple[int, list[tuple[str, str]]]:
    """Step one page of items in one commit; items that changed meanwhile go one by one."""
    fresh = await writer.store.get_items([(item.workflow, item.key) for item in listed])
    commits: list[StepCommit] = []
    events: list[Operate] = []
    skipped: list[tuple[str, str]] = []
    for item in fresh.values():
        try:
            event = await _event(writer, item, operation, reason, actor, target)
            definition = writer.definition(item.workflow, item.version)
            commits.append(StepCommit(writer.step_safely(definition, item, event), item.seq))
            events.append(event)
        except StatewiseError as exc:
            skipped.append((item.key, str(exc)))
    outcomes = await writer.commit(commits) if commits else []
    changed = 0
    for commit, event, outcome in zip(commits, events, outcomes, strict=True):
        item = commit.result.item
        if outcome.status is CommitStatus.COMMITTED:
            changed += 1
            continue
        if outcome.status is CommitStatus.STALE:  # another writer moved it: judge it afresh
            try:
                await writer.apply(item.workflow, item.key, event, f"bulk {operation.value}")
                changed += 1
            except StatewiseError as exc:
                skipped.append((item.key, str(exc)))
            continue
        skipped.append((item.key, outcome.error or outcome.status.value))
    return changed, skipped


async def _event(
    writer: ItemWriter,
    item: Item,
    operation: Operation,
    reason: str,
    actor: str,
    target: str | None,
) -> Operate:
    if operation in _REDRIVES:  # refused for an item it would fail again with a defect
        to = target if operation is Operation.MOVE else None
        return await redrive_event(writer, item, reason=reason, actor=actor, to=to)
    return Operate(operation, reason, actor, target)
