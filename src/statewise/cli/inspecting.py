"""Commands that read a store: items by state, one item's audit trail, what models cost."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer
from rich.table import Column, Table
from rich.text import Text

from statewise.actions.budgets import budget_report
from statewise.actions.deployment import split_ref, stored_version
from statewise.actions.inspection import (
    SUMMARY_CHARS,
    output_reason,
    output_summary,
    rejected_text,
    values_text,
)
from statewise.cli.common import (
    DEFAULT_DB,
    JSON,
    DbOption,
    WorkflowOption,
    age,
    app,
    console,
    fail,
    failure_cell,
    run_async,
    status_cell,
    with_store,
)
from statewise.engine.budget import NEAR, BudgetUse
from statewise.engine.item import HistoryRecord, ItemStatus
from statewise.inputs import MAX_ROW_ID
from statewise.store import Store
from statewise.store.base import ItemFilter


@app.command()
def status(db: DbOption = DEFAULT_DB, workflow: WorkflowOption = None) -> None:
    """Items per state, with how long the oldest has been there."""
    run_async(with_store(db, lambda store: print_status(store, workflow)))


async def print_status(store: Store, workflow: str | None) -> None:
    """The table of items by state, status and age of the oldest; then how many failed."""
    table = Table("workflow", "state", "status", "items", "oldest for", title="items by state")
    now = time.time()
    counts = await store.state_counts(workflow)
    for row in counts:
        table.add_row(
            f"{row.workflow}@{row.version}",
            row.state,
            status_cell(row.status),
            str(row.count),
            age(now - row.oldest_entered_at),
        )
    console.print(table)
    failed = sum(row.count for row in counts if row.status is ItemStatus.FAILED)
    if failed:
        console.print(
            Text(
                f"{failed} failed: `statewise items --status failed` lists them with why; "
                f"redrive each once its workflow or command is fixed",
                style="red",
            )
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
) -> None:
    """List items, longest in their state first."""
    try:
        name, version = (None, None) if workflow is None else split_ref(workflow)
    except ValueError as exc:
        fail(f"--workflow: {exc}", 2)

    async def show(store: Store) -> None:
        if name is not None and version is not None:
            await stored_version(store, name, version)  # an unknown one names the stored ones
        where = ItemFilter(workflow=name, version=version, state=state, status=status)
        found = [item for item, _ in await store.find_items(where, limit=limit)]
        failed = [(i.workflow, i.key) for i in found if i.status is ItemStatus.FAILED]
        why = await store.failures(failed)
        columns = ["workflow", "state", "status", "in state for", "steps"]
        table = Table()
        table.add_column("key", overflow="fold")  # whole keys, wrapped, even in a pipe
        for column in [*columns, *(["failed because"] if why else [])]:
            table.add_column(column, overflow="fold")
        now = time.time()
        for item in found:
            error = why.get((item.workflow, item.key))
            table.add_row(
                item.key,
                f"{item.workflow}@{item.version}",
                item.state,
                status_cell(item.status),
                age(now - item.entered_at),
                str(item.seq),
                *([failure_cell(error)] if why else []),
            )
        console.print(table)

    run_async(with_store(db, show))


@app.command()
def history(
    key: Annotated[str, typer.Argument(help="The item's business key.")],
    db: DbOption = DEFAULT_DB,
    workflow: WorkflowOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table or jsonl")] = "table",
) -> None:
    """The audit trail of one item: every step, why it was taken, and what it cost."""
    if format not in ("table", "jsonl"):
        fail("--format must be table or jsonl", 2)

    async def show(store: Store) -> None:
        records = await store.history(workflow, key)
        if format == "jsonl":
            from statewise.engine.item import HISTORY_ADAPTER

            for record in records:
                sys.stdout.write(HISTORY_ADAPTER.dump_json(record).decode() + "\n")
            return
        # The output is summarised in one short line (a column no wider than the summary).
        output = Column("output", overflow="ellipsis", max_width=SUMMARY_CHARS)
        table = Table(
            "#", "from", "to", "event", "why", output, "command", "took", "model", "error"
        )  # fmt: skip
        for r in records:
            table.add_row(
                str(r.seq),
                r.from_state or "",
                r.to_state,
                f"{r.event} ({r.actor})" if r.actor != "system" else r.event,
                Text(_why(r)),
                Text(output_summary(r.output)),
                f"{r.command}#{r.attempt}" + (f" [{r.branch}]" if r.branch else "")
                if r.command
                else "",
                f"{r.duration * 1000:.0f}ms" if r.duration is not None else "",
                _usage(r.usage),
                failure_cell(r.error),
            )
        console.print(table)

    run_async(with_store(db, show))


def _usage(usage: dict[str, JSON] | None) -> str:
    """One audit row's model call in a line: model, tokens in/out, cost."""
    if not usage:
        return ""
    cost = usage.get("cost")
    price = "?" if cost is None else f"${cost:.4f}"
    tokens = f"{usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)} tok"
    return f"{usage.get('model', '')} {tokens} {price}"


def _why(record: HistoryRecord) -> str:
    """Why a row happened, in one cell.

    The guard that decided and what it read, the guards found false before it (all an
    ``else`` has to say), the reason the output gives, and the row's note.
    """
    reason = output_reason(record.output)
    parts = (
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
) -> None:
    """Model calls, tokens and cost from the audit trail, by workflow, state, agent and model."""

    async def show(store: Store) -> None:
        if budgets:
            await _print_budgets(store, workflow, near)
            return
        table = Table(
            "workflow", "state", "agent", "model", "calls", "input tokens", "output tokens",
            "cost (USD)", title="model usage",
        )  # fmt: skip
        total, unpriced = 0.0, 0
        for row in await store.costs(workflow):
            # A cost of None means no call of the row had a price: all of them are unpriced.
            row_unpriced = row.calls if row.cost is None else row.unpriced_calls
            total += row.cost or 0.0
            unpriced += row_unpriced
            table.add_row(
                row.workflow,
                row.state,
                row.agent,
                row.model,
                str(row.calls),
                f"{row.input_tokens:,}",
                f"{row.output_tokens:,}",
                _cost_cell(row.cost, row_unpriced),
            )
        console.print(table)
        unknown = f"; {unpriced} call(s) had an unknown price, not counted" if unpriced else ""
        console.print(f"total known cost: {total:.4f} USD{unknown}")

    run_async(with_store(db, show))


async def _print_budgets(store: Store, workflow: str | None, near: float) -> None:
    """Items that used ``near`` or more of a budget, most used first, with the shares."""
    found = await budget_report(store, workflow, near)
    table = Table(
        "workflow", "key", "state", "budget", "tokens", "cost (USD)", "used",
        title=f"items at {near:.0%} or more of a budget",
    )  # fmt: skip
    warnings = []
    for entry in found:
        item, use = entry.item, entry.use
        table.add_row(f"{item.workflow}@{item.version}", item.key, item.state, *_budget_cells(use))
        if use.warning:
            warnings.append(f"{item.key}: {use.warning}")
    console.print(table)
    for warning in dict.fromkeys(warnings):
        console.print(Text(warning, style="yellow"))
    over = sum(entry.use.reached for entry in found)
    console.print(f"{over} budget(s) spent, {len(found) - over} near")


def budget_table(uses: list[BudgetUse]) -> Table:
    """One item's spend against each of its budgets (and in each state that spent)."""
    table = Table("budget", "tokens", "cost (USD)", "used", title="budgets")
    for use in uses:
        table.add_row(*_budget_cells(use))
    return table


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
