"""Retries that change the agent: ``retry: {adjust: [...]}``, one entry per retry.

The brief's "AI operation fails: automatic retry with adjusted parameters". Attempt 2 of an
agent runs with the first entry, attempt 3 with the second, and attempts past the list keep
the last. An entry may replace the model, lay settings over the agent's (``temperature: 0``)
and append to its instructions. Each entry is an agent of its own, built when the agents are
registered, so a bad model or setting in an entry fails at start-up like the agent's own; the
audit row of an adjusted attempt carries ``adjustment``: the entry, the model it ran on and
the settings it changed, with the attempt number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from statewise.ai.agents import AgentRunner
from statewise.contract import CommandContext, CommandResult
from statewise.definition.model import Adjustment, AgentSpec
from statewise.errors import CommandError


def adjusted(spec: AgentSpec, adjustment: Adjustment) -> AgentSpec:
    """The agent as one ``adjust`` entry changes it."""
    instructions = spec.instructions
    if adjustment.instructions is not None:
        instructions = f"{instructions.rstrip()}\n\n{adjustment.instructions}".lstrip()
    return replace(
        spec,
        model=adjustment.model or spec.model,
        instructions=instructions,
        settings={**spec.settings, **adjustment.settings},
    )


def describe(entry: int, adjustment: Adjustment, runner: AgentRunner) -> dict[str, Any]:
    """What the audit row says about an adjusted attempt (``entry`` counts from 1)."""
    return {
        "entry": entry,
        "model": str(runner.ref),
        "settings": dict(adjustment.settings),
        "instructions_added": adjustment.instructions is not None,
    }


class AdjustingRunner:
    """Runs attempt 1 with the agent as declared and each retry with its ``adjust`` entry."""

    def __init__(self, first: AgentRunner, retries: Sequence[AgentRunner]) -> None:
        self.first = first
        self.retries = tuple(retries)

    def runner_for(self, attempt: int) -> AgentRunner:
        """The agent attempt number ``attempt`` (1-based) runs."""
        if attempt < 2 or not self.retries:
            return self.first
        return self.retries[min(attempt - 2, len(self.retries) - 1)]

    async def __call__(self, ctx: CommandContext) -> CommandResult:
        """Run the attempt's agent; its usage names the attempt the adjustment served."""
        try:
            result = await self.runner_for(ctx.attempt)(ctx)
        except CommandError as exc:
            _stamp(exc.usage, ctx.attempt)
            raise
        _stamp(result.usage, ctx.attempt)
        return result


def _stamp(usage: dict[str, Any] | None, attempt: int) -> None:
    if usage is not None and isinstance(usage.get("adjustment"), dict):
        usage["adjustment"] = {"attempt": attempt, **usage["adjustment"]}
