"""Registering every declared agent as the command ``agent:NAME`` the engine runs.

A state's ``agent: NAME`` is an ordinary command named ``agent_command(NAME)``, so there is
one command per agent *name*. Different workflows, or different versions of one workflow, may
declare the same name differently; the command then runs the declaration of the item's own
workflow (and, when versions differ, of the item's own version, read from the store). Identical
declarations share one runner, and with it one model client.

The worker finds this layer as a plugin: ``register_plugin`` is the ``ai`` entry point of the
``statewise.agents`` group (see ``statewise.contract.AgentRegistrar``), declared in statewise's
``pyproject.toml``. Code that builds its own runner calls ``register_agents`` directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from statewise.ai.adjustments import AdjustingRunner, adjusted, describe
from statewise.ai.agents import AgentRunner
from statewise.ai.settings import AISettings
from statewise.ai.usage import PriceTable
from statewise.contract import CommandContext, CommandRegistry, CommandResult
from statewise.definition.model import AgentSpec, Definition, agent_command
from statewise.errors import ConfigurationError, NotFoundError, PermanentError
from statewise.store.base import Store

Runs = AgentRunner | AdjustingRunner
"""What runs one agent's attempts: the agent as declared, or with its retries adjusted."""


class AgentCommand:
    """The command ``agent:NAME``: runs the item's own workflow's declaration of the agent."""

    def __init__(self, name: str, store: Store) -> None:
        self.name = name
        self._store = store
        self._runners: dict[tuple[str, int], Runs] = {}

    def add(self, definition: Definition, runner: Runs) -> None:
        """Run ``runner`` for items of this definition (workflow name and version)."""
        self._runners[(definition.name, definition.version)] = runner

    async def __call__(self, ctx: CommandContext) -> CommandResult:
        """Pick the declaration that applies to this item and run it."""
        runner = await self._runner_for(ctx)
        return await runner(ctx)

    async def _runner_for(self, ctx: CommandContext) -> Runs:
        versions = {v: r for (w, v), r in self._runners.items() if w == ctx.workflow}
        if not versions:
            raise PermanentError(
                f"workflow {ctx.workflow!r} declares no agent {self.name!r}; it is declared "
                f"by {', '.join(sorted({w for w, _ in self._runners}))}"
            )
        distinct = {id(runner): runner for runner in versions.values()}
        if len(distinct) == 1:
            return next(iter(distinct.values()))
        item = await self._store.get_item(ctx.workflow, ctx.key)
        if item.version not in versions:
            raise PermanentError(
                f"workflow {ctx.workflow}@{item.version} is not loaded, and its versions "
                f"declare agent {self.name!r} differently"
            )
        return versions[item.version]


def register_agents(
    registry: CommandRegistry,
    definitions: Iterable[Definition],
    store: Store,
    settings: AISettings | None = None,
) -> None:
    """Register ``agent:NAME`` for every agent every definition declares.

    Everything that can be checked without calling a model is checked here, so a mistake
    fails at start-up: model strings, settings, templates, tools, the price file. Calling
    this again with more definitions adds them to the commands already registered.
    """
    settings = settings or AISettings()
    prices = PriceTable.from_settings(settings)
    runners: dict[AgentSpec, Runs] = {}
    for definition in definitions:
        for name, spec in definition.agents.items():
            if spec not in runners:
                runners[spec] = _runner(spec, registry, store, settings, prices)
            _command(registry, name, store).add(definition, runners[spec])


def _runner(
    spec: AgentSpec,
    registry: CommandRegistry,
    store: Store,
    settings: AISettings,
    prices: PriceTable,
) -> Runs:
    """The agent's runner; with ``adjust`` entries, one more agent per entry for the retries."""
    first = AgentRunner(spec, registry, store, settings, prices)
    if not spec.retry.adjust:
        return first
    retries = []
    for entry, adjustment in enumerate(spec.retry.adjust, start=1):
        runner = AgentRunner(adjusted(spec, adjustment), registry, store, settings, prices)
        runner.adjustment = describe(entry, adjustment, runner)
        retries.append(runner)
    return AdjustingRunner(first, retries)


def register_plugin(
    registry: CommandRegistry,
    definitions: Sequence[Definition],
    store: Store,
    options: Mapping[str, Any],
) -> None:
    """The built-in agent plugin: ``register_agents`` with ``AISettings(**options)``."""
    register_agents(registry, definitions, store, AISettings(**options))


def _command(registry: CommandRegistry, name: str, store: Store) -> AgentCommand:
    """The command of agent ``name``, registering it on first use."""
    command_name = agent_command(name)
    try:
        existing = registry.get(command_name)
    except NotFoundError:
        command = AgentCommand(name, store)
        registry.register(command_name, command)
        return command
    if not isinstance(existing, AgentCommand):
        raise ConfigurationError(
            f"command {command_name!r} is already registered by other code; the name is "
            f"reserved for agent {name!r}"
        )
    return existing
