"""Commands for versions side by side: deploy definitions, list them, migrate items between them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from statewise.actions.deployment import deploy, stored_version, versions
from statewise.actions.migration import MigrationPlan, apply_migration, plan_migration
from statewise.cli.common import (
    DEFAULT_DB,
    Col,
    CommandsOption,
    DbOption,
    FormatOption,
    app,
    console,
    emit_table,
    fail,
    failure_cell,
    note,
    output_format,
    run_async,
    status_cell,
    with_store,
)
from statewise.cli.running import act_then_continue, prepare
from statewise.definition.model import Definition
from statewise.engine.item import ItemStatus
from statewise.errors import NotFoundError
from statewise.store import Store, open_store
from statewise.worker.catalog import Catalog
from statewise.worker.runner import Runner


@app.command(name="deploy")
def deploy_command(
    files: Annotated[list[Path], typer.Argument(help="Workflow YAML files.")],
    db: DbOption = DEFAULT_DB,
    commands: CommandsOption = None,
) -> None:
    """Validate and store workflow versions without starting items (same content: no-op)."""

    async def store_them() -> None:
        store = open_store(db)
        try:
            for done in await deploy(store, files, commands or []):
                what = "deployed" if done.new else "already deployed, unchanged:"
                console.print(f"{what} {done.definition.ref} from {done.file}", soft_wrap=True)
        finally:
            await store.close()

    run_async(store_them())


@app.command(name="workflows")
def workflows_command(
    db: DbOption = DEFAULT_DB,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only this workflow's versions.")
    ] = None,
    format: FormatOption = None,
) -> None:
    """Every stored workflow version with its items per status."""
    fmt = output_format(format)

    async def show(store: Store) -> None:
        found = await versions(store, workflow)
        if not found:
            which = f"of {workflow!r} " if workflow else ""
            note(f"no workflow {which}is deployed; `statewise deploy FILE` stores one", fmt)
            return
        statuses = list(ItemStatus)
        emit_table(
            ["workflow", "file", *statuses],
            [
                [s.ref, s.stored.file, *(str(s.items.get(status, 0)) for status in statuses)]
                for s in found
            ],
            fmt=fmt,
            json_rows=[
                {
                    "workflow": s.stored.name,
                    "version": s.stored.version,
                    "file": s.stored.file,
                    **{status.value: s.items.get(status, 0) for status in statuses},
                }
                for s in found
            ],
        )

    run_async(with_store(db, show))


MapOption = Annotated[
    list[str] | None,
    typer.Option("--map", help="OLD=NEW: items in state OLD enter NEW. Repeatable."),
]


@app.command(name="migrate")
def migrate_command(
    workflow: Annotated[str, typer.Argument(help="The workflow whose items move.")],
    to: Annotated[int, typer.Option("--to", min=1, help="The version they move onto.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
    mapping: MapOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list which items would move where.")
    ] = False,
    db: DbOption = DEFAULT_DB,
    commands: CommandsOption = None,
    actor: Annotated[str, typer.Option("--as", help="Who acts, for the audit trail.")] = "cli",
    wait: Annotated[
        bool, typer.Option(help="Run the migrated items' new work on until they settle.")
    ] = True,
) -> None:
    """Move in-flight (and defect-failed) items onto another version, each in its own commit.

    Each state maps to the --map given for it, else to the new version's `migrations:`, else
    to the state of the same name; items in states nothing maps are listed and left alone.
    """
    rules = parse_mapping(mapping or [])
    if not dry_run and not reason.strip():
        fail("--reason is required to migrate (the audit trail keeps it)", 2)

    async def act(store: Store) -> None:
        catalog, _ = await prepare(store, None, commands or [])
        new = await held_version(store, catalog, workflow, to)
        runner = Runner(store, catalog.definitions, catalog.registry)
        if dry_run:
            print_plan(await plan_migration(runner, new, rules), dry_run=True)
            return

        async def apply() -> MigrationPlan:
            return await apply_migration(runner, new, actor=actor, reason=reason, mapping=rules)

        if not wait:
            print_plan(await apply(), dry_run=False)
            return
        plan = await act_then_continue(runner, apply, "the migrated items")
        print_plan(plan, dry_run=False)
        await fail_on_defects(store, plan)

    run_async(with_store(db, act))


async def fail_on_defects(store: Store, plan: MigrationPlan) -> None:
    """Moved items that failed on entering their new state: a defect of it, named, exit 1.

    They did move (nothing is lost, and `statewise redrive` takes them on once it is fixed),
    but a migration that ends in failures must not read as a clean "moved".
    """
    refs = []
    for move in plan.moved:
        item = await store.get_item(plan.workflow, move.key)
        if item.status is ItemStatus.FAILED and item.version == plan.to:
            refs.append((item.workflow, item.key))
    if not refs:
        return
    why = await store.failures(refs)
    for ref in refs:
        console.print(Text(f"{ref[1]}: ", style="bold").append(failure_cell(why.get(ref))))
    fail(
        f"{len(refs)} item(s) failed on entering their new state on {plan.workflow}@{plan.to}: "
        f"`statewise items --status failed -w {plan.workflow}@{plan.to}` lists them; fix the "
        f"version (a new one) and migrate them onto it, or redrive them",
        1,
    )


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    """``--map OLD=NEW`` options as a mapping; a malformed or repeated one stops at once."""
    rules: dict[str, str] = {}
    for pair in pairs:
        old, equals, new = pair.partition("=")
        if not equals or not old.strip() or not new.strip():
            fail(f"--map {pair!r}: expected OLD=NEW, two state names", 2)
        if old.strip() in rules:
            fail(f"--map names state {old.strip()!r} twice", 2)
        rules[old.strip()] = new.strip()
    return rules


async def held_version(store: Store, catalog: Catalog, workflow: str, version: int) -> Definition:
    """The stored ``workflow@version`` as this process loaded it; why not, when it cannot."""
    await stored_version(store, workflow, version)  # NotFoundError names the stored ones
    ref = f"{workflow}@{version}"
    for definition in catalog.definitions:
        if definition.ref == ref:
            return definition
    why = catalog.skipped.get(ref, "unknown")
    raise NotFoundError(f"{ref} is stored but cannot be loaded here: {why}")


def print_plan(plan: MigrationPlan, *, dry_run: bool) -> None:
    """The items that move (or would), where to, and the ones left alone with why."""
    moves = plan.moves if dry_run else plan.moved
    verb = "would move" if dry_run else "moved"
    # Whole keys, never cut: the plan is the list of exactly who moves.
    if moves:
        emit_table(
            ["key", "from", "status", "to"],
            [
                [
                    move.key,
                    f"{plan.workflow}@{move.from_version} {move.from_state}",
                    status_cell(move.status),
                    move.to_state,
                ]
                for move in moves
            ],
            title=f"{verb} onto {plan.workflow}@{plan.to}",
        )
    console.print(f"{len(moves)} item(s) {verb} onto {plan.workflow}@{plan.to}", soft_wrap=True)
    if plan.left:
        emit_table(
            ["key", "version", "state", Col("why", prose=True)],
            [
                [item.key, str(item.version), item.state, Text(item.why, style="yellow")]
                for item in plan.left
            ],
            title="left alone",
        )
        console.print(f"{len(plan.left)} item(s) left alone")
