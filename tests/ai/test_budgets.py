"""Budgets per item end to end: real agents on a local OpenAI-protocol server, both stores.

A real runner moves the items (with its own HTTP client to the model server, closed after);
the ``statewise`` command reads them back (``show``, ``history``, ``costs --budgets``,
``check``); the service's API, dashboard and ``/metrics`` show them too. The server answers
each agent by the item's ``plan`` (its rendered input is the item's context) with scripted
token counts, and records every request, so a test can tell a call that never happened.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from service.conftest import login_csrf, run_server, stuck_items
from statewise.cli import app
from statewise.definition import loads
from statewise.store import Store, open_store
from statewise.worker.catalog import Catalog, load_catalog

from .conftest import agent_runner
from .servers import FakeProvider, Received, Reply, message_text, openai_tool_call, serving

AGENTS = """\
agents:
  writer:
    model: {model}
    instructions: Write a draft.
    output: {{type: object, properties: {{again: {{type: boolean}}}}, required: [again]}}
  polisher:
    model: {model}
    instructions: Polish the draft.
    output: {{type: object, properties: {{text: {{type: string}}}}, required: [text]}}
"""
STATES = """\
  write:
    kind: initial
    agent: writer
    max_visits: 10
    {stage}
    transitions:
      - when: write.again
        to: write
      - else: true
        to: polish
      - on: error
        to: editor
  polish:
    agent: polisher
    transitions: [{{to: done}}]
  editor:
    kind: waiting
    transitions: [{{on: approve, to: done}}]
  review:
    kind: waiting
    transitions: [{{on: approve, to: done}}]
  done: {{kind: final}}
"""


def flow(budget: str, stage: str = "", model: str = "openai:gpt-4o-mini") -> str:
    """The drafts workflow: ``write`` loops while the writer says ``again``, then ``polish``."""
    head = f"workflow: drafts\nversion: 1\nbudget: {budget}\n"
    return head + AGENTS.format(model=model) + "states:\n" + STATES.format(stage=stage)


# How each item's agent calls go: (again, tokens) per writer call; the polisher uses 50.
Plans = dict[str, tuple[bool, int]]


def plan_of(received: Received) -> str:
    """The plan of the item a request is for: the agents' input is the item's context."""
    user = [m for m in received.body["messages"] if m["role"] == "user"][-1]
    plan: str = json.loads(message_text(user))["plan"]
    return plan


def is_writer(received: Received) -> bool:
    """Whether the request is the writer's (its output has ``again``) or the polisher's."""
    return "again" in json.dumps(received.body["tools"])


def answer(plans: Plans, hold: Callable[[str], None] = lambda plan: None) -> Any:
    """The server's handler: the writer answers by the item's plan, the polisher with text."""

    def handle(received: Received) -> Reply:
        plan = plan_of(received)
        tool = received.body["tools"][0]["function"]["name"]
        hold(plan)
        if is_writer(received):
            again, tokens = plans[plan]
            arguments: dict[str, Any] = {"again": again}
        else:
            arguments, tokens = {"text": "polished"}, 50
        usage = {"prompt_tokens": tokens - 10, "completion_tokens": 10, "total_tokens": tokens}
        return openai_tool_call(tool, arguments, usage=usage)

    return handle


def asked(server: FakeProvider, plan: str, writer: bool = True) -> int:
    """How many requests the server got for ``plan``'s item from the writer (or polisher)."""
    return sum(plan_of(r) == plan and is_writer(r) == writer for r in server.requests)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    """The local OpenAI-protocol server every agent talks to."""
    with serving() as server:
        monkeypatch.setenv("STATEWISE_OPENAI_BASE_URL", server.url)
        yield server


def statewise(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "240"})
    return result.exit_code, result.output


def run_items(db: str, text: str, plans: Plans, provider: FakeProvider) -> None:
    """Register the workflow, start one item per plan and run until each finishes or waits."""

    async def scenario() -> None:
        store = open_store(db)
        try:
            definition = loads(text, file="drafts.yaml")
            await store.save_workflow(definition, "drafts.yaml", [])
            async with agent_runner(store, definition, openai=provider) as runner:  # type: ignore[arg-type]
                await runner.start(definition, [(key, {"plan": key}) for key in plans])
                await runner.run(max_wait=0)
        finally:
            await store.close()

    asyncio.run(scenario())


