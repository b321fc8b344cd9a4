"""Migrating in-flight items onto another version of their workflow, one fenced commit each.

A plan comes first, and the dry run is that plan: every item in flight (active, waiting, or
failed by a defect) of the workflow's other versions, with the state it would enter, and the
ones left alone with the reason (a state nothing maps, a paused item, a version this process
cannot load). Applying it moves each item in its own commit, judged again on the item as it
is then: another writer may have moved it meanwhile, so its target is looked up afresh and a
STALE commit is retried on a fresh copy. Each move is ``engine.migration.migrate``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from statewise.definition.model import Definition
from statewise.engine.item import Item, ItemStatus
from statewise.engine.migration import migrate, target_state
from statewise.engine.result import StepResult
from statewise.errors import InvalidEventError, InvalidInputError, StaleLeaseError
from statewise.inputs import check_text
from statewise.store.base import CommitStatus, ItemFilter, StepCommit
from statewise.worker.writer import ItemWriter

# The statuses a migration moves: in flight, or stopped by a defect the new version fixes.
IN_FLIGHT = (ItemStatus.ACTIVE, ItemStatus.WAITING, ItemStatus.FAILED)
_ATTEMPTS = 5
_PAGE = 500


@dataclass(frozen=True, slots=True)
class Move:
    """One item's planned move: from its version and state to a state of the new version."""

    key: str
    from_version: int
    from_state: str
    to_state: str
    status: ItemStatus


@dataclass(frozen=True, slots=True)
class LeftAlone:
    """An item the migration does not move, and why."""

    key: str
    version: int
    state: str
    why: str


@dataclass
class MigrationPlan:
    """What a migration of ``workflow`` onto ``to`` would do; applied, what it did."""

    workflow: str
    to: int
    moves: list[Move] = field(default_factory=list)
    left: list[LeftAlone] = field(default_factory=list)
    moved: list[Move] = field(default_factory=list)


def check_mapping(
    new: Definition, mapping: Mapping[str, str], held: Iterable[Definition] = ()
) -> None:
    """An operator's mapping goes from a state of a held version to a state ``new`` has.

    ``--map hodl=check`` is a typo to refuse with the states there are, not a mapping that
    quietly matches nothing while the items in ``hold`` are left alone.
    """
    known = {state for d in held if d.name == new.name for state in d.states}
    for old, target in mapping.items():
        if known and old not in known:
            raise InvalidInputError(
                f"--map {old}={target}: no version of {new.name} has a state {old!r} "
                f"(their states: {', '.join(sorted(known))})"
            )
        if target not in new.states:
            raise InvalidInputError(
                f"--map {old}={target}: {new.ref} has no state {target!r} "
                f"(its states: {', '.join(new.states)})"
            )


async def plan_migration(
    writer: ItemWriter, new: Definition, mapping: Mapping[str, str] | None = None
) -> MigrationPlan:
    """Where each in-flight item of ``new``'s workflow on another version would go."""
    check_mapping(new, mapping or {}, writer.definitions.values())
    plan = MigrationPlan(new.name, new.version)
    for status in (*IN_FLIGHT, ItemStatus.PAUSED):
        after: tuple[float, int] | None = None
        while True:
            where = ItemFilter(workflow=new.name, status=status)
            page = await writer.store.find_items(where, limit=_PAGE, after=after)
            for item, _ in page:
                if item.version != new.version:
                    _place(writer, plan, new, item, mapping)
            if len(page) < _PAGE:
                break
            after = page[-1][1]
    return plan


def _place(
    writer: ItemWriter,
    plan: MigrationPlan,
    new: Definition,
    item: Item,
    mapping: Mapping[str, str] | None,
) -> None:
    """Add ``item`` to the plan's moves, or to the items left alone with the reason."""
    why = _why_not(writer, new, item, mapping)
    if why is not None:
        plan.left.append(LeftAlone(item.key, item.version, item.state, why))
        return
    target = target_state(item.state, new, mapping)
    assert target is not None  # _why_not said it maps
    old = writer.definition(item.workflow, item.version)
    failure = _fails_on_entry(migrate(old, new, item, target, "plan", "plan", writer.clock()))
    if failure is not None:
        plan.left.append(LeftAlone(item.key, item.version, item.state, failure))
        return
    plan.moves.append(Move(item.key, item.version, item.state, target, item.status))


