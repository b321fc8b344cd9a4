"""Commands for people stepping in: inspect an item, redrive it, bulk operations, human tasks.

They are the command-line door to ``statewise.actions``, which the HTTP API and the dashboard
share; the command line works on the store directly, so it acts with the admin role.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.text import Text

from statewise.actions import Principal, TaskDesk, bulk, inspect_item, item_view_json, redrive
from statewise.actions.bulk import BulkReport
from statewise.actions.inspection import ItemView, task_json
from statewise.cli.common import (
    DEFAULT_DB,
    JSON,
    Cell,
    Col,
    CommandsOption,
    DbOption,
    FormatOption,
    OutputFormat,
    WorkflowOption,
    age,
    app,
    console,
    data_option,
    emit_table,
    fail,
    failure_cell,
    id_argument,
    output_format,
    run_async,
    status_cell,
    with_store,
)
from statewise.cli.inspecting import print_budget_uses
from statewise.cli.running import act_on_item, act_then_continue, prepare
from statewise.definition.durations import parse_duration
from statewise.definition.model import Role
from statewise.engine.events import Operation
from statewise.engine.item import Item, ItemStatus
from statewise.errors import InvalidInputError
from statewise.store import Store
from statewise.store.base import ItemFilter, Task, TaskStatus
from statewise.worker.runner import Runner

T = TypeVar("T")
ReasonOption = Annotated[str, typer.Option(help="Why, for the audit trail (required).")]
ActorOption = Annotated[str, typer.Option("--as", help="Who acts, for the audit trail.")]
tasks_app = typer.Typer(help="Human tasks: list the inbox, claim, release and decide.")
app.add_typer(tasks_app, name="task")


@app.command()
def show(
    key: Annotated[str, typer.Argument(help="The item's business key.")],
    db: DbOption = DEFAULT_DB,
    workflow: WorkflowOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
    format: FormatOption = None,
) -> None:
    """One item: its state, context, pending work, open tasks, conversations and costs."""
    fmt = OutputFormat.JSON if as_json else output_format(format)

    async def look(store: Store) -> None:
        view = await inspect_item(store, workflow, key)
        if fmt is OutputFormat.JSON:
            console.print_json(json.dumps(item_view_json(view), default=str))
        else:
            _print_view(view, fmt)

    run_async(with_store(db, look))


def _print_view(view: ItemView, fmt: OutputFormat) -> None:
    """The item's lines, then a table each of its pending work, tasks and budgets."""
    item, now = view.item, time.time()
    header = Text(f"{item.key}  {item.workflow}@{item.version}  ", style="bold")
    header.append_text(status_cell(item.status))
    console.print(header, soft_wrap=True)
    console.print(
        f"state {item.state} for {age(now - item.entered_at)} (visit {item.visit}), "
        f"{item.seq} steps",
        soft_wrap=True,
    )
    if view.failure is not None:
        console.print(Text("failed because: ", style="red").append(failure_cell(view.failure)))
    console.print("context:")
    console.print_json(json.dumps(dict(item.context), default=str))
    work: list[list[Cell]] = []
    for command in view.pending.commands:
        lease = f"leased by {command.lease_owner}" if command.lease_owner else "queued"
        effect = command.effect
        work.append(["command", f"{effect.command}#{effect.attempt}", effect.state, lease])
    for timer in view.pending.timers:
        work.append(["timer", timer.event.name, timer.event.state, f"in {age(timer.due_at - now)}"])
    for kept in item.buffer:  # events that came early, waiting for a state that takes them
        work.append(
            [
                "buffered event",
                f"{kept.name} from {kept.actor}",
                "",
                f"in {age(kept.expires_at - now)}",
            ]
        )
    if work:
        emit_table(["pending", "what", "state", "due / lease"], work, fmt=fmt, title="pending work")
    else:
        console.print("pending work: none")
    tasks: list[list[Cell]] = []
    for task in view.tasks:
        due = age(task.due_at - now) if task.due_at and task.status is TaskStatus.OPEN else ""
        tasks.append(
            [str(task.id), task.place, task.queue, task.status.value, task.claimed_by or "", due]
        )
    if tasks:
        emit_table(
            ["task", "state", "queue", "status", "claimed by", "due in"],
            tasks,
            fmt=fmt,
            title="tasks",
        )
    for agent, turns in view.conversations.items():
        console.print(Text(f"conversation with {agent}:", style="bold"))
        for turn in turns:
            console.print(Text(f"  {turn['role']}: {turn['text']}"))
    costs = view.costs
    if costs.calls:
        price = "unknown" if costs.cost is None else f"{costs.cost:.4f} USD"
        unpriced = f" (+{costs.unpriced_calls} unpriced calls)" if costs.unpriced_calls else ""
        console.print(
            f"model calls: {costs.calls}, tokens {costs.input_tokens}/{costs.output_tokens}, "
            f"cost {price}{unpriced}"
        )
    if view.budgets:
        print_budget_uses(view.budgets, fmt)
        for use in view.budgets:
            if use.warning:
                console.print(Text(f"{use.state or 'workflow'}: {use.warning}", style="yellow"))