def shown(db: str, key: str) -> dict[str, Any]:
    code, output = statewise("show", key, "--db", db, "--json")
    assert code == 0, output
    view: dict[str, Any] = json.loads(output)
    return view


def trail(db: str, key: str) -> list[dict[str, Any]]:
    code, output = statewise("history", key, "--db", db, "--format", "jsonl")
    assert code == 0, output
    return [json.loads(line) for line in output.splitlines()]


def test_a_spent_workflow_budget_routes_the_item_before_the_agent_is_called(
    provider: FakeProvider, db: str
) -> None:
    plans = {"exact": (False, 300)}  # the writer uses the whole budget, not more
    provider.always(answer(plans))
    run_items(db, flow("{tokens: 300, on_exceeded: review}"), plans, provider)

    assert asked(provider, "exact") == 1
    assert asked(provider, "exact", writer=False) == 0  # the polisher was never called
    view = shown(db, "exact")
    assert view["state"] == "review"
    workflow, write = view["budgets"]  # the item's total, then what each state spent
    assert (workflow["state"], workflow["tokens"], workflow["token_limit"]) == (None, 300, 300)
    assert (write["state"], write["tokens"], write["token_limit"]) == ("write", 300, None)
    assert workflow["reached"] and workflow["warning"] is None
    row = trail(db, "exact")[-1]
    assert (row["from_state"], row["to_state"], row["event"]) == (
        "polish",
        "review",
        "budget_exceeded",
    )
    assert row["budget"] == {
        "scope": "workflow", "state": "polish", "measure": "tokens", "spent": 300, "limit": 300
    }  # fmt: skip
    assert "workflow tokens budget spent: 300 tokens of 300 tokens" in row["note"]

    code, output = statewise("costs", "--budgets", "--db", db)
    assert code == 0 and "exact" in output and "300 / 300" in output and "100% spent" in output
    assert "1 budget(s) spent, 0 near" in output
    assert statewise("check", "--db", db)[0] == 0  # the invariant holds


def test_a_stage_budget_refuses_the_next_visit_and_cuts_a_run_short(
    provider: FakeProvider, db: str
) -> None:
    plans = {"loop": (True, 120), "long": (True, 500)}
    provider.always(answer(plans))
    stage = "budget: {tokens: 240, on_exceeded: editor}"
    run_items(db, flow("{tokens: 100000, on_exceeded: review}", stage), plans, provider)

    # loop: 120 + 120 spent in `write`; its third visit is refused before the call.
    assert asked(provider, "loop") == 2
    assert shown(db, "loop")["state"] == "editor"
    refused = trail(db, "loop")[-1]
    assert refused["budget"] == {
        "scope": "state", "state": "write", "measure": "tokens", "spent": 240, "limit": 240
    }  # fmt: skip
    assert refused["error"] is None  # a business route, not a failure

    # long: its first call used 500 tokens of the 240 allowed; pydantic-ai's usage limit
    # stopped it, and it went to the editor at once, never retried.
    assert asked(provider, "long") == 1
    view = shown(db, "long")
    assert view["state"] == "editor" and view["status"] == "waiting"
    cut = trail(db, "long")[-1]
    assert cut["event"] == "budget_exceeded" and cut["error"]["kind"] == "budget"
    assert cut["budget"]["spent"] == 500 and cut["note"].startswith("the run was cut short")
    stage_use = next(b for b in view["budgets"] if b["state"] == "write")
    assert (stage_use["tokens"], stage_use["token_limit"]) == (500, 240)

    code, output = statewise("costs", "--budgets", "--db", db, "--near", "0.5")
    assert code == 0 and "stage write" in output and output.count("spent") >= 2
    assert statewise("costs", "--budgets", "--db", db, "--near", "nan")[0] == 2
    assert statewise("check", "--db", db)[0] == 0


