"""``statewise demo``: every example process, run end to end on the embedded defaults.

An example is a directory holding ``workflow.yaml``, its tools in ``tools.py`` (a module with
a ``registry``, optional when every stage is an agent) and its sample items in
``items.jsonl``. The demo registers each workflow on one SQLite store, runs its items until
they finish or wait for a person, and then prints, per workflow, where the items ended, the
human tasks waiting, what each stage's model calls used and what each external system was
sent: a destination whose URL variable is unset is served by a local receiver, so the demo
runs offline and shows the signed webhooks its states sent. Unless told not to, it then
serves the dashboard on the same store, with a one-time admin token to sign in with, so the
waiting tasks can be decided there.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from statewise.cli.common import (
    app,
    console,
    emit_table,
    errors,
    fail,
    output_format,
    run_async,
    sqlite_file,
    user_errors,
    with_store,
)
from statewise.cli.running import prepare, read_items
from statewise.definition import load
from statewise.definition.model import Role
from statewise.engine.item import ItemStatus
from statewise.engine.result import StepResult
from statewise.errors import InvalidInputError, NotFoundError, StatewiseError
from statewise.observe.receiver import Receiver, webhook_receiver
from statewise.store import Store, open_store
from statewise.worker import Runner

WORKFLOW_FILE = "workflow.yaml"
TOOLS_FILE = "tools.py"
ITEMS_FILE = "items.jsonl"
EVENTS_FILE = "events.jsonl"
DEFAULT_EXAMPLES = Path("examples")
DEMO_DB = "demo.sqlite"


@dataclass(frozen=True, slots=True)
class Example:
    """One example process directory."""

    directory: Path

    @property
    def name(self) -> str:
        """The directory's name, which is also the workflow's by convention."""
        return self.directory.name

    @property
    def workflow(self) -> Path:
        """The workflow definition."""
        return self.directory / WORKFLOW_FILE

    @property
    def tools(self) -> list[str]:
        """The tools module, when the process has one."""
        path = self.directory / TOOLS_FILE
        return [str(path)] if path.is_file() else []

    @property
    def items(self) -> Path:
        """The sample items, one ``{"key": ..., "data": {...}}`` per line."""
        return self.directory / ITEMS_FILE

    def events(self) -> list[dict[str, Any]]:
        """What people outside send once the items wait: ``{key, event, data, actor}`` lines.

        A customer's reply to an automated answer, a supplier's correction: the demo sends
        them after the first run, as ``statewise send`` would, and runs the items on.
        """
        path = self.directory / EVENTS_FILE
        if not path.is_file():
            return []
        events = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not (isinstance(event, dict) and {"key", "event"} <= event.keys()):
                raise InvalidInputError(
                    f'{path}:{number}: expected {{"key": ..., "event": ..., "data": {{...}}}}'
                )
            events.append(event)
        return events


def discover(root: Path, only: Sequence[str] = ()) -> list[Example]:
    """The example directories under ``root`` (those with a workflow and items), by name."""
    if not root.is_dir():
        raise NotFoundError(f"no examples directory {root}; run from the repository root")
    found = [
        Example(path)
        for path in sorted(root.iterdir())
        if (path / WORKFLOW_FILE).is_file() and (path / ITEMS_FILE).is_file()
    ]
    if only:
        known = {example.name: example for example in found}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise NotFoundError(
                f"no example named {', '.join(unknown)} in {root}; "
                f"there are: {', '.join(known) or 'none'}"
            )
        found = [known[name] for name in only]
    if not found:
        raise NotFoundError(f"{root} holds no example (a directory with {WORKFLOW_FILE})")
    return found


class _Settled:
    """Counts one workflow's items as they finish or start waiting: one progress bar."""

    def __init__(self, progress: Progress | None, workflow: str, total: int) -> None:
        self.progress = progress
        self.workflow = workflow
        self.active: set[str] = set()
        self.seen: set[str] = set()
        self.task = progress.add_task(workflow, total=total) if progress else None

    def update(self, results: Sequence[StepResult]) -> None:
        for result in results:
            item = result.item
            if item.workflow != self.workflow:
                continue
            self.seen.add(item.key)
            if item.status is ItemStatus.ACTIVE:
                self.active.add(item.key)
            else:
                self.active.discard(item.key)
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=len(self.seen) - len(self.active))


