r"""Row encodings shared by every dialect: compact JSON for the few non-column fields.

Context rows are keyed by path (``review`` or ``translate\\x1fde``) so that a step writes only
the keys it changed, never the whole document.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from statewise.engine.budget import NOTHING_SPENT, Spend, Spent
from statewise.engine.effects import EFFECT_ADAPTER, Effect, RunCommand
from statewise.engine.events import TimerFired
from statewise.engine.item import (
    BranchRun,
    BranchStatus,
    BufferedEvent,
    HistoryRecord,
    Item,
    ItemStatus,
)
from statewise.errors import StoreError

JSON = Any
PATH_SEPARATOR = "\x1f"
ITEM_COLUMNS = (
    "id, workflow, version, key, state, status, entered_at, created_at, updated_at, seq, "
    "attempt, retrying, visits, branches, spent, buffer, came_from"
)
# The columns a step changes, in the order ``item_values`` gives them.
# ``version`` is among them: a migration moves an item onto another version of its workflow.
STEP_COLUMNS = (
    "version", "state", "status", "entered_at", "updated_at", "seq", "attempt", "retrying",
    "visits", "branches", "spent", "buffer", "came_from",
)  # fmt: skip


# An output stays on its audit row while the row's detail and output together are at most
# this many characters (about 1 KiB with the other columns): SQLite keeps such a row in its
# b-tree page, where a longer one would spill into an overflow page of its own (4 KiB, mostly
# empty). Larger outputs go to ``payloads``.
INLINE_ROW_CHARS = 900

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: JSON) -> str:
    """Compact JSON, the same everywhere so stored sizes stay small and comparable.

    One encoder serves every call: ``json.dumps`` with options builds a new one each time.
    ``NaN`` and infinities raise ValueError (the commit rejects that step): no store keeps
    a document other JSON readers refuse, whichever entry point forgot to check.
    """
    return _ENCODER.encode(value)


def output_columns(text: str, detail: str) -> tuple[str | None, str | None]:
    """Where an audit row keeps an output's JSON text: ``(inline, None)`` or ``(None, hash)``.

    A small output sits in ``history.output``, as long as the row (its ``detail`` too) stays
    within ``INLINE_ROW_CHARS``; a larger one is named by the sha256 of its text in
    ``history.output_hash`` and stored once per item in ``payloads``, so a loop or a retry that
    produces the same large result again adds a hash, not a copy.
    """
    if len(text) + len(detail) <= INLINE_ROW_CHARS:
        return text, None
    return None, hashlib.sha256(text.encode()).hexdigest()


def encode_path(path: tuple[str, ...]) -> str:
    """Join a context path into its row key."""
    return PATH_SEPARATOR.join(path)


def decode_context(rows: list[tuple[str, str]]) -> dict[str, JSON]:
    """Fold context rows back into one document; parents sort before their children."""
    context: dict[str, JSON] = {}
    for path, value in sorted(rows):
        *parents, leaf = path.split(PATH_SEPARATOR)
        target = context
        for name in parents:
            child = target.get(name)
            if not isinstance(child, dict):
                child = {}
                target[name] = child
            target = child
        target[leaf] = json.loads(value)
    return context


def encode_branches(branches: tuple[BranchRun, ...]) -> str | None:
    """Store a parallel state's branches as compact rows, or NULL outside parallel states."""
    if not branches:
        return None
    return dumps([[b.name, b.status.value, b.attempt, b.input] for b in branches])


def decode_branches(text: str | None) -> tuple[BranchRun, ...]:
    """Inverse of ``encode_branches``."""
    if not text:
        return ()
    return tuple(
        BranchRun(name=n, status=BranchStatus(s), attempt=a, input=i)
        for n, s, a, i in json.loads(text)
    )


def encode_spent(spent: Spent) -> str | None:
    """What an item spent, by state, as ``{state: [tokens, cost, [unpriced models]]}``.

    NULL for an item that never spent anything, so items without model calls store nothing;
    the unpriced list is left out when empty.
    """
    if not spent:
        return None
    return dumps(
        {
            state: [s.tokens, s.cost, list(s.unpriced)] if s.unpriced else [s.tokens, s.cost]
            for state, s in spent.states.items()
        }
    )


def decode_spent(text: str | None) -> Spent:
    """Inverse of ``encode_spent``."""
    if not text:
        return NOTHING_SPENT
    return Spent(
        {
            state: Spend(entry[0], entry[1], tuple(entry[2]) if len(entry) > 2 else ())
            for state, entry in json.loads(text).items()
        }
    )


