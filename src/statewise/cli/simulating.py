"""``statewise simulate``: what a changed workflow would have done to the items already run."""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table
from rich.text import Text

from statewise.actions.quality import window_seconds
from statewise.actions.simulation import DEFAULT_LIMIT, Selection, report_json, simulate
from statewise.cli.common import (
    DEFAULT_DB,
    DbOption,
    app,
    console,
    errors,
    fail,
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


class SimulateFormat(StrEnum):
    """How ``statewise simulate`` prints its report."""

    TABLE = "table"
    JSON = "json"


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
    format: Annotated[
        SimulateFormat, typer.Option("--format", "-f", help="table or json")
    ] = SimulateFormat.TABLE,
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
    run_async(_simulate(file, db, selection, format))


async def _simulate(file: Path, db: str, selection: Selection, format: SimulateFormat) -> None:
    definition = load(file)

    async def replay(store: Store) -> dict[str, JSON]:
        report, advice = await simulate(store, definition, selection, time.time())
        return report_json(report, advice)

    found = await with_store(db, replay)
    if format is SimulateFormat.JSON:
        sys.stdout.write(json.dumps(found, indent=2, ensure_ascii=False) + "\n")
    else:
        print_report(found, selection.workflow or definition.name)
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


def print_report(found: dict[str, JSON], workflow: str) -> None:
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
    endings = Table("state", "status", "before", "after", title="items per end or waiting state")
    for row in found["endings"]:
        endings.add_row(row["state"], row["status"], str(row["before"]), str(row["after"]))
    console.print(endings)
    if found["queues"]:
        queues = Table("queue", "before", "after", title="human tasks per queue")
        for row in found["queues"]:
            queues.add_row(row["queue"], str(row["before"]), str(row["after"]))
        console.print(queues)
    cost = found["cost"]
    console.print(
        f"model cost: before ${cost['before']['cost']:.4f} ({cost['before']['tokens']} tokens), "
        f"after ${cost['after']['cost']:.4f} ({cost['after']['tokens']} tokens), "
        f"difference ${cost['difference']:+.4f}"
    )
    _print_changed(found["changed"])
    _print_needs(found["needs"])
    _print_advice(found["advice"])


def _print_changed(changed: list[dict[str, JSON]]) -> None:
    if not changed:
        console.print("no item's path changes")
        return
    table = Table("before", "after", "first difference", title=f"{len(changed)} item(s) change")
    table.add_column("key", overflow="fold")
    for row in changed[:_SHOWN]:
        first = row["first_difference"]
        table.add_row(
            f"{row['before']['state']} ({row['before']['status']})",
            f"{row['after']['state']} ({row['after']['status']})",
            "" if first is None else first["text"],
            row["key"],
        )
    console.print(table)
    _more(len(changed))


def _print_needs(needs: list[dict[str, JSON]]) -> None:
    if not needs:
        return
    table = Table(
        "state",
        "command",
        "visit",
        "why",
        title=f"{len(needs)} item(s) need a result never recorded",
    )
    table.add_column("key", overflow="fold")
    for row in needs[:_SHOWN]:
        command = row["command"] if row["branch"] is None else f"{row['command']} ({row['branch']})"
        why = row["message"].split(": ", 1)[-1]
        table.add_row(row["state"], command, str(row["visit"]), why, row["key"])
    console.print(table)
    _more(len(needs))


def _print_advice(advice: list[dict[str, JSON]]) -> None:
    if not advice:
        return
    table = Table(
        "agent", "reviews", "agreed", "overridden", "saved", "overridden among saved", "added",
        title="reviews of each agent: what the change saves",
    )  # fmt: skip
    for row in advice:
        table.add_row(
            row["agent"], str(row["reviews"]), str(row["agreed"]), str(row["overridden"]),
            str(row["saved"]), str(row["overridden_saved"]), str(row["added"]),
        )  # fmt: skip
    console.print(table)
    for row in advice:
        if row["overridden_saved"]:
            keys = ", ".join(row["overridden_keys"])
            console.print(
                f"{row['agent']}: {row['overridden_saved']} of the saved reviews had overridden "
                f"the agent; the change would have let them through: {keys}"
            )


def _more(count: int) -> None:
    if count > _SHOWN:
        console.print(f"... and {count - _SHOWN} more; --format json lists them all")
