"""One item as a person inspects it: state, context, work, tasks, talk, cost, budgets, trail.

``item_view_json`` is the one JSON shape of an item shared by ``statewise show --json`` and
``GET /api/items/{workflow}/{key}``, so a script written against one works on the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from statewise.definition import loads
from statewise.definition.model import Definition
from statewise.engine.budget import BudgetUse, budget_use
from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.errors import DefinitionError
from statewise.store.base import PendingWork, Store, Task

JSON = Any
# Fields of an output that explain it; the first one present is shown beside the decision.
REASON_FIELDS = ("reason", "rationale", "reasoning", "explanation")
SUMMARY_CHARS = 40
TOOL_ARGS_CHARS = 60
"""How much of one tool call's arguments the audit shows in a line (the row keeps them all)."""


@dataclass(frozen=True, slots=True)
class ItemCosts:
    """What one item's model calls cost, from the usage in its audit trail.

    ``cost`` sums the calls with a known price (None when none had one); ``unpriced_calls``
    counts the others, so an unknown price is never shown as 0.
    """

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    unpriced_calls: int = 0


@dataclass(frozen=True, slots=True)
class ItemView:
    """Everything the store knows about one item, read for one look at it."""

    item: Item
    pending: PendingWork
    tasks: list[Task]
    conversations: dict[str, list[dict[str, str]]]
    history: list[HistoryRecord]
    costs: ItemCosts
    budgets: list[BudgetUse]

    @property
    def failure(self) -> dict[str, str] | None:
        """Why the item failed (its failure row's error: a defect, a quarantine), or None."""
        if self.item.status is not ItemStatus.FAILED:
            return None
        return next((row.error for row in reversed(self.history) if row.error), None)


async def inspect_item(
    store: Store,
    workflow: str | None,
    key: str,
    definitions: Mapping[tuple[str, int], Definition] | None = None,
) -> ItemView:
    """Read one item and all that hangs on it; NotFoundError names what is missing.

    ``definitions`` are the ones a process holds, by (name, version), for the item's budgets;
    one not among them is read from the store.
    """
    item = await store.get_item(workflow, key)
    history = await store.history(item.workflow, item.key)
    definition = (definitions or {}).get((item.workflow, item.version))
    if definition is None:
        definition = await stored_definition(store, item.workflow, item.version)
    return ItemView(
        item=item,
        pending=await store.pending_work(item.workflow, item.key),
        tasks=await store.tasks(status=None, workflow=item.workflow, key=item.key, limit=1000),
        conversations=readable_conversations(await store.conversations(item.workflow, item.key)),
        history=history,
        costs=item_costs(history),
        budgets=budget_use(definition, item.spent),
    )


async def stored_definition(store: Store, workflow: str, version: int) -> Definition | None:
    """The stored definition of ``workflow@version``, read without its commands.

    None if it is not stored or no longer loads: its budgets are then unknown, and the item's
    spend is still shown.
    """
    for stored in await store.workflows():
        if (stored.name, stored.version) == (workflow, version):
            try:
                return loads(stored.source, file=stored.file)
            except DefinitionError:
                return None
    return None


