"""Commands that read a store: items by state, one item's audit trail, what models cost."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from enum import StrEnum
from typing import Annotated

import typer
from rich.text import Text

from statewise.actions.budgets import budget_report
from statewise.actions.deployment import split_ref, stored_version
from statewise.actions.inspection import (
    budget_json,
    history_json,
    output_reason,
    output_summary,
    rejected_text,
    tool_calls_text,
    values_text,
)
from statewise.actions.states import check_filter
from statewise.cli.common import (
    DEFAULT_DB,
    JSON,
    Cell,
    Col,
    DbOption,
    FormatOption,
    OutputFormat,
    WorkflowOption,
    age,
    app,
    emit_table,
    fail,
    failure_cell,
    note,
    output_format,
    run_async,
    status_cell,
    when,
    with_store,
)
from statewise.engine.budget import NEAR, BudgetUse
from statewise.engine.item import HISTORY_ADAPTER, HistoryRecord, Item, ItemStatus
from statewise.inputs import MAX_ROW_ID
from statewise.store import Store
from statewise.store.base import ItemFilter


@app.command()
def status(
    db: DbOption = DEFAULT_DB, workflow: WorkflowOption = None, format: FormatOption = None
) -> None:
    """Items per state, with how long the oldest has been there."""
    run_async(with_store(db, lambda store: print_status(store, workflow, output_format(format))))


async def print_status(store: Store, workflow: str | None, fmt: OutputFormat) -> None:
    """The table of items by state, status and age of the oldest; then how many failed."""
    now = time.time()
    counts = await store.state_counts(workflow)
    emit_table(
        ["workflow", "state", "status", "items", "oldest for"],
        [
            [
                f"{row.workflow}@{row.version}",
                row.state,
                status_cell(row.status),
                str(row.count),
                age(now - row.oldest_entered_at),
            ]
            for row in counts
        ],
        fmt=fmt,
        json_rows=[
            {
                "workflow": row.workflow,
                "version": row.version,
                "state": row.state,
                "status": row.status.value,
                "items": row.count,
                "oldest_seconds": now - row.oldest_entered_at,
            }
            for row in counts
        ],
    )
    failed = sum(row.count for row in counts if row.status is ItemStatus.FAILED)
    if failed:
        note(
            Text(
                f"{failed} failed: `statewise items --status failed` lists them with why; "
                f"redrive each once its workflow or command is fixed",
                style="red",
            ),
            fmt,
        )


@app.command()
def items(
    db: DbOption = DEFAULT_DB,
    state: Annotated[str | None, typer.Option(help="Only items in this state.")] = None,
    status: Annotated[
        ItemStatus | None, typer.Option(help="active, waiting, done, failed, paused or cancelled.")
    ] = None,
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", "-w", help="Only this workflow: NAME or NAME@VERSION."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_ROW_ID, help="At most this many.")] = 50,
    format: FormatOption = None,
) -> None:
    """List items, longest in their state first; says how many match when --limit cuts them."""
    try:
        name, version = (None, None) if workflow is None else split_ref(workflow)
    except ValueError as exc:
        fail(f"--workflow: {exc}", 2)
    fmt = output_format(format)

    async def show(store: Store) -> None:
        if name is not None and version is not None:
            await stored_version(store, name, version)  # an unknown one names the stored ones
        where = ItemFilter(workflow=name, version=version, state=state, status=status)
        found = [item for item, _ in await store.find_items(where, limit=limit)]
        if not found:  # a typo in -w or --state is named, not answered with an empty list
            await check_filter(store, name, version, state)
        failed = [(i.workflow, i.key) for i in found if i.status is ItemStatus.FAILED]
        why = await store.failures(failed)
        _print_items(found, why, fmt)
        if len(found) == limit:
            total = await store.count_items(where)
            if total > limit:
                note(f"{limit} of {total} items (use --limit to list more)", fmt)

    run_async(with_store(db, show))


def _print_items(
    found: list[Item], why: dict[tuple[str, str], dict[str, str]], fmt: OutputFormat
) -> None:
    """One row per item; the failure column only when one of them failed."""
    columns: list[str | Col] = ["key", "workflow", "state", "status", "in state for", "steps"]
    if why:
        columns.append(Col("failed because", prose=True))
    now = time.time()
    rows: list[list[Cell]] = []
    for item in found:
        error = why.get((item.workflow, item.key))
        rows.append(
            [
                item.key,
                f"{item.workflow}@{item.version}",
                item.state,
                status_cell(item.status),
                age(now - item.entered_at),
                str(item.seq),
                *([failure_cell(error)] if why else []),
            ]
        )
    emit_table(
        columns,
        rows,
        fmt=fmt,
        json_rows=[
            {
                "key": item.key,
                "workflow": item.workflow,
                "version": item.version,
                "state": item.state,
                "status": item.status.value,
                "entered_at": item.entered_at,
                "steps": item.seq,
                "failure": why.get((item.workflow, item.key)),
            }
            for item in found
        ],
    )


class HistoryFormat(StrEnum):
    """How ``statewise history`` prints: the formats of every listing, and JSON lines."""

    TABLE = "table"
    TSV = "tsv"
    JSON = "json"
    JSONL = "jsonl"


@app.command()
def history(
    key: Annotated[str, typer.Argument(help="The item's business key.")],
    db: DbOption = DEFAULT_DB,
    workflow: WorkflowOption = None,
    format: Annotated[
        HistoryFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="table, tsv, json or jsonl (every field of each row); default: a table on a "
            "terminal, tsv when piped.",
        ),
    ] = None,
) -> None:
    """The audit trail of one item: every step, when, why it was taken, and what it cost."""

    async def show(store: Store) -> None:
        records = await store.history(workflow, key)
        if format is HistoryFormat.JSONL:
            for record in records:
                sys.stdout.write(HISTORY_ADAPTER.dump_json(record).decode() + "\n")
            return
        fmt = output_format(None if format is None else OutputFormat(format.value))
        emit_table(
            [
                "#", "at", "from", "to", "event", Col("why", prose=True),
                Col("output", prose=True), "command", "took", Col("model", prose=True),
                Col("error", prose=True),
            ],
            [_history_row(r, whole=fmt is not OutputFormat.TABLE) for r in records],
            fmt=fmt,
            json_rows=[history_json(r) for r in records],
        )  # fmt: skip

    run_async(with_store(db, show))


def _history_row(r: HistoryRecord, *, whole: bool) -> list[Cell]:
    """One audit row's cells; ``whole``: the output in full, else summarised in a short line.

    A person's decision shows its comment with the why and its form data as the output, in
    full: they are what the audit trail is read for.
    """
    if r.decision is not None:
        data = r.decision.get("data")
        output = "" if not data else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    elif whole:
        output = "" if r.output is None else json.dumps(r.output, ensure_ascii=False)
    else:
        output = output_summary(r.output)
    return [
        str(r.seq),
        when(r.at),
        r.from_state or "",
        r.to_state,
        f"{r.event} ({r.actor})" if r.actor != "system" else r.event,
        Text(_why(r)),
        Text(output),
        f"{r.command}#{r.attempt}" + (f" [{r.branch}]" if r.branch else "") if r.command else "",
        f"{r.duration * 1000:.0f}ms" if r.duration is not None else "",
        _usage(r.usage),
        failure_cell(r.error),
    ]


def _usage(usage: dict[str, JSON] | None) -> str:
    """One audit row's model call: model, tokens in/out, cost, and the tools it called."""
    if not usage:
        return ""
    cost = usage.get("cost")
    price = "?" if cost is None else f"${cost:.4f}"
    tokens = f"{usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)} tok"
    called = tool_calls_text(usage)
    line = f"{usage.get('model', '')} {tokens} {price}"
    return line if called is None else f"{line} · tools: {called}"