async def run_example(
    store: Store,
    example: Example,
    progress: Progress | None = None,
    max_wait: float = 5.0,
    ai: Mapping[str, Any] | None = None,
) -> str:
    """Register the example's workflow, start its items and run until none can move on.

    Returns the workflow's name. Items already in the store are not started again. ``ai``
    holds ``AISettings`` fields (a test's HTTP client, say).
    """
    catalog, definition = await prepare(store, example.workflow, example.tools, ai)
    assert definition is not None
    with read_items(example.items) as pending:
        items = list(pending)
    settled = _Settled(progress, definition.name, len(items))
    runner = Runner(store, catalog.definitions, catalog.registry, on_commit=settled.update)

    async def start() -> None:
        await runner.start(definition, items, actor="demo")

    await runner.run(max_wait=max_wait, on_ready=start)
    sent = 0
    for event in example.events():
        try:
            await runner.send(
                definition.name,
                event["key"],
                event["event"],
                event.get("data", {}),
                event.get("actor", "demo"),
            )
            sent += 1
        except StatewiseError as exc:  # the item went another way (another model, say)
            errors.print(f"[yellow]{example.name}: not sent: {escape(str(exc))}[/yellow]")
    if sent:
        await runner.run(max_wait=max_wait)
    return definition.name


async def summarise(store: Store, workflows: Sequence[str]) -> None:
    """Per workflow: items by final or waiting state, open tasks by queue, usage by stage.

    Items a defect failed are counted apart, in red: they wait for a fix, not for a person.
    Usage is a table on a terminal and TSV in a pipe or file, names whole either way.
    """
    fmt = output_format(None)
    counts = await store.state_counts()
    costs = await store.costs()
    tasks = await store.tasks(limit=10_000)
    for workflow in workflows:
        ended: Counter[str] = Counter()
        for row in counts:
            if row.workflow == workflow:
                ended[f"{row.state} ({row.status.value})"] += row.count
        queues = Counter(task.queue for task in tasks if task.workflow == workflow)
        usage = [
            [
                cost.state,
                cost.agent,
                cost.model,
                str(cost.requests),
                str(cost.input_tokens),
                str(cost.output_tokens),
                f"{cost.latency:.2f}s",
            ]
            for cost in costs
            if cost.workflow == workflow
        ]
        console.rule(workflow)
        console.print(
            "ended: " + ", ".join(f"{n} {state}" for state, n in sorted(ended.items())),
            highlight=False,
            soft_wrap=True,
        )
        waiting = ", ".join(f"{n} in {queue}" for queue, n in sorted(queues.items()))
        console.print(f"human tasks waiting: {waiting or 'none'}", highlight=False, soft_wrap=True)
        failed = sum(
            r.count for r in counts if r.workflow == workflow and r.status is ItemStatus.FAILED
        )
        if failed:
            console.print(
                f"[red]{failed} failed by a defect: statewise items --status failed[/red]",
                highlight=False,
            )
        if usage:
            emit_table(
                ["stage", "agent", "model", "requests", "tokens in", "tokens out", "model time"],
                usage,
                fmt=fmt,
            )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("settled"),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
    )


@app.command()
def demo(
    examples: Annotated[
        Path, typer.Option(help="The directory of example processes.")
    ] = DEFAULT_EXAMPLES,
    db: Annotated[str, typer.Option(help="SQLite file to run in; deleted first.")] = DEMO_DB,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this example. Repeatable.")
    ] = None,
    serve: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help="Serve the dashboard afterwards (default)."),
    ] = True,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Dashboard port.")] = 8000,
) -> None:
    """Run every example process on SQLite and the offline model, then serve the dashboard."""
    file = sqlite_file(db)
    if file is None:
        fail("the demo runs on a SQLite file; give --db a path", 2)
    with user_errors():
        found = discover(examples, only or [])
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{file}{suffix}").unlink(missing_ok=True)
    urls, secrets = _unset_destinations(found)
    with webhook_receiver(urls, env=secrets) as receiver:
        run_async(_run_all(str(file), found))
        _report_webhooks(receiver)
        if serve:
            _serve(str(file), found, port)


