"""``statewise simulate``: what a changed workflow would have done to the items already run."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.text import Text

from statewise.actions.quality import window_seconds
from statewise.actions.simulation import DEFAULT_LIMIT, Selection, report_json, simulate
from statewise.cli.common import (
    DEFAULT_DB,
    Cell,
    Col,
    DbOption,
    FormatOption,
    OutputFormat,
    app,
    console,
    emit_table,
    errors,
    fail,
    output_format,
    run_async,
    with_store,
)
from statewise.definition import load
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidInputError
from statewise.store import Store

JSON = Any
# Past this many changed items or needs, the table says how many more `--format json` lists.
_SHOWN = 50


@app.command("simulate")
def simulate_command(
    file: Annotated[Path, typer.Argument(help="The changed workflow YAML.", metavar="NEW.yaml")],
    db: DbOption = DEFAULT_DB,
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", "-w", help="Replay this workflow's items (default: NEW's)."),
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Only items that ran on this version.", min=1)
    ] = None,
    state: Annotated[str | None, typer.Option(help="Only items now in this state.")] = None,
    status: Annotated[
        ItemStatus | None, typer.Option(help="Only items with this status now.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only items created in this window: 7d, 12h, 3600.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Replay at most this many items.", min=1)] = (
        DEFAULT_LIMIT
    ),
    format: FormatOption = None,
) -> None:
    """Replay past items' recorded results through NEW.yaml: no command runs, no model is called.

    Reports where items end or wait before and after, human tasks per queue, the cost
    difference, every item whose path changes (with its first differing step), the items whose
    new path needs a result never recorded, and per reviewed agent how many reviews the change
    saves. Nothing is written to the store.
    """
    try:
        if since is not None:
            window_seconds(since)
        selection = Selection(workflow, version, state, status, since, limit)
    except InvalidInputError as exc:
        fail(f"--{exc}", 2)
    run_async(_simulate(file, db, selection, output_format(format)))


async def _simulate(file: Path, db: str, selection: Selection, fmt: OutputFormat) -> None:
    definition = load(file)

    async def replay(store: Store) -> dict[str, JSON]:
        report, advice = await simulate(store, definition, selection, time.time())
        return report_json(report, advice)

    found = await with_store(db, replay)
    if fmt is OutputFormat.JSON:
        sys.stdout.write(json.dumps(found, indent=2, ensure_ascii=False) + "\n")
    else:
        print_report(found, selection.workflow or definition.name, fmt)
    failing = [row for row in found.get("changed", []) if row["after"]["status"] == "failed"]
    if failing:
        _print_failing(failing, file)


def _print_failing(failing: list[dict[str, JSON]], file: Path) -> NoReturn:
    """Items the new definition fails are its defect, not a prediction: name it, exit 1."""
    reasons: dict[str, list[str]] = {}
    for row in failing:
        reasons.setdefault(row["stopped"] or "failed", []).append(row["key"])
    for why, keys in reasons.items():
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        errors.print(Text(f"{why} ({shown})", style="red"), soft_wrap=True)
    fail(
        f"{len(failing)} item(s) would fail on a defect of {file.name}, not a business "
        f"outcome: fix it (`statewise validate {file}`) and simulate again",
        1,
    )


def print_report(found: dict[str, JSON], workflow: str, fmt: OutputFormat) -> None:
    """The report's tables, in the order an operator reads them."""
    if not found["items"]:
        console.print(
            f"no items of workflow {workflow!r} match; nothing to replay (check --workflow, "
            f"--version, --state, --status and --since)"
        )
        return
    console.print(
        f"replayed {found['items']} item(s) of {workflow!r} through {found['definition']}"
    )
    if found["skipped"]:
        console.print(f"skipped {len(found['skipped'])} item(s) whose record was pruned")
    emit_table(
        ["state", "status", "before", "after"],
        [
            [row["state"], row["status"], str(row["before"]), str(row["after"])]
            for row in found["endings"]
        ],
        fmt=fmt,
        title="items per end or waiting state",
    )
    if found["queues"]:
        emit_table(
            ["queue", "before", "after"],
            [[row["queue"], str(row["before"]), str(row["after"])] for row in found["queues"]],
            fmt=fmt,
            title="human tasks per queue",
        )
    cost = found["cost"]
    console.print(
        f"model cost: before ${cost['before']['cost']:.4f} ({cost['before']['tokens']} tokens), "
        f"after ${cost['after']['cost']:.4f} ({cost['after']['tokens']} tokens), "
        f"difference ${cost['difference']:+.4f}"
    )
    _print_changed(found["changed"], fmt)
    _print_needs(found["needs"], fmt)
    _print_advice(found["advice"], fmt)


def _print_changed(changed: list[dict[str, JSON]], fmt: OutputFormat) -> None:
    if not changed:
        console.print("no item's path changes")
        return
    rows: list[list[Cell]] = []
    for row in changed[:_SHOWN]:
        first = row["first_difference"]
        rows.append(
            [
                f"{row['before']['state']} ({row['before']['status']})",
                f"{row['after']['state']} ({row['after']['status']})",
                "" if first is None else first["text"],
                row["key"],
            ]
        )
    emit_table(
        ["before", "after", Col("first difference", prose=True), "key"],
        rows,
        fmt=fmt,
        title=f"{len(changed)} item(s) change",
    )
    _more(len(changed))


def _print_needs(needs: list[dict[str, JSON]], fmt: OutputFormat) -> None:
    if not needs:
        return
    rows: list[list[Cell]] = []
    for row in needs[:_SHOWN]:
        command = row["command"] if row["branch"] is None else f"{row['command']} ({row['branch']})"
        why = row["message"].split(": ", 1)[-1]
        rows.append([row["state"], command, str(row["visit"]), why, row["key"]])
    emit_table(
        ["state", "command", "visit", Col("why", prose=True), "key"],
        rows,
        fmt=fmt,
        title=f"{len(needs)} item(s) need a result never recorded",
    )
    _more(len(needs))


def _print_advice(advice: list[dict[str, JSON]], fmt: OutputFormat) -> None:
    if not advice:
        return
    emit_table(
        [
            "agent", "reviews", "agreed", "overridden", "saved", "overridden among saved",
            "added",
        ],
        [
            [
                row["agent"], str(row["reviews"]), str(row["agreed"]), str(row["overridden"]),
                str(row["saved"]), str(row["overridden_saved"]), str(row["added"]),
            ]
            for row in advice
        ],
        fmt=fmt,
        title="reviews of each agent: what the change saves",
    )  # fmt: skip
    for row in advice:
        if row["overridden_saved"]:
            keys = ", ".join(row["overridden_keys"])
            console.print(
                f"{row['agent']}: {row['overridden_saved']} of the saved reviews had overridden "
                f"the agent; the change would have let them through: {keys}",
                soft_wrap=True,
            )


def _more(count: int) -> None:
    if count > _SHOWN:
        console.print(f"... and {count - _SHOWN} more; --format json lists them all")
