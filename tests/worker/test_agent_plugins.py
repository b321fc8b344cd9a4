"""Agents reach the worker as plugins: the entry points of the ``statewise.agents`` group.

Entry points are read from installed distributions' metadata, so each test installs its own the
way pip does: a ``NAME-VERSION.dist-info`` folder holding ``METADATA`` and ``entry_points.txt``,
first on ``sys.path``. A folder named for ``statewise`` itself stands for statewise's own
metadata as ``pip install -e .`` writes it from ``pyproject.toml``; importlib.metadata reads the
first distribution of a name on the path only, so it hides whatever the interpreter installed.
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from statewise.ai.registration import AgentCommand
from statewise.contract import AGENT_PLUGINS, CommandContext, CommandRegistry
from statewise.definition import loads
from statewise.definition.model import Definition, agent_command
from statewise.errors import ConfigurationError
from statewise.store.base import Store
from statewise.store.sqlite import SQLiteStore
from statewise.worker import Runner
from statewise.worker.catalog import Catalog, load_catalog

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"
DECLARED: dict[str, str] = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"][
    "entry-points"
][AGENT_PLUGINS]
MOOD = """
workflow: mood
version: 1
agents:
  judge:
    instructions: Judge the mood.
    input: "{{ text }}"
    output:
      type: object
      properties: {mood: {type: string, enum: [calm, upset]}}
      required: [mood]
states:
  judge:
    kind: initial
    agent: judge
    transitions:
      - {to: calm, when: 'judge.mood == "calm"'}
      - {to: upset}
  calm: {kind: final}
  upset: {kind: final}
"""
PLAIN = """
workflow: plain
version: 1
states:
  start: {kind: initial, transitions: [{to: done}]}
  done: {kind: final}
"""
# What the scripted plugin was called with, test by test.
CALLS: list[tuple[list[str], Mapping[str, Any]]] = []


def scripted_agents(
    registry: CommandRegistry,
    definitions: Sequence[Definition],
    store: Store,
    options: Mapping[str, Any],
) -> None:
    """An agent plugin of another distribution: every agent answers ``calm``."""
    CALLS.append(([d.ref for d in definitions], dict(options)))

    def calm(ctx: CommandContext) -> dict[str, str]:
        return {"mood": "calm"}

    for name in {name for definition in definitions for name in definition.agents}:
        registry.register(agent_command(name), calm)


SCRIPTED = {"scripted": f"{__name__}:scripted_agents"}


@pytest.fixture(autouse=True)
def fresh_calls() -> None:
    CALLS.clear()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty site folder first on ``sys.path``, where tests install distributions."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


def install(site: Path, name: str, plugins: Mapping[str, str]) -> None:
    """Install distribution ``name`` declaring ``plugins`` as its agent entry points."""
    info = site / f"{name}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    lines = [f"[{AGENT_PLUGINS}]", *(f"{key} = {value}" for key, value in plugins.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def catalog_of(store: SQLiteStore, *sources: str, **ai: Any) -> Catalog:
    """The catalog of a store holding ``sources``, loaded as a worker loads it."""

    async def main() -> Catalog:
        for source in sources:
            await store.save_workflow(loads(source, file="flow.yaml"), "flow.yaml", [])
        return await load_catalog(store, [], ai=ai)

    return asyncio.run(main())


def test_statewise_declares_the_built_in_plugin_and_it_registers_every_agent(
    site: Path, store: SQLiteStore
) -> None:
    assert DECLARED == {"ai": "statewise.ai.registration:register_plugin"}
    install(site, "statewise", DECLARED)
    catalog = catalog_of(store, MOOD, default_model="local")
    assert catalog.held() == ["mood@1"]
    assert isinstance(catalog.registry.get("agent:judge"), AgentCommand)


def test_a_plugin_of_another_distribution_runs_the_agents_it_registers(
    site: Path, store: SQLiteStore
) -> None:
    install(site, "statewise", {})  # statewise's own plugin stands aside in this test
    install(site, "acme-agents", SCRIPTED)
    catalog = catalog_of(store, MOOD, PLAIN, cache=True)
    assert CALLS == [(["mood@1", "plain@1"], {"cache": True})]

    async def main() -> str:
        definition = next(d for d in catalog.definitions if d.name == "mood")
        runner = Runner(store, catalog.definitions, catalog.registry)
        await runner.start(definition, [("a", {"text": "all fine"})])
        await runner.run(max_wait=1.0)
        return (await store.get_item("mood", "a")).state

    assert asyncio.run(main()) == "calm"


def test_two_plugins_claiming_one_agent_are_refused(site: Path, store: SQLiteStore) -> None:
    install(site, "statewise", DECLARED)
    install(site, "acme-agents", SCRIPTED)
    with pytest.raises(ConfigurationError, match=r"'agent:judge' is registered twice"):
        catalog_of(store, MOOD)


def test_an_agent_no_plugin_registers_names_the_fix(site: Path, store: SQLiteStore) -> None:
    install(site, "statewise", {})
    with pytest.raises(ConfigurationError) as raised:
        catalog_of(store, MOOD)
    message = str(raised.value)
    assert "agent 'judge' of workflow mood@1 has no command" in message
    assert "found: none" in message
    assert "pip install -e ." in message


def test_a_plugin_that_cannot_be_imported_is_named(site: Path, store: SQLiteStore) -> None:
    install(site, "statewise", {"ai": "statewise_no_such_module:register"})
    with pytest.raises(ConfigurationError) as raised:
        catalog_of(store, MOOD)
    message = str(raised.value)
    assert "agent plugin 'ai' (statewise_no_such_module:register) cannot be imported" in message
    assert "pip install 'statewise[ai]'" in message


def test_workflows_without_agents_load_no_plugin(site: Path, store: SQLiteStore) -> None:
    install(site, "statewise", {"ai": "statewise_no_such_module:register"})
    install(site, "acme-agents", SCRIPTED)
    assert catalog_of(store, PLAIN).held() == ["plain@1"]
    assert CALLS == []
