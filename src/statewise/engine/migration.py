"""Moving an item onto another version of its workflow: an operator's step like any other.

Versions are immutable, so a fixed or changed workflow is a new version, and items already
in flight move onto it only when an operator says so. The move is one step: the old state's
pending work goes (its commands, so a late result is ignored; its timers; its open task, now
cancelled), the item takes the new version, and it enters the state the mapping names on
that version, whose entry runs as on any entry (its command, timers or task start anew). The
audit row names the operator, the reason and both ends of the move.

Which state each old state maps to is decided here too, in one place, for the dry run and
the real run alike: an explicit mapping first (the command line's, then the new version's
``migrations:``), else the state of the same name when the new version has it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from statewise.definition.model import Definition
from statewise.engine.builder import StepBuilder
from statewise.engine.item import Item
from statewise.engine.moves import drop_pending_work, enter
from statewise.engine.result import Hop, StepResult
from statewise.errors import InvalidEventError

MIGRATED = "migrated"


def migrate(
    old: Definition,
    new: Definition,
    item: Item,
    to_state: str,
    actor: str,
    reason: str,
    now: float,
) -> StepResult:
    """The step that moves ``item`` (on ``old``) into ``to_state`` of ``new``.

    InvalidEventError says why the move does not fit: no reason, another workflow, the
    version the item is already on, or a state ``new`` lacks.
    """
    if not reason.strip():
        raise InvalidEventError("a migration needs a reason, for the audit trail")
    if (old.name, old.version) != (item.workflow, item.version) or new.name != item.workflow:
        raise InvalidEventError(
            f"item {item.key!r} is on {item.workflow}@{item.version}; it cannot move from "
            f"{old.ref} to {new.ref}"
        )
    if new.version == item.version:
        raise InvalidEventError(f"item {item.key!r} is already on {new.ref}")
    if to_state not in new.states:
        raise InvalidEventError(
            f"{new.ref} has no state {to_state!r}; its states are {', '.join(new.states)}"
        )
    # The old state's work is dropped while the builder still reads the old definition: the
    # old state may not exist in the new one. ``enter`` then leaves no more of it, and its row
    # names the state left and the time spent there, like any other move's.
    builder = StepBuilder(old, replace(item, version=new.version), now)
    drop_pending_work(builder)
    builder.forget_work()
    builder.adopt(new)
    note = f"from {old.ref} state {item.state!r} to {new.ref} state {to_state!r}: {reason}"
    hop = Hop(event=MIGRATED, kind="operator", actor=actor, note=note)
    enter(builder, to_state, hop, budget=False, left=True)
    return builder.result()


def target_state(
    old_state: str, new: Definition, mapping: Mapping[str, str] | None = None
) -> str | None:
    """Where an item in ``old_state`` goes on ``new``; None when nothing maps it.

    ``mapping`` (an operator's) comes first, then ``new``'s own ``migrations:``, then the
    state of the same name on ``new``.
    """
    for rules in (mapping or {}, new.migrations):
        if old_state in rules:
            return rules[old_state]
    return old_state if old_state in new.states else None
