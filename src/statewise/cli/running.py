"""Commands that move items: run a workflow's items, send an event, start a long-lived worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import IO, Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from statewise.actions.events import event_outcome
from statewise.cli.common import (
    DEFAULT_DB,
    JSON,
    CommandsOption,
    DbOption,
    WorkflowOption,
    app,
    console,
    data_option,
    errors,
    existing_store,
    fail,
    output_format,
    run_async,
    user_errors,
    with_store,
)
from statewise.cli.inspecting import print_status
from statewise.definition import load
from statewise.definition.model import Definition
from statewise.engine.item import Item, ItemStatus
from statewise.engine.result import StepResult
from statewise.errors import InvalidInputError, RunnerLockError
from statewise.inputs import InputLimits, check_wrapped, decode_json
from statewise.store import Store, open_store
from statewise.worker import Runner, load_registry
from statewise.worker.catalog import Catalog, load_catalog
from statewise.worker.registry import module_name

T = TypeVar("T")


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
        fail("--items needs the workflow FILE the items start in", 2)
    ai = {"cache": cache, "default_concurrency": model_concurrency}
    with user_errors(), _items_of(items) as pending:
        run_async(_run_items(file, db, pending, commands or [], (concurrency, max_wait), ai))


async def _run_items(
    file: Path | None,
    db: str,
    items: Iterable[tuple[str, dict[str, JSON]]] | None,
    commands: list[str],
    limits: tuple[int, float],
    ai: Mapping[str, Any],
) -> None:
    concurrency, max_wait = limits
    store = open_store(db) if file is not None else existing_store(db)
    try:
        catalog, current = await prepare(store, file, commands, ai)
        with _progress() as progress:
            runner = Runner(
                store,
                catalog.definitions,
                catalog.registry,
                concurrency=concurrency,
                on_commit=progress.update,
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
        await print_status(store, None, output_format(None))
    finally:
        await store.close()


async def prepare(
    store: Store, file: Path | None, commands: list[str], ai: Mapping[str, Any] | None = None
) -> tuple[Catalog, Definition | None]:
    """Register ``file`` (if given), then load every stored workflow this process can run.

    The file's command modules are recorded by ``module_name``, so a worker on any host that
    imports the same modules runs each workflow's own commands.

    A stored version that cannot be loaded here (its module is gone, its source no longer
    validates) is skipped with a warning, and its items wait; the others run.
    """
    current = None
    if file is not None:
        registry = load_registry(commands)
        current = load(file, commands=registry.names(), schemas=registry.schemas())
        await store.save_workflow(current, str(file), [module_name(spec) for spec in commands])
    catalog = await load_catalog(store, commands, ai=ai)
    for ref, why in catalog.skipped.items():
        errors.print(Text(f"skipping {ref}, which cannot be loaded here: {why}", style="yellow"))
    return catalog, current


def _items_of(
    path: Path | None,
) -> AbstractContextManager[Iterator[tuple[str, dict[str, JSON]]] | None]:
    return nullcontext() if path is None else read_items(path)


@contextmanager
def read_items(path: Path) -> Iterator[Iterator[tuple[str, dict[str, JSON]]]]:
    """Open a JSON Lines items file now, so a missing one is refused before anything starts.

    The items themselves are read lazily, ``{"key": ..., "data": {...}}`` per line (data
    beside the key is refused, with the right shape in the message), and a bad line
    (malformed, or a key or data the input rules refuse) is reported with its number when it
    is reached.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidInputError(f"cannot read items file {path}: {exc.strerror}") from None
    with handle:
        yield _parse_items(path, handle, InputLimits.from_environment())


def _parse_items(
    path: Path, lines: IO[bytes], limits: InputLimits
) -> Iterator[tuple[str, dict[str, JSON]]]:
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"{path}:{number}: not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                f"{exc.start + 1}); save the file as UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            record = decode_json(line)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(record, dict) or not isinstance(record.get("key"), str):
            raise InvalidInputError(
                f'{path}:{number}: expected an object with a string "key", like '
                f'{{"key": "order-1", "data": {{...}}}}'
            )
        try:
            check_wrapped(record, ("key", "data"), f"item {record['key']!r}")
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}:{number}: {exc}") from None
        data = record.get("data", {})
        if not isinstance(data, dict):
            raise InvalidInputError(f'{path}:{number}: "data" must be an object')
        try:
            limits.check_start(record["key"], data)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}:{number}: {exc}") from None
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


async def act_then_continue(
    runner: Runner, action: Callable[[], Awaitable[T]], subject: str = "the item"
) -> T:
    """Do ``action``, then perform only the work it queued, or leave that to whoever runs.

    The action runs inside the runner, so the commands its steps queue come back leased to
    this process and nothing else of the store (other items' commands or due timers) is
    touched. When another process runs the (SQLite) store, the action is done without a
    runner and that process continues ``subject``: the action succeeded, so this is no error
    a script should retry.
    """
    done: list[T] = []

    async def act() -> None:
        done.append(await action())

    try:
        await runner.run(max_wait=0, on_ready=act, own_work_only=True)
    except RunnerLockError as busy:
        result = await action()
        console.print(f"{busy.holder} runs this store and will continue {subject}")
        return result
    return done[0]


@app.command()
def send(
    key: Annotated[str, typer.Argument(help="The item's business key.")],
    event: Annotated[str, typer.Argument(help="Event name, e.g. approve.")],
    db: DbOption = DEFAULT_DB,
    data: Annotated[str, typer.Option(help="Event data as a JSON object.")] = "{}",
    actor: Annotated[str, typer.Option(help="Who sends it, for the audit trail.")] = "cli",
    workflow: WorkflowOption = None,
    commands: CommandsOption = None,
    wait: Annotated[
        bool, typer.Option(help="Run the item's commands on until it waits or finishes.")
    ] = True,
) -> None:
    """Send an external event (a human decision, a reply) and resume that item only.

    An event declared with ``buffer:`` that the item's state does not accept yet is kept,
    and the answer says until when.

    Its timers, and other items' work, are left to the process that runs the store.
    """
    payload = data_option(data)

    async def accept(runner: Runner) -> Item:
        return await runner.send(workflow, key, event, payload, actor)

    def accepted(item: Item) -> str:
        return f"{key}: {event_outcome(item, event).message}"

    run_async(act_on_item(db, commands, accept, accepted, wait=wait))


async def act_on_item(
    db: str,
    commands: list[str] | None,
    action: Callable[[Runner], Awaitable[Item]],
    describe: Callable[[Item], str],
    *,
    wait: bool,
) -> None:
    """Do one thing to one item and say so; with ``wait``, run that item on until it waits.

    Shared by ``send`` and ``redrive``: only the item's own commands run here (see
    ``act_then_continue``), so a running service or ``run`` is never competed with.
    """

    async def act(store: Store) -> None:
        catalog, _ = await prepare(store, None, commands or [])
        runner = Runner(store, catalog.definitions, catalog.registry)

        async def acted() -> Item:
            item = await action(runner)
            console.print(describe(item))
            return item

        if not wait:
            await acted()
            return
        item = await act_then_continue(runner, acted)
        settled = await store.get_item(item.workflow, item.key)
        if settled.seq != item.seq:
            console.print(f"{item.key}: now in {settled.state} ({settled.status.value})")

    await with_store(db, act)
