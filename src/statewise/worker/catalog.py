"""What a process can run: the stored workflows whose commands and agents it has.

A store holds every (workflow, version) ever started; a process holds the command modules it
was given. ``load_catalog`` pairs them: each stored version that loads with those commands is
held (its agents registered), and each one that does not is skipped with the reason, so one
unloadable version never stops the others. A worker claims work of held versions only.
A long-running process loads its catalog again when the store's versions change
(``worker.refresh``), so a version deployed meanwhile is taken up without a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from statewise.contract import (
    AGENT_PLUGINS,
    AgentRegistrar,
    CommandContext,
    CommandFunction,
    CommandRegistry,
)
from statewise.definition import loads
from statewise.definition.model import Definition, agent_command
from statewise.errors import (
    ConfigurationError,
    DefinitionError,
    NotFoundError,
    PermanentError,
    StatewiseError,
)
from statewise.store.base import Store, WorkflowStamp
from statewise.worker.registry import load_registry, module_name
from statewise.worker.webhooks import register_webhooks


@dataclass(frozen=True, slots=True)
class Catalog:
    """The definitions a process holds, the registry that runs them, and what it skipped.

    ``stamp`` is the stored versions it was loaded from (``StoredWorkflow.stamp``): while the
    store's stamps equal it, loading again would give the same catalog.
    """

    definitions: list[Definition]
    registry: CommandRegistry
    skipped: dict[str, str] = field(default_factory=dict)
    stamp: tuple[WorkflowStamp, ...] = ()

    def held(self) -> list[str]:
        """``name@version`` of every held definition, for logs and banners."""
        return [d.ref for d in self.definitions]


async def load_catalog(
    store: Store,
    modules: Iterable[str],
    *,
    stored_modules: bool = True,
    ai: Mapping[str, Any] | None = None,
) -> Catalog:
    """Load every stored workflow that ``modules`` (and, if asked, its own modules) can run.

    ``stored_modules`` adds the modules each workflow was registered with (what `statewise
    run` remembers: module names, or a loose file's path on the host that registered it); a
    worker passes False and holds only what its command line names. ``ai`` holds
    ``AISettings`` keyword arguments for the agents, if any workflow declares some (the AI
    plugins are loaded only then).
    """
    stored = await store.workflows()
    if not stored:
        raise NotFoundError(
            "the store has no workflows yet; store them with `statewise deploy FILE...`, or run "
            "one with `statewise run FILE`"
        )
    given = list(modules)
    remembered = [m for w in stored for m in w.commands] if stored_modules else []
    modules_of: dict[str, list[str]] = {}
    for workflow in stored:
        own = modules_of.setdefault(workflow.name, [])
        own.extend(name for name in map(module_name, workflow.commands) if name not in own)
    registry, broken = _registry(dict.fromkeys([*given, *remembered]), modules_of)
    definitions: list[Definition] = []
    skipped: dict[str, str] = {}
    for workflow in stored:
        ref = f"{workflow.name}@{workflow.version}"
        try:
            definitions.append(
                loads(workflow.source, file=workflow.file, commands=registry.names())
            )
        except DefinitionError as exc:
            missing = [m for m in workflow.commands if m in broken]
            why = f"module {missing[0]} failed: {broken[missing[0]]}" if missing else str(exc)
            skipped[ref] = why.splitlines()[0]
    if any(d.agents for d in definitions):
        _register_agents(registry, definitions, store, ai)
    register_webhooks(registry, definitions, store)
    return Catalog(definitions, registry, skipped, tuple(w.stamp() for w in stored))


def _registry(
    modules: Iterable[str], modules_of: Mapping[str, list[str]]
) -> tuple[CommandRegistry, dict[str, str]]:
    """Merge each module's registry; a module that fails is reported, not fatal.

    Two modules may define a command of the same name (two teams' ``publish``): it becomes
    one command that runs, for each item, the function of the module its workflow was
    registered with (``modules_of``: workflow name to its modules' ``module_name``, so a
    module matches however and wherever it was given).
    """
    loaded: dict[str, CommandRegistry] = {}
    broken: dict[str, str] = {}
    for module in modules:
        try:
            loaded[module] = load_registry([module])
        except StatewiseError as exc:
            broken[module] = str(exc)
    definers: dict[str, dict[str, CommandFunction]] = {}
    for module, registry in loaded.items():
        for name, function in registry.commands().items():
            definers.setdefault(name, {})[module_name(module)] = function
    shared = frozenset(
        name
        for name, by_module in definers.items()
        if len({id(function) for function in by_module.values()}) > 1
    )
    combined = CommandRegistry()
    for module, registry in loaded.items():
        try:
            combined.merge(registry, skip=shared)
        except StatewiseError as exc:
            broken[module] = str(exc)
    for name in shared:
        combined.register(name, _ByWorkflow(name, definers[name], modules_of))
    return combined, broken


class _ByWorkflow:
    """A command several modules define: each item runs its own workflow's module's function.

    It is a plain callable: the runner calls it in a worker thread, and a coroutine it returns
    (an async function's) is awaited on the event loop, as for any command.
    """

    def __init__(
        self,
        name: str,
        by_module: Mapping[str, CommandFunction],
        modules_of: Mapping[str, list[str]],
    ) -> None:
        self.name = name
        self.by_module = dict(by_module)
        self.modules_of = modules_of

    def __call__(self, ctx: CommandContext) -> Any:
        for module in self.modules_of.get(ctx.workflow, ()):
            function = self.by_module.get(module)
            if function is not None:
                return function(ctx)
        raise PermanentError(
            f"command {self.name!r} is defined by {', '.join(sorted(self.by_module))}, and "
            f"workflow {ctx.workflow!r} was registered with none of them; register it with "
            f"the module whose {self.name!r} it means"
        )


def _register_agents(
    registry: CommandRegistry,
    definitions: list[Definition],
    store: Store,
    ai: Mapping[str, Any] | None,
) -> None:
    """Let every installed agent plugin register the declared agents, then check none is left.

    The plugins are the ``statewise.agents`` entry points (the built-in AI layer is one, in
    statewise's own metadata), so the worker never names the layer that runs agents. A plugin
    whose module cannot be imported, or an agent no plugin took, is reported with the fix.
    """
    plugins = sorted(entry_points(group=AGENT_PLUGINS), key=lambda plugin: plugin.name)
    for plugin in plugins:
        try:
            register: AgentRegistrar = plugin.load()
        except ImportError as exc:
            raise ConfigurationError(
                f"these workflows declare AI agents, and the agent plugin {plugin.name!r} "
                f"({plugin.value}) cannot be imported: {exc}; the built-in one needs the ai "
                f"extra (pip install 'statewise[ai]', or 'statewise[local]' for the offline "
                f"model)"
            ) from None
        register(registry, definitions, store, ai or {})
    taken = registry.commands()
    for definition in definitions:
        for name in definition.agents:
            if agent_command(name) not in taken:
                raise ConfigurationError(_unregistered(definition, name, plugins))


def _unregistered(definition: Definition, agent: str, plugins: Sequence[EntryPoint]) -> str:
    """Why agent ``agent`` has no command, and how to install the plugin that gives it one."""
    found = ", ".join(f"{p.name} ({p.value})" for p in plugins) or "none"
    return (
        f"agent {agent!r} of workflow {definition.ref} has no command: no agent plugin "
        f"registered it (entry points of group {AGENT_PLUGINS!r} found: {found}); install the "
        f"ai extra (pip install 'statewise[ai]'), and in a checkout re-run `pip install -e .` "
        f"so statewise's own entry points are recorded"
    )