def _fails_on_entry(result: StepResult) -> str | None:
    """Why the move itself fails the item (a defect of the state it enters), or None.

    Entering a state whose conditions cannot be evaluated fails the item within the move: such
    a move is not committed, so the item keeps its state, work and open task on its version.
    """
    if result.item.status is not ItemStatus.FAILED:
        return None
    error = next((r.error for r in reversed(result.history) if r.error), None) or {}
    return (
        f"it would fail on entering {result.item.state} of {result.item.workflow}@"
        f"{result.item.version}: {error.get('kind', 'failed')}: {error.get('message', '')}; "
        f"fix that version (a new one), or send it to another state (migrate --map, redrive --to)"
    )


def _why_not(
    writer: ItemWriter, new: Definition, item: Item, mapping: Mapping[str, str] | None
) -> str | None:
    """Why ``item`` cannot move onto ``new`` now, or None when it can."""
    if item.status is ItemStatus.PAUSED:
        return "paused: resume it first, or redrive it with --to-version"
    if item.status not in IN_FLIGHT:
        return f"{item.status.value}: not in flight"
    if (item.workflow, item.version) not in writer.definitions:
        return f"{item.workflow}@{item.version} cannot be loaded here to cancel its work"
    if target_state(item.state, new, mapping) is None:
        return (
            f"{new.ref} has no state {item.state!r} and no mapping names it; "
            f"add --map {item.state}=STATE or `migrations:` to the new version"
        )
    return None


async def apply_migration(
    writer: ItemWriter,
    new: Definition,
    *,
    actor: str,
    reason: str,
    mapping: Mapping[str, str] | None = None,
) -> MigrationPlan:
    """Plan, then move each planned item in its own fenced commit; returns what moved.

    An item that changed meanwhile so that it no longer moves (it finished, or entered a
    state nothing maps) joins the items left alone, with the reason as it is now.
    """
    if not reason.strip():
        raise InvalidInputError("a migration needs a reason, for the audit trail")
    plan = await plan_migration(writer, new, mapping)
    for move in plan.moves:
        try:
            before, after = await migrate_item(
                writer, new.name, move.key, new, actor=actor, reason=reason, mapping=mapping
            )
        except InvalidEventError as exc:
            plan.left.append(LeftAlone(move.key, move.from_version, move.from_state, str(exc)))
            continue
        plan.moved.append(Move(move.key, before.version, before.state, after.state, before.status))
    return plan


async def migrate_item(
    writer: ItemWriter,
    workflow: str | None,
    key: str,
    new: Definition,
    *,
    actor: str,
    reason: str,
    mapping: Mapping[str, str] | None = None,
    to: str | None = None,
    any_status: bool = False,
) -> tuple[Item, Item]:
    """Move one item onto ``new``, into ``to`` or where the mapping sends its state.

    Returns the item as it was just before the move, and after. The item is read afresh on
    every try, so the move is judged on the item as it is; a commit another writer made
    STALE is tried again. ``any_status`` lets an operator's redrive move a paused, cancelled
    or finished item too. InvalidEventError says why the item cannot move.
    """
    check_text(reason, f"the reason of the migration of {key!r}")
    for _ in range(_ATTEMPTS):
        item = await writer.store.get_item(workflow, key)
        why = None if any_status else _why_not(writer, new, item, mapping)
        if item.version == new.version:
            why = f"it is already on {new.ref}"
        if why is not None:
            raise InvalidEventError(f"item {key!r} was not migrated: {why}")
        target = to or target_state(item.state, new, mapping)
        if target is None:
            raise InvalidEventError(
                f"item {key!r} was not migrated: {new.ref} has no state {item.state!r}; "
                f"name the state to enter with --to"
            )
        old = writer.definition(item.workflow, item.version)
        result = migrate(old, new, item, target, actor, reason, writer.clock())
        failure = _fails_on_entry(result)
        if failure is not None:
            raise InvalidEventError(f"item {key!r} was not migrated: {failure}")
        (outcome,) = await writer.commit([StepCommit(result, item.seq)])
        if outcome.status is CommitStatus.COMMITTED:
            return item, result.item
        if outcome.status is not CommitStatus.STALE:
            raise InvalidEventError(
                f"item {key!r} was not migrated: {outcome.status.value} {outcome.error or ''}"
            )
    raise StaleLeaseError(f"item {key!r} kept changing while it was migrated; retry")