@app.command(name="redrive")
def redrive_command(
    key: Annotated[str, typer.Argument(help="The item's business key.")],
    reason: ReasonOption,
    to: Annotated[
        str | None, typer.Option("--to", help="Move into this state instead of retrying.")
    ] = None,
    to_version: Annotated[
        int | None,
        typer.Option(
            "--to-version",
            min=1,
            help="Move onto this version of the workflow (into --to, or the state of the "
            "same name or its mapping there).",
        ),
    ] = None,
    db: DbOption = DEFAULT_DB,
    workflow: WorkflowOption = None,
    commands: CommandsOption = None,
    actor: ActorOption = "cli",
    wait: Annotated[bool, typer.Option(help="Run the item on until it settles.")] = True,
) -> None:
    """Send a failed or escalated item back: retry its failed command, or --to a state.

    With --to-version it moves onto a (fixed) version of its workflow instead.
    """
    _require_reason(reason)

    async def act(runner: Runner) -> Item:
        return await redrive(
            runner, workflow, key, reason=reason, actor=actor, to=to, to_version=to_version
        )

    def redriven(item: Item) -> str:
        return f"{key}: now in {item.state} ({item.status.value})"

    run_async(act_on_item(db, commands, act, redriven, wait=wait))


@app.command(name="bulk")
def bulk_command(
    operation: Annotated[Operation, typer.Argument(help="retry, move, pause, resume or cancel.")],
    reason: ReasonOption,
    db: DbOption = DEFAULT_DB,
    workflow: WorkflowOption = None,
    state: Annotated[str | None, typer.Option(help="Only items in this state.")] = None,
    status: Annotated[ItemStatus | None, typer.Option(help="Only items with this status.")] = None,
    older_than: Annotated[
        str | None, typer.Option(help="Only items in their state at least this long (e.g. 4h).")
    ] = None,
    key_contains: Annotated[
        str | None, typer.Option(help="Only keys containing this (literally, case-sensitively).")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="The state to move items to.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Apply; without it, only count.")] = False,
    commands: CommandsOption = None,
    actor: ActorOption = "cli",
) -> None:
    """Apply one operation to every matching item; without --yes only say how many match."""
    _require_reason(reason)
    try:
        age_limit = None if older_than is None else parse_duration(older_than)
    except ValueError as exc:
        fail(f"--older-than: {exc}", 2)
    try:
        where = ItemFilter(
            workflow=workflow,
            state=state,
            status=status,
            entered_before=None if age_limit is None else time.time() - age_limit,
            key_contains=key_contains,
        )
    except InvalidInputError as exc:
        fail(f"--key-contains: {exc}", 2)

    async def act(store: Store) -> None:
        catalog, _ = await prepare(store, None, commands or [])
        runner = Runner(store, catalog.definitions, catalog.registry)

        async def apply() -> BulkReport:
            report = await bulk(
                runner, where, operation, reason=reason, actor=actor, target=to, dry_run=not yes
            )
            if report.dry_run:
                console.print(
                    f"{report.matched} item(s) match; "
                    f"run again with --yes to {operation.value} them"
                )
                _print_keys(report.items, report.matched)
                return report
            console.print(
                f"{operation.value}: {report.changed} of {report.matched} item(s) changed"
            )
            _print_keys(report.items, report.changed)
            for skipped_key, why in report.skipped:
                console.print(Text(f"  skipped {skipped_key}: {why}", style="yellow"))
            return report

        if yes:
            await act_then_continue(runner, apply, "the changed items")
        else:
            await apply()

    run_async(with_store(db, act))


def _print_keys(items: list[tuple[str, str]], count: int) -> None:
    """The items a bulk operation matched or changed, as workflow/key, and how many more."""
    for workflow, key in items:
        console.print(Text(f"  {workflow}/{key}"))
    if count > len(items):
        console.print(f"  … and {count - len(items)} more")


