"""A claims workflow whose every stage depends only on the item's data, run for real.

``check`` loops (its command counts the rounds an item asks for), ``assess`` scores the
claim from its amount, a threshold sends it to auto-approval or to a person's review, and the
scripted reviewer decides from the data alone. So a changed threshold can be replayed from
the record, and the replay checked against a real run of the changed workflow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import postgres
from statewise.actions import Principal, TaskDesk
from statewise.definition import loads
from statewise.definition.model import Definition, Role
from statewise.replay.record import path_of
from statewise.store import open_store
from statewise.worker.registry import CommandContext, CommandRegistry
from statewise.worker.runner import Runner

CLAIMS_YAML = """
workflow: claims
version: 1
states:
  check:
    kind: initial
    command: tally
    max_visits: 5
    transitions:
      - to: check
        when: check.round < rounds
      - to: assess
        else: true
  assess:
    command: score
    transitions:
      - to: auto_approved
        when: assess.score >= 70
      - to: review
        else: true
  review:
    kind: human
    task:
      queue: claims
      title: Check the claim
    transitions:
      - on: approve
        to: approved
      - on: reject
        to: rejected
  auto_approved: {kind: final}
  approved: {kind: final}
  rejected: {kind: final}
"""

REVIEWER = Principal("rita", Role.REVIEWER)
registry = CommandRegistry()


@registry.command()
async def tally(call: CommandContext) -> dict[str, Any]:
    """One more round of checks than the last visit counted."""
    previous = call.context.get("check") or {}
    return {"round": int(previous.get("round", 0)) + 1}


@registry.command()
async def score(call: CommandContext) -> dict[str, Any]:
    """The claim's score, from its amount alone."""
    return {"score": int(call.context["amount"]) % 100}


def claims(threshold: int = 70, version: int = 1) -> Definition:
    """The claims workflow with its auto-approval threshold at ``threshold``."""
    text = CLAIMS_YAML.replace(">= 70", f">= {threshold}").replace(
        "version: 1", f"version: {version}"
    )
    return loads(text, file="claims.yaml", commands=registry.names())


def claim_items(count: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` claims with spread scores and one to three rounds of checks each."""
    return [
        (f"claim-{i}", {"amount": (i * 37) % 100 + 100, "rounds": i % 3 + 1}) for i in range(count)
    ]


def reviewer_outcome(context: dict[str, Any]) -> str:
    """The scripted reviewer approves a score of 40 or more, and rejects the rest."""
    return "approve" if context["assess"]["score"] >= 40 else "reject"


async def run_for_real(
    url: str, definition: Definition, items: Sequence[tuple[str, dict[str, Any]]]
) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """Run ``items`` through ``definition`` on the store at ``url``, reviewer included.

    Returns each item's (state, status, path) once nothing is left to do.
    """
    store = open_store(url)
    try:
        runner = Runner(store, [definition], registry)
        await store.save_workflow(definition, "claims.yaml", [])
        await runner.start(definition, items)
        await runner.run(max_wait=0)
        desk = TaskDesk(runner, registry)
        while tasks := await desk.inbox(REVIEWER):
            for task in tasks:
                item = await store.get_item(task.workflow, task.key)
                await desk.decide(task.id, REVIEWER, reviewer_outcome(dict(item.context)))
            await runner.run(max_wait=0)
        found = {}
        for key, _ in items:
            item = await store.get_item(definition.name, key)
            rows = await store.history(definition.name, key)
            found[key] = (item.state, str(item.status), path_of(rows))
        return found
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty stores of one kind: the record's, and one for a real run of a change."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'record.sqlite'}", f"sqlite:///{tmp_path / 'fresh.sqlite'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    schemas = (postgres.fresh_schema(), postgres.fresh_schema())
    try:
        yield postgres.with_schema(server, schemas[0]), postgres.with_schema(server, schemas[1])
    finally:
        for schema in schemas:
            postgres.drop_schema(server, schema)