DEMO_SECRET = "statewise-demo-secret"
"""The HMAC secret of a destination the demo points at its own receiver."""


def _unset_destinations(found: Sequence[Example]) -> tuple[list[str], dict[str, str]]:
    """The examples' destination URL variables that are unset, and their unset secrets.

    The demo serves those itself, so it runs offline; a destination whose URL is set is left
    alone (and then needs its real secret). A workflow that does not load is skipped here:
    running it reports why.
    """
    urls: dict[str, None] = {}
    secrets: dict[str, str] = {}
    for example in found:
        try:
            definition = load(example.workflow)
        except (StatewiseError, OSError):
            continue
        for destination in definition.destinations.values():
            if destination.url_env is None or os.environ.get(destination.url_env):
                continue
            urls[destination.url_env] = None
            if destination.secret_env is not None and not os.environ.get(destination.secret_env):
                secrets[destination.secret_env] = DEMO_SECRET
    return list(urls), secrets


def _report_webhooks(receiver: Receiver) -> None:
    """What each system the demo stood in for received: how many webhooks, from which items."""
    if not receiver.systems:
        return
    console.rule("webhooks received (a local receiver stood in for each system)")
    for system, variable in receiver.systems.items():
        got = receiver.received_by(system)
        items = sorted(f"{r.json.get('workflow')}/{r.json.get('key')}" for r in got)
        shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
        refused = sum(1 for r in receiver.requests if r.system == system) - len(got)
        retried = f" ({refused} refused first, then retried)" if refused else ""
        console.print(
            f"{variable}: {len(got)} webhook(s){retried}{': ' + shown if shown else ''}",
            highlight=False,
            soft_wrap=True,
        )


async def _run_all(db: str, found: Sequence[Example]) -> None:
    store = open_store(db)
    began = time.perf_counter()
    try:
        workflows = []
        with _progress() as progress:
            for example in found:
                workflows.append(await run_example(store, example, progress))
        console.print(f"ran {len(found)} workflows in {time.perf_counter() - began:.1f}s")
        _report_model_load()
        await summarise(store, workflows)
    finally:
        await store.close()


def _report_model_load() -> None:
    """The offline model's load time, once: it is not part of any call's latency."""
    try:
        from statewise.ai import embeddings
    except ImportError:
        return
    seconds = embeddings.load_seconds()
    if seconds is not None:
        console.print(
            f"loading the offline model ({embeddings.MODEL_NAME}) took {seconds:.1f}s, "
            "once; the model times below are the calls alone",
            soft_wrap=True,
        )


def _serve(db: str, found: Sequence[Example], port: int) -> None:
    """The dashboard on the demo's store, with a fresh admin token printed to sign in with."""
    from statewise.cli.serving import serve_store
    from statewise.service.auth import hash_secret, new_secret

    secret = new_secret()

    async def create_token(store: Store) -> None:
        await store.create_token("demo-admin", Role.ADMIN, hash_secret(secret), time.time(), [])

    run_async(with_store(db, create_token))
    console.print(
        f"\nDashboard: http://127.0.0.1:{port}/dashboard  sign in with this admin token "
        f"(shown once):\n  {secret}\n"
        "Open Inbox to claim and decide the waiting human tasks; the items move on at once.\n"
        f"Or from a shell: statewise task list --db {db}; "
        f"statewise task decide ID OUTCOME --db {db}\nPress Ctrl+C to stop.",
        highlight=False,
    )
    sys.stdout.flush()  # the token must reach a pipe before serving blocks
    tools = [tool for example in found for tool in example.tools]
    serve_store(db, "127.0.0.1", port, tools)
