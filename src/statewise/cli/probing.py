"""``statewise models check``: what each configured model's endpoint supports, before a run.

The command people run first against a server of their own: one small probe per declared
agent (``statewise.ai.probes``), one table row each. The AI layer is imported by the command
itself, so every other command starts without pydantic-ai. It exits 1 when any model cannot be
reached or takes none of its agent's output modes, so a deployment script can stop there.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx2
import typer
from rich.text import Text

from statewise.cli.common import (
    CommandsOption,
    FormatOption,
    app,
    emit_table,
    fail,
    note,
    output_format,
    run_async,
    user_errors,
)
from statewise.definition import load
from statewise.definition.model import AgentSpec
from statewise.worker import load_registry

if TYPE_CHECKING:
    from statewise.ai.probes import ProbeReport

models_app = typer.Typer(help="Model endpoints: what each configured model supports.")
app.add_typer(models_app, name="models")


@models_app.command("check")
def check(
    workflow: Annotated[
        list[Path],
        typer.Option("--workflow", "-w", help="Workflow YAML file whose agents to check."),
    ],
    agent: Annotated[
        list[str] | None,
        typer.Option("--agent", "-a", help="Check only this agent. Repeatable."),
    ] = None,
    commands: CommandsOption = None,
    format: FormatOption = None,
) -> None:
    """Probe every agent's model: reachable, working output modes, latency, usage, token limit.

    Exits 1 when a model cannot be reached or takes none of its agent's output modes.
    """
    # The AI layer (and pydantic-ai) loads only for this command, as for a run with agents.
    from statewise.ai.probes import probe
    from statewise.ai.schema import output_model
    from statewise.ai.settings import AISettings

    fmt = output_format(format)
    with user_errors():
        registry = load_registry(commands or [])
        specs: dict[str, AgentSpec] = {}
        for file in workflow:
            specs.update(load(file, commands=registry.names() if commands else None).agents)
        unknown = sorted(set(agent or ()) - set(specs))
        if unknown:
            fail(f"no agent {', '.join(unknown)} in {', '.join(map(str, workflow))}", 2)
        chosen = [spec for name, spec in sorted(specs.items()) if not agent or name in agent]
        shapes = [
            output_model(registry, s.name, s.output) if isinstance(s.output, str) else s.output
            for s in chosen
        ]

    async def probe_all() -> list[ProbeReport]:
        # One client for every probe, closed before the loop ends: nothing is left open.
        async with httpx2.AsyncClient() as client:
            settings = AISettings(http_client=client)
            pairs = zip(chosen, shapes, strict=True)
            return list(
                await asyncio.gather(*(probe(spec, settings, shape) for spec, shape in pairs))
            )

    reports = run_async(probe_all())
    emit_table(
        ["agent", "model", "endpoint", "reachable", "output modes", "latency", "usage",
         "token limit", "error"],
        [_cells(report) for report in reports],
        fmt=fmt,
        json_rows=[asdict(report) for report in reports],
    )  # fmt: skip
    broken = [report.agent for report in reports if not report.works]
    if broken:
        note(f"not usable: {', '.join(broken)}", fmt)
        raise typer.Exit(1)


def _cells(report: ProbeReport) -> list[str | Text]:
    return [
        report.agent,
        report.model,
        report.endpoint,
        Text("yes", style="green") if report.reachable else Text("no", style="red"),
        ", ".join(report.modes) or Text("none", style="red"),
        "" if report.latency is None else f"{report.latency * 1000:.0f} ms",
        _yes_no(report.usage_reported),
        _yes_no(report.token_limit_honoured),
        report.error or "",
    ]


def _yes_no(value: bool | None) -> str:
    return "" if value is None else "yes" if value else "no"
