"""``statewise prune``: drop finished items' outputs or history by policy or by age."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from statewise.actions.retention import (
    BYTES_ARE,
    Archive,
    PruneReport,
    age_rules,
    parse_age,
    policy_rules,
    prune,
)
from statewise.cli.common import (
    DEFAULT_DB,
    DbOption,
    WorkflowOption,
    app,
    console,
    emit_table,
    fail,
    run_async,
    with_store,
)
from statewise.definition.durations import format_duration
from statewise.errors import InvalidInputError
from statewise.store import Store
from statewise.store.retention import Prunable
from statewise.worker.housekeeping import PRUNE_EVERY

PruneOption = Annotated[
    bool,
    typer.Option(
        "--prune/--no-prune",
        help="Apply the workflows' retention policies at start and every --prune-every "
        "(default), or leave pruning to `statewise prune`.",
    ),
]
PruneEveryOption = Annotated[
    str, typer.Option(help="How often to apply the retention policies (e.g. 1h, 30m).")
]
DEFAULT_PRUNE_EVERY = format_duration(PRUNE_EVERY)


def prune_interval(prune: bool, every: str) -> float | None:
    """Seconds between rounds of the retention policies; None with --no-prune."""
    if not prune:
        return None
    try:
        return parse_age(every, "--prune-every")
    except InvalidInputError as exc:
        fail(str(exc), 2)


@app.command(name="prune")
def prune_command(
    db: DbOption = DEFAULT_DB,
    finished_before: Annotated[
        str | None,
        typer.Option(
            help="Prune items that finished at least this long ago (e.g. 90d), in every "
            "workflow or --workflow; without it, each workflow's `retention:` policy applies.",
        ),
    ] = None,
    workflow: WorkflowOption = None,
    what: Annotated[
        Prunable | None,
        typer.Option(
            help="outputs (outputs, payloads, conversations; the audit rows stay) or history "
            "(the audit rows too). With --finished-before the default is outputs; without, "
            "both parts of the policies.",
        ),
    ] = None,
    archive: Annotated[
        Path | None,
        typer.Option(help="Append each pruned item, with what it loses, to this JSON-lines file."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would be pruned; change nothing.")
    ] = False,
    actor: Annotated[str, typer.Option("--as", help="Who prunes, for the audit trail.")] = "cli",
) -> None:
    """Drop the outputs, conversations or history of items that finished long enough ago.

    Failed items wait for an operator and are never pruned; a pruned item keeps its key,
    final state and context, and a history prune leaves one audit row saying so.
    """
    try:
        age = None if finished_before is None else parse_age(finished_before, "--finished-before")
    except InvalidInputError as exc:
        fail(str(exc), 2)

    async def go(store: Store) -> tuple[PruneReport, int]:
        now = time.time()
        if age is None:
            rules = await policy_rules(store, now, workflow=workflow, what=what)
        else:
            chosen = what or Prunable.OUTPUTS
            rules = await age_rules(store, age, now, workflow=workflow, what=chosen)
        sink = None if dry_run or archive is None else Archive(archive)
        try:
            report = await prune(store, rules, now=now, actor=actor, dry_run=dry_run, archive=sink)
        finally:
            if sink is not None:
                sink.close()
        return report, 0 if sink is None else sink.written

    report, archived = run_async(with_store(db, go))
    _print(report, workflow)
    if archive is not None and not dry_run:
        console.print(f"archived {archived} item(s) to {archive}")


def _print(report: PruneReport, workflow: str | None) -> None:
    for name, why in report.skipped.items():
        console.print(Text(f"skipped {name}: its policy cannot be read: {why}", style="yellow"))
    if not report.lines:
        which = f"workflow {workflow!r} has no" if workflow else "no workflow here has a"
        console.print(
            f"{which} `retention:` policy, so nothing was pruned; give --finished-before 90d "
            "to prune by age"
        )
        return
    title = "what a prune would drop (dry run: nothing changed)" if report.dry_run else "pruned"
    emit_table(
        [
            "workflow", "drops", "finished before", "items", "audit rows", "outputs",
            "conversations", "bytes",
        ],
        [
            [
                line.rule.workflow,
                line.rule.what.value,
                time.strftime("%Y-%m-%d", time.gmtime(line.rule.finished_before)),
                str(line.figures.items),
                str(line.figures.history_rows),
                str(line.figures.outputs),
                str(line.figures.conversations),
                f"{line.figures.bytes:,}",
            ]
            for line in report.lines
        ],
        title=title,
    )  # fmt: skip
    total = report.total
    verb = "would free" if report.dry_run else "freed"
    console.print(f"{total.items} item(s); {verb} {_size(total.bytes)}: {BYTES_ARE}")
    if report.space:
        console.print(report.space)


def _size(count: int) -> str:
    """Bytes as a person reads them, with the exact figure."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit} ({count:,} bytes)"
    return f"{count:,} bytes"