def encode_buffer(buffer: tuple[BufferedEvent, ...]) -> str | None:
    """The events an item keeps, as ``[[name, data, actor, seq, received_at, expires_at]]``.

    NULL for an item that keeps none, which is nearly every item.
    """
    if not buffer:
        return None
    return dumps([[b.name, b.data, b.actor, b.seq, b.received_at, b.expires_at] for b in buffer])


def decode_buffer(text: str | None) -> tuple[BufferedEvent, ...]:
    """Inverse of ``encode_buffer``."""
    if not text:
        return ()
    return tuple(BufferedEvent(*entry) for entry in json.loads(text))


def encode_detail(record: HistoryRecord) -> str:
    """The audit row's fields beyond its columns, leaving out the empty ones.

    Written out field by field (in ``HistoryRecord`` order): one of these runs per audit row,
    and a loop of ``getattr`` over the fields cost several times as much.
    """
    data: dict[str, JSON] = {"event_kind": record.event_kind}
    if record.actor != "system":
        data["actor"] = record.actor
    if record.transition is not None:
        data["transition"] = record.transition
    if record.condition is not None:
        data["condition"] = record.condition
    if record.values:
        data["values"] = record.values
    if record.command is not None:
        data["command"] = record.command
    if record.branch is not None:
        data["branch"] = record.branch
    if record.attempt is not None:
        data["attempt"] = record.attempt
    if record.duration is not None:
        data["duration"] = record.duration
    if record.error:
        data["error"] = record.error
    if record.note is not None:
        data["note"] = record.note
    if record.usage:
        data["usage"] = record.usage
    if record.dwell is not None:
        data["dwell"] = record.dwell
    if record.visit is not None:
        data["visit"] = record.visit
    if record.decision is not None or record.rejected or record.budget is not None:
        _add_judgements(record, data)
    return dumps(data)


def _add_judgements(record: HistoryRecord, data: dict[str, JSON]) -> None:
    """A person's decision, the guards found false, a budget's verdict: rarer than the rest."""
    if record.decision is not None:
        data["decision"] = record.decision
    if record.rejected:
        data["rejected"] = record.rejected
    if record.budget is not None:
        data["budget"] = record.budget


def decode_history(
    seq: int,
    at: float,
    from_state: str | None,
    to_state: str,
    event: str,
    detail: str,
    output: str | None = None,
) -> HistoryRecord:
    """Rebuild an audit row from its columns, its detail JSON and its output's JSON text.

    ``output`` is the text stored inline or in ``payloads``; NULL means the row consumed
    nothing.
    """
    extra = json.loads(detail)
    extra.setdefault("actor", "system")
    if output is not None:
        extra["output"] = json.loads(output)
    return HistoryRecord(
        seq=seq, at=at, from_state=from_state, to_state=to_state, event=event, **extra
    )


def encode_effect(effect: Effect) -> str:
    """Outbox and timer payloads go through the one effect adapter."""
    return EFFECT_ADAPTER.dump_json(effect).decode()


def decode_command(text: str) -> RunCommand:
    """Read a RunCommand back from the outbox."""
    effect = EFFECT_ADAPTER.validate_json(text)
    if not isinstance(effect, RunCommand):
        raise StoreError(f"outbox row holds a {effect.kind}, not a command")
    return effect


def encode_timer(event: TimerFired) -> str:
    """A timer row's payload: the event it fires."""
    return dumps(
        {"name": event.name, "state": event.state, "visit": event.visit, "branch": event.branch}
    )


def decode_timer(text: str) -> TimerFired:
    """Inverse of ``encode_timer``."""
    return TimerFired(**json.loads(text))


def item_values(item: Item) -> tuple[Any, ...]:
    """The columns a step changes (``STEP_COLUMNS``), encoded."""
    return (
        item.version,
        item.state,
        item.status.value,
        item.entered_at,
        item.updated_at,
        item.seq,
        item.attempt,
        item.retrying,
        dumps(item.visits),
        encode_branches(item.branches),
        encode_spent(item.spent),
        encode_buffer(item.buffer),
        item.came_from,
    )


def decode_item(row: tuple[Any, ...], context: dict[str, JSON]) -> Item:
    """An item from its ``ITEM_COLUMNS`` row and its decoded context."""
    (_, workflow, version, key, state, status, entered, created, updated, seq, attempt,
     retrying, visits, branches, spent, buffer, came_from) = row  # fmt: skip
    return Item(
        key=key,
        workflow=workflow,
        version=version,
        state=state,
        status=ItemStatus(status),
        entered_at=entered,
        created_at=created,
        updated_at=updated,
        seq=seq,
        attempt=attempt,
        retrying=bool(retrying),
        visits=json.loads(visits),
        branches=decode_branches(branches),
        context=context,
        spent=decode_spent(spent),
        buffer=decode_buffer(buffer),
        came_from=came_from,
    )
