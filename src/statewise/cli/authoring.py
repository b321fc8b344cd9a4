"""Commands for workflow authors: check a definition and draw it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from statewise.cli.common import (
    CommandsOption,
    app,
    console,
    errors,
    fail,
    print_problems,
    run_async,
    user_errors,
    with_store,
)
from statewise.definition import load
from statewise.definition.diagrams import DiagramFormat, render
from statewise.definition.model import Definition
from statewise.errors import DefinitionError
from statewise.store import Store
from statewise.worker import load_registry


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Workflow YAML files.")],
    commands: CommandsOption = None,
) -> None:
    """Check workflow files and report every problem as file:line:column: message."""
    with user_errors():
        registry = load_registry(commands or [])
    names = registry.names() if commands else None
    schemas = registry.schemas() if commands else None
    problems = 0
    for file in files:
        try:
            definition = load(file, commands=names, schemas=schemas)
        except DefinitionError as exc:
            problems += len(exc.problems)
            print_problems(exc)
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
    db: Annotated[
        str | None, typer.Option("--db", help="Show live item counts of this file's version.")
    ] = None,
) -> None:
    """Draw the state machine as Mermaid, Graphviz DOT, or SVG (needs Graphviz's dot)."""
    with user_errors():
        definition = load(file)
    counts = run_async(with_store(db, lambda store: _counts(store, definition))) if db else None
    with user_errors():
        text = render(definition, format, counts)
    if output:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}", 1)
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


async def _counts(store: Store, definition: Definition) -> dict[str, int]:
    """Items per state of this file's version only: other versions' states may differ."""
    rows = await store.state_counts(definition.name)
    counts: dict[str, int] = {}
    for row in rows:
        if row.version == definition.version:
            counts[row.state] = counts.get(row.state, 0) + row.count
    return counts
