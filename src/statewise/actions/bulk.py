"""One operator action on every item a filter matches, counted first, applied item by item.

A bulk operation is a dry run unless asked otherwise: it says how many items match. Applied,
it walks the matching items a page at a time and steps each one under the store's fence, so
a bulk operation is just many ordinary writers' steps. An item that cannot take the action
(already done, no failed command to retry, a redrive that would meet the same defect again)
is skipped with the reason; it never stops the others. Items the operation itself moves
re-enter their state after it began and so drop out of the filter: nothing is operated on
twice.

A state the filter names must be one of the workflow's (of any held workflow's without one):
a typo would otherwise match nothing, or the same name in another workflow. The report lists
the first ``KEYS_SHOWN`` items it matched (dry run) or changed, so a person sees which.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from statewise.actions.redrive import redrive_event
from statewise.definition.model import Definition
from statewise.engine.events import Operate, Operation
from statewise.engine.item import Item
from statewise.errors import InvalidInputError, StatewiseError
from statewise.inputs import check_text
from statewise.store.base import CommitStatus, ItemFilter, StepCommit
from statewise.worker.writer import ItemWriter

PAGE = 200
KEYS_SHOWN = 100
_REDRIVES = (Operation.RETRY, Operation.MOVE)


@dataclass(frozen=True, slots=True)
class BulkReport:
    """What a bulk operation matched, changed and skipped (with each skipped key's reason).

    ``items`` are (workflow, key) of the first ``KEYS_SHOWN`` items matched (dry run) or
    changed (applied), in the order the operation met them.
    """

    operation: Operation
    matched: int
    changed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = True
    items: list[tuple[str, str]] = field(default_factory=list)


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
    matched = await writer.store.count_items(where)  # a store refuses a NUL in it first
    check_state(where, writer.definitions.values())
    if dry_run:
        found = await writer.store.find_items(where, limit=KEYS_SHOWN)
        return BulkReport(operation, matched, items=[(i.workflow, i.key) for i, _ in found])
    started = writer.clock()
    bound = started if where.entered_before is None else min(where.entered_before, started)
    pinned = replace(where, entered_before=bound)
    changed, skipped = 0, []
    shown: list[tuple[str, str]] = []
    cursor: tuple[float, int] | None = None
    while True:
        page = await writer.store.find_items(pinned, limit=PAGE, after=cursor)
        if not page:
            break
        cursor = page[-1][1]
        done, refused = await _apply_page(
            writer, [item for item, _ in page], operation, reason, actor, target
        )
        changed += len(done)
        skipped += refused
        shown += done[: KEYS_SHOWN - len(shown)]
    return BulkReport(operation, matched, changed, skipped, dry_run=False, items=shown)


def check_state(where: ItemFilter, held: Iterable[Definition]) -> None:
    """Refuse a filter's state that no held version of its workflow has, naming theirs.

    A workflow this process holds no version of is left to the items' own refusals.
    """
    if where.state is None:
        return
    states: dict[str, set[str]] = {}
    for d in held:
        if where.workflow in (None, d.name) and where.version in (None, d.version):
            states.setdefault(d.name, set()).update(d.states)
    if not states or any(where.state in names for names in states.values()):
        return
    close = difflib.get_close_matches(where.state, set().union(*states.values()), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    listed = "; ".join(f"{name}: {', '.join(sorted(states[name]))}" for name in sorted(states))
    scope = f"workflow {where.workflow!r}" if where.workflow else "any workflow held here"
    raise InvalidInputError(
        f"state {where.state!r} is not a state of {scope}{hint} Its states: {listed}. "
        "Nothing was counted or changed."
    )


async def _apply_page(
    writer: ItemWriter,
    listed: list[Item],
    operation: Operation,
    reason: str,
    actor: str,
    target: str | None,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Step one page of items in one commit; items that changed meanwhile go one by one.

    The (workflow, key) of each item changed, and each skipped key with its reason.
    """
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
    changed: list[tuple[str, str]] = []
    for commit, event, outcome in zip(commits, events, outcomes, strict=True):
        item = commit.result.item
        if outcome.status is CommitStatus.COMMITTED:
            changed.append((item.workflow, item.key))
            continue
        if outcome.status is CommitStatus.STALE:  # another writer moved it: judge it afresh
            try:
                await writer.apply(item.workflow, item.key, event, f"bulk {operation.value}")
                changed.append((item.workflow, item.key))
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