def readable_conversations(stored: Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
    """Agents' conversations as ``{role, text}`` turns; raw text when the AI layer is absent."""
    if not stored:
        return {}
    try:
        from statewise.ai.conversations import transcripts
    except ImportError:  # conversations exist only where the AI extra ran them; be safe anyway
        return {agent: [{"role": "raw", "text": raw}] for agent, raw in stored.items()}
    return {agent: list(turns) for agent, turns in transcripts(stored).items()}


def item_costs(history: Sequence[HistoryRecord]) -> ItemCosts:
    """Sum the model usage recorded on an item's audit rows."""
    calls = input_tokens = output_tokens = unpriced = 0
    cost: float | None = None
    for record in history:
        usage = record.usage
        if not usage:
            continue
        calls += int(usage.get("requests") or 1)
        input_tokens += int(usage.get("input_tokens") or 0)
        output_tokens += int(usage.get("output_tokens") or 0)
        priced = usage.get("cost")
        if priced is None:
            unpriced += 1
        else:
            cost = (cost or 0.0) + float(priced)
    return ItemCosts(calls, input_tokens, output_tokens, cost, unpriced)


def item_view_json(view: ItemView) -> dict[str, JSON]:
    """The item, its pending work, tasks, conversations, costs and trail as plain JSON."""
    item = view.item
    return {
        "workflow": item.workflow,
        "version": item.version,
        "key": item.key,
        "state": item.state,
        "status": item.status.value,
        "failure": view.failure,
        "entered_at": item.entered_at,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
        "seq": item.seq,
        "attempt": item.attempt,
        "retrying": item.retrying,
        "visits": dict(item.visits),
        "branches": [asdict(branch) for branch in item.branches],
        "context": dict(item.context),
        "pending": {
            "commands": [
                {
                    "id": command.outbox_id,
                    "command": command.effect.command,
                    "state": command.effect.state,
                    "visit": command.effect.visit,
                    "attempt": command.effect.attempt,
                    "branch": command.effect.branch,
                    "available_at": command.available_at,
                    "leased_by": command.lease_owner,
                    "lease_until": command.lease_until,
                }
                for command in view.pending.commands
            ],
            "timers": [
                {
                    "id": timer.timer_id,
                    "name": timer.event.name,
                    "state": timer.event.state,
                    "visit": timer.event.visit,
                    "branch": timer.event.branch,
                    "due_at": timer.due_at,
                }
                for timer in view.pending.timers
            ],
            "buffered": [asdict(kept) for kept in item.buffer],
        },
        "tasks": [task_json(task) for task in view.tasks],
        "conversations": view.conversations,
        "costs": asdict(view.costs),
        "budgets": [budget_json(use) for use in view.budgets],
        "history": [history_json(record) for record in view.history],
    }


def budget_json(use: BudgetUse) -> dict[str, JSON]:
    """What an item spent against one budget (``state`` None: the workflow's), as JSON."""
    return {
        **asdict(use),
        "unpriced": list(use.unpriced),
        "share": use.share,
        "reached": use.reached,
        "warning": use.warning,
    }


def task_json(task: Task) -> dict[str, JSON]:
    """A task as plain JSON, its status as text."""
    fields = asdict(task)
    fields["status"] = task.status.value
    return fields


def history_json(record: HistoryRecord) -> dict[str, JSON]:
    """An audit row as plain JSON, without the empty fields (an empty output is still one)."""
    return {
        name: value
        for name, value in asdict(record).items()
        if value is not None and (value != {} or name == "output")
    }


def output_reason(output: JSON) -> str | None:
    """What an output says about why (its ``reason``, ``rationale``, ...), if it says so.

    Shown beside the decision on one line: control characters and runs of white space become
    single spaces (the full text stays in the output).
    """
    if not isinstance(output, Mapping):
        return None
    for name in REASON_FIELDS:
        value = output.get(name)
        if isinstance(value, str):
            line = " ".join("".join(c if c.isprintable() else " " for c in value).split())
            if line:
                return line
    return None


def output_summary(output: JSON, width: int = SUMMARY_CHARS) -> str:
    """An output as one line of compact JSON, cut to ``width`` characters with an ellipsis."""
    if output is None:
        return ""
    text = json.dumps(output, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def tool_calls_text(usage: Mapping[str, JSON] | None) -> str | None:
    """The tools an agent called in its run, as ``name(args)``, each cut to a readable length.

    The usage row keeps every call's arguments and result in full; the audit trail's line
    says which lookups the answer rests on, so a reader sees them without opening the row.
    """
    calls = (usage or {}).get("tool_calls") or []
    texts = []
    for call in calls:
        if not isinstance(call, Mapping):
            continue
        args = call.get("args")
        if isinstance(args, Mapping):
            shown = ", ".join(
                f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in args.items()
            )
        else:
            shown = "" if args is None else str(args)
        shown = " ".join("".join(c if c.isprintable() else " " for c in shown).split())
        if len(shown) > TOOL_ARGS_CHARS:
            shown = shown[: TOOL_ARGS_CHARS - 1] + "…"
        texts.append(f"{call.get('name', '?')}({shown})")
    return "; ".join(texts) if texts else None


def rejected_text(rejected: Sequence[Mapping[str, JSON]] | None) -> str | None:
    """The guards found false before the transition taken, with what they read, in a line."""
    if not rejected:
        return None
    parts = []
    for entry in rejected:
        values = entry.get("values")
        parts.append(f"not {entry['condition']}" + (f" ({values_text(values)})" if values else ""))
    return "; ".join(parts)


def values_text(values: Mapping[str, JSON]) -> str:
    """What a condition read, as ``path=value`` pairs."""
    return ", ".join(
        f"{path}={json.dumps(value, ensure_ascii=False)}" for path, value in values.items()
    )