def _why(record: HistoryRecord) -> str:
    """Why a row happened, in one cell.

    A person's comment on their decision, the guard that decided and what it read, the guards
    found false before it (all an ``else`` has to say), the reason the output gives, and the
    row's note.
    """
    reason = output_reason(record.output)
    comment = (record.decision or {}).get("comment")
    parts = (
        f"comment: {comment}" if comment else None,
        record.condition,
        values_text(record.values) if record.values else None,
        f"[{rejected_text(record.rejected)}]" if record.rejected else None,
        f"because: {reason}" if reason else None,
        f"({record.note})" if record.note else None,
    )
    return "\n".join(part for part in parts if part)


@app.command()
def costs(
    db: DbOption = DEFAULT_DB,
    workflow: WorkflowOption = None,
    budgets: Annotated[
        bool, typer.Option("--budgets", help="List the items near or over their budgets instead.")
    ] = False,
    near: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="With --budgets: the share of a budget used that counts as near."
        ),
    ] = NEAR,
    format: FormatOption = None,
) -> None:
    """Model use, tokens and cost from the audit trail, by workflow, state, agent and model.

    "attempts" counts agent runs (cache hits included); "requests" counts the HTTP requests
    they sent, output corrections and tool rounds included.
    """
    fmt = output_format(format)

    async def show(store: Store) -> None:
        if budgets:
            await _print_budgets(store, workflow, near, fmt)
            return
        found = await store.costs(workflow)
        total, unpriced = 0.0, 0
        rows: list[list[Cell]] = []
        for row in found:
            # A cost of None means no call of the row had a price: all of them are unpriced.
            row_unpriced = row.calls if row.cost is None else row.unpriced_calls
            total += row.cost or 0.0
            unpriced += row_unpriced
            rows.append(
                [
                    row.workflow, row.state, row.agent, row.model, str(row.calls),
                    str(row.requests), f"{row.input_tokens:,}", f"{row.output_tokens:,}",
                    _cost_cell(row.cost, row_unpriced),
                ]
            )  # fmt: skip
        emit_table(
            [
                "workflow", "state", "agent", "model", "attempts", "requests", "input tokens",
                "output tokens", "cost (USD)",
            ],
            rows,
            fmt=fmt,
            json_rows=[asdict(row) for row in found],
        )  # fmt: skip
        unknown = f"; {unpriced} call(s) had an unknown price, not counted" if unpriced else ""
        note(f"total known cost: {total:.4f} USD{unknown}", fmt)

    run_async(with_store(db, show))