@tasks_app.command(name="list")
def task_list(
    db: DbOption = DEFAULT_DB,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    status: Annotated[
        TaskStatus | None, typer.Option(help="open (default), decided, expired, cancelled.")
    ] = TaskStatus.OPEN,
    commands: CommandsOption = None,
    format: FormatOption = None,
) -> None:
    """The inbox: human tasks, oldest first."""
    fmt = output_format(format)

    async def act(desk: TaskDesk, principal: Principal) -> None:
        now = time.time()
        found = await desk.inbox(principal, queue, status, limit=500)
        rows: list[list[Cell]] = []
        for task in found:
            due = age(task.due_at - now) if task.due_at else ""
            claimed = task.claim_until is not None and task.claim_until > now
            rows.append(
                [
                    str(task.id),
                    f"{task.workflow}/{task.key}",
                    task.place,
                    task.queue,
                    task.status.value,
                    desk.unloadable(task) or ", ".join(desk.outcomes(task)),
                    due,
                    task.claimed_by if claimed and task.claimed_by else "",
                ]
            )
        emit_table(
            [
                "task", "item", "state", "queue", "status", Col("outcomes", prose=True),
                "due in", "claim",
            ],
            rows,
            fmt=fmt,
            json_rows=[_task_row(desk, task) for task in found],
        )  # fmt: skip

    run_async(_with_desk(db, commands, "cli", act))


def _task_row(desk: TaskDesk, task: Task) -> dict[str, JSON]:
    """A task as JSON with its outcomes, or why this process cannot show them."""
    unloadable = desk.unloadable(task)
    outcomes = [] if unloadable else list(desk.outcomes(task))
    return {**task_json(task), "outcomes": outcomes, "unloadable": unloadable}


@tasks_app.command(name="claim")
def task_claim(
    task_id: Annotated[int, typer.Argument(help="The task's id.")],
    db: DbOption = DEFAULT_DB,
    actor: ActorOption = "cli",
    commands: CommandsOption = None,
) -> None:
    """Claim a task so that nobody else decides it meanwhile."""
    task_id = id_argument(task_id, "task")

    async def act(desk: TaskDesk, principal: Principal) -> None:
        task = await desk.claim(task_id, principal)
        lasts = age(desk.spec(task).claim)
        console.print(f"task {task.id} claimed by {task.claimed_by} for {lasts}")

    run_async(_with_desk(db, commands, actor, act))


@tasks_app.command(name="release")
def task_release(
    task_id: Annotated[int, typer.Argument(help="The task's id.")],
    db: DbOption = DEFAULT_DB,
    actor: ActorOption = "cli",
    commands: CommandsOption = None,
) -> None:
    """Give a claimed task back to its queue."""
    task_id = id_argument(task_id, "task")

    async def act(desk: TaskDesk, principal: Principal) -> None:
        task = await desk.release(task_id, principal)
        console.print(f"task {task.id} released")

    run_async(_with_desk(db, commands, actor, act))


@tasks_app.command(name="decide")
def task_decide(
    task_id: Annotated[int, typer.Argument(help="The task's id.")],
    outcome: Annotated[str, typer.Argument(help="One of the task's outcomes, e.g. approve.")],
    db: DbOption = DEFAULT_DB,
    comment: Annotated[str, typer.Option(help="A comment for the audit trail.")] = "",
    data: Annotated[str, typer.Option(help="The form data as a JSON object.")] = "{}",
    actor: ActorOption = "cli",
    commands: CommandsOption = None,
) -> None:
    """Decide a human task with an outcome, a comment and form data; the item moves on."""
    task_id = id_argument(task_id, "task")
    payload = data_option(data)

    async def act(desk: TaskDesk, principal: Principal) -> None:
        item = await desk.decide(task_id, principal, outcome, comment, payload)
        console.print(f"task {task_id} decided: {outcome}; {item.key} now in {item.state}")

    run_async(_with_desk(db, commands, actor, act, continues=True))


def _require_reason(reason: str) -> None:
    if not reason.strip():
        fail("--reason must say why, for the audit trail", 2)


async def _with_desk(
    db: str,
    commands: list[str] | None,
    actor: str,
    action: Callable[[TaskDesk, Principal], Awaitable[None]],
    *,
    continues: bool = False,
) -> None:
    """Act at the task desk; ``continues``: then perform the work the action queued."""

    async def act(store: Store) -> None:
        catalog, _ = await prepare(store, None, commands or [])
        runner = Runner(store, catalog.definitions, catalog.registry)
        desk = TaskDesk(runner, catalog.registry, skipped=catalog.skipped)

        async def acted() -> None:
            await action(desk, Principal(actor, Role.ADMIN, source="cli"))

        if continues:
            await act_then_continue(runner, acted)
        else:
            await acted()

    await with_store(db, act)