def test_unpriced_models_count_tokens_only_and_budgets_show_on_the_page_api_and_metrics(
    provider: FakeProvider, db: str
) -> None:
    """Through the service, which runs the items: an operator pauses one of them from the
    command line while its agent runs (a second writer); the spend of that run is kept, so
    resuming the item is refused before a second call."""
    arrived, released = threading.Event(), threading.Event()

    def hold(plan: str) -> None:
        if plan == "paused":
            arrived.set()
            assert released.wait(20)

    plans = {"unpriced": (True, 400), "paused": (True, 1000)}
    provider.always(answer(plans, hold))
    text = flow("{tokens: 1000, cost: 0.0001, on_exceeded: review}", model="openai:house-model-7b")
    yield_server = run_server(db, items=0, workflow=text, catalog=_with_model_client)
    server = next(yield_server)
    try:
        with server.client("operator") as ops:
            items = [{"key": key, "data": {"plan": key}} for key in plans]
            started = ops.post("/api/items/batch", json={"workflow": "drafts", "items": items})
            assert started.status_code == 200, started.text
            assert arrived.wait(20)
            # A second writer, the command line, pauses the item while its agent runs.
            pause = ("bulk", "pause", "--reason", "checking the brief", "--key-contains", "paused")
            code, output = statewise(*pause, "--workflow", "drafts", "--yes", "--db", db)
            released.set()
            assert code == 0 and "1 of 1 item(s) changed" in output, output
            view = _settled(ops, "paused", lambda v: v["budgets"] and v["budgets"][0]["tokens"])
            assert view["status"] == "paused" and view["budgets"][0]["tokens"] == 1000
            resume = ("bulk", "resume", "--reason", "go on", "--key-contains", "paused")
            assert statewise(*resume, "--workflow", "drafts", "--yes", "--db", db)[0] == 0
            assert _settled(ops, "paused", lambda v: v["state"] == "review")["state"] == "review"
            assert asked(provider, "paused") == 1  # the kept spend refused a second call

            # 400 + 400 + 400 > 1000: the third run was cut short; the cost limit never fired,
            # since the model has no price.
            view = _settled(ops, "unpriced", lambda v: v["state"] == "review")
            assert asked(provider, "unpriced") == 3
            [workflow, *_] = view["budgets"]
            assert workflow["unpriced"] == ["openai:house-model-7b"]
            warning = "cost budget not enforced: model openai:house-model-7b has no known price"
            assert workflow["warning"].startswith(warning)

            csrf = login_csrf(ops)
            ops.post("/dashboard/login", data={"token": server.tokens["operator"], "csrf": csrf})
            page = ops.get("/dashboard/items/drafts/unpriced").text
            assert warning in page and "Budgets" in page and "1,200 / 1,000" in page

            metrics = {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(ops.get("/metrics").text)
                for sample in family.samples
            }
        labels = (("budget", "workflow"), ("measure", "tokens"), ("state", "write"))
        labels += (("workflow", "drafts"),)
        # This process's commits: `unpriced` cut short. (The command line's own process
        # committed the refusal of `paused` on resume.)
        assert metrics[("statewise_budget_exceeded_total", labels)] == 1
        tokens = [v for (name, _), v in metrics.items() if name == "statewise_model_tokens_total"]
        assert sum(tokens) == 400 * 3 + 1000  # the paused item's run is in the spend
        assert stuck_items(server.store_url) == []
    finally:
        next(yield_server, None)


async def _with_model_client(store: Store) -> Catalog:
    """The service's catalog, its agents on an HTTP client that keeps no connection open.

    The service's loop ends with the test's server thread, with no hook to close a client on
    it; a client without kept-alive connections leaves no socket behind.
    """
    client = httpx2.AsyncClient(limits=httpx2.Limits(max_keepalive_connections=0))
    return await load_catalog(store, [], ai={"http_client": client})


def _settled(client: Any, key: str, done: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The item once ``done`` holds for it (the service's runner moves it meanwhile)."""
    deadline = time.monotonic() + 20
    while True:
        view: dict[str, Any] = client.get(f"/api/items/drafts/{key}").json()
        if done(view) or time.monotonic() > deadline:
            return view
        time.sleep(0.05)