async def _print_budgets(
    store: Store, workflow: str | None, near: float, fmt: OutputFormat
) -> None:
    """Items that used ``near`` or more of a budget, most used first, with the shares."""
    found = await budget_report(store, workflow, near)
    warnings = []
    rows: list[list[Cell]] = []
    for entry in found:
        item, use = entry.item, entry.use
        rows.append([f"{item.workflow}@{item.version}", item.key, item.state, *_budget_cells(use)])
        if use.warning:
            warnings.append(f"{item.key}: {use.warning}")
    emit_table(
        ["workflow", "key", "state", "budget", "tokens", "cost (USD)", "used"],
        rows,
        fmt=fmt,
        json_rows=[
            {"workflow": e.item.workflow, "version": e.item.version, "key": e.item.key,
             "state": e.item.state, **budget_json(e.use)}
            for e in found
        ],
    )  # fmt: skip
    for warning in dict.fromkeys(warnings):
        note(Text(warning, style="yellow"), fmt)
    over = sum(entry.use.reached for entry in found)
    note(f"{over} budget(s) spent, {len(found) - over} near ({near:.0%} or more used)", fmt)


def print_budget_uses(uses: list[BudgetUse], fmt: OutputFormat) -> None:
    """One item's spend against each of its budgets (and in each state that spent)."""
    emit_table(
        ["budget", "tokens", "cost (USD)", "used"],
        [_budget_cells(use) for use in uses],
        fmt=fmt,
        title="budgets",
    )


def _budget_cells(use: BudgetUse) -> tuple[str, str, str, Text]:
    """Budget name, tokens and cost as spent / limit, and the share used (red once spent)."""
    tokens = f"{use.tokens:,}" + (f" / {use.token_limit:,}" if use.token_limit else "")
    cost = f"{use.cost:.4f}" + (f" / {use.cost_limit:.4f}" if use.cost_limit else "")
    if use.unpriced:
        cost += f" + {len(use.unpriced)} unpriced model(s)"
    limited = use.token_limit is not None or use.cost_limit is not None
    share = f"{use.share:.0%}" + (" spent" if use.reached else "") if limited else ""
    name = "workflow" if use.state is None else f"stage {use.state}"
    return name, tokens, cost, Text(share, style="red" if use.reached else "")


def _cost_cell(cost: float | None, unpriced: int) -> str:
    """A known cost, "unknown" when no call had a price, or both when some calls lack one."""
    if cost is None:
        return "unknown"
    return f"{cost:.4f} + {unpriced} unpriced" if unpriced else f"{cost:.4f}"
