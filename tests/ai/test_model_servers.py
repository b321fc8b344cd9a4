"""Agents against local servers that behave as llama.cpp, Ollama, vLLM and OpenAI do.

One server per kind for the whole module (see ``model_servers`` for what each reproduces and
where that comes from); each test reads only the requests it caused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from statewise.ai.agents import _WORKING_MODES
from statewise.ai.models import NO_KEY, build_model, is_openai_itself, parse_model
from statewise.ai.settings import AISettings
from statewise.cli import app
from statewise.errors import PermanentError, UnsupportedRequestError
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, registered, workflow
from .model_servers import RUNAWAY_TOKENS, llama_cpp, ollama, openai_api, vllm
from .servers import FakeProvider, serving

SAMPLE = {"category": "billing"}
OUTPUT = {
    "type": "object",
    "properties": {"category": {"type": "string", "enum": ["billing", "shipping"]}},
    "required": ["category"],
}
KINDS = {"llama.cpp": llama_cpp, "ollama": ollama, "vllm": vllm, "openai": openai_api}


@pytest.fixture(scope="module")
def model_servers() -> Iterator[dict[str, FakeProvider]]:
    """One local server per kind, started once for the module."""
    started: dict[str, FakeProvider] = {}
    try:
        for kind, behaviour in KINDS.items():
            server = started[kind] = FakeProvider()
            server.always(behaviour(SAMPLE))
            server.start()
        yield started
    finally:
        for server in started.values():
            server.stop()


def fresh(server: FakeProvider) -> FakeProvider:
    """The server with the requests of earlier tests forgotten."""
    server.requests.clear()
    return server


def run(store: SQLiteStore, server: FakeProvider, **settings: Any) -> Any:
    """One attempt of an agent with ``settings`` on ``server``; what it returned."""
    spec = agent(output=OUTPUT, settings={"base_url": server.url, **settings})

    async def scenario() -> Any:
        async with registered(store, workflow(spec)) as agents:
            return await agents.run("classifier", {"message": "my invoice is wrong"})

    return asyncio.run(scenario())


def test_the_token_limit_goes_out_as_max_tokens_to_a_compatible_server(
    model_servers: dict[str, FakeProvider], store: SQLiteStore
) -> None:
    server = fresh(model_servers["llama.cpp"])
    result = run(store, server, output_mode="prompted", max_tokens=64)
    body = server.requests[0].body
    assert body["max_tokens"] == 64
    assert "max_completion_tokens" not in body
    assert result.value == SAMPLE
    assert result.usage["output_tokens"] < RUNAWAY_TOKENS


def test_openai_itself_keeps_max_completion_tokens() -> None:
    ref = parse_model("openai:gpt-4o-mini", "classifier")
    assert is_openai_itself(None, ref)
    assert is_openai_itself("https://api.openai.com/v1", ref)
    assert not is_openai_itself("http://127.0.0.1:8080/v1", ref)
    own = build_model(agent(), ref, AISettings())
    assert own.profile.get("openai_chat_supports_max_completion_tokens") is not False
    served = build_model(
        agent(settings={"base_url": "http://127.0.0.1:8080/v1"}), ref, AISettings()
    )
    assert served.profile.get("openai_chat_supports_max_completion_tokens") is False


def test_a_keyless_server_of_ones_own_gets_the_documented_placeholder(
    model_servers: dict[str, FakeProvider], store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    server = fresh(model_servers["llama.cpp"])
    assert run(store, server, output_mode="prompted", max_tokens=64).value == SAMPLE
    assert server.requests[0].headers["authorization"] == f"Bearer {NO_KEY}"


def test_a_server_that_wants_a_key_and_gets_none_is_a_permanent_error(
    model_servers: dict[str, FakeProvider], store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    server = fresh(model_servers["openai"])
    with pytest.raises(PermanentError, match="HTTP 401: You didn't provide an API key") as raised:
        run(store, server)
    assert not isinstance(raised.value, UnsupportedRequestError)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("kind", "mode", "refused"),
    [
        # llama.cpp asserts on a forced tool choice, and takes `auto`.
        ("llama.cpp", "tool-auto", ["tool"]),
        # Ollama's model has no tools at all; its JSON-schema format works.
        ("ollama", "native", ["tool", "tool-auto"]),
        # vLLM forces the tool call by guided decoding.
        ("vllm", "tool", []),
        ("openai", "tool", []),
    ],
)
def test_auto_finds_the_first_mode_the_server_takes_and_remembers_it(
    model_servers: dict[str, FakeProvider],
    store: SQLiteStore,
    kind: str,
    mode: str,
    refused: list[str],
) -> None:
    server = fresh(model_servers[kind])
    _WORKING_MODES.clear()
    result = run(store, server, max_tokens=64)  # output_mode: auto, the default at a base_url
    assert result.value == SAMPLE
    assert result.usage["output_mode"] == mode
    assert result.usage["outcome"] == "ok"
    assert len(server.requests) == len(refused) + 1  # each refusal once, never retried
    # The next attempt goes straight to the mode that worked.
    server.requests.clear()
    assert run(store, server, max_tokens=64).usage["output_mode"] == mode
    assert len(server.requests) == 1


def test_a_mode_the_server_refuses_is_a_configuration_error_naming_its_message(
    model_servers: dict[str, FakeProvider], store: SQLiteStore
) -> None:
    server = fresh(model_servers["llama.cpp"])
    with pytest.raises(UnsupportedRequestError, match="Input should be 'text' or 'json_object'"):
        run(store, server, output_mode="native")
    assert len(server.requests) == 1


CHECKED = """\
workflow: checks
agents:
  {agent}:
    model: openai:{model}
    instructions: Classify the message.
    input: "{{{{ message }}}}"
    settings: {{base_url: "{url}"}}
    output:
      type: object
      properties:
        category: {{type: string, enum: [billing, shipping]}}
      required: [category]
states:
  start: {{kind: initial, agent: {agent}, transitions: [{{to: done}}]}}
  done: {{kind: final}}
"""


def models_check(tmp_path: Path, agent: str, url: str, model: str = "smollm2") -> tuple[int, Any]:
    """``statewise models check`` on a workflow whose one agent runs at ``url``, as JSON."""
    path = tmp_path / f"{agent}.yaml"
    path.write_text(CHECKED.format(agent=agent, model=model, url=url))
    result = CliRunner().invoke(app, ["models", "check", "--workflow", str(path), "-f", "json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    rows = json.loads(result.stdout[: result.stdout.rindex("]") + 1])
    return result.exit_code, rows[0]


@pytest.mark.parametrize(
    ("kind", "modes"),
    [
        ("llama.cpp", ["tool-auto", "prompted-json", "prompted"]),
        ("ollama", ["native", "prompted-json", "prompted"]),
        ("vllm", ["tool", "native", "prompted-json", "prompted"]),
        ("openai", ["tool", "tool-auto", "native", "prompted-json", "prompted"]),
    ],
)
def test_models_check_tells_what_each_server_supports(
    model_servers: dict[str, FakeProvider],
    tmp_path: Path,
    kind: str,
    modes: list[str],
) -> None:
    server = fresh(model_servers[kind])
    code, row = models_check(tmp_path, "classifier", server.url)
    assert code == 0
    assert row["endpoint"] == server.url
    assert row["reachable"] is True
    assert row["modes"] == modes
    assert row["usage_reported"] is True
    assert row["token_limit_honoured"] is True  # max_tokens, the field each of them reads
    assert row["latency"] > 0
    assert set(row["refused"]) == {
        "tool",
        "tool-auto",
        "native",
        "prompted-json",
        "prompted",
    } - set(modes)


def test_models_check_fails_for_a_server_that_cannot_be_reached(tmp_path: Path) -> None:
    closed = FakeProvider()
    closed.stop_unstarted()
    code, row = models_check(tmp_path, "writer", closed.url)
    assert code == 1
    assert row["reachable"] is False
    assert row["error"].startswith("unreachable: ")
    assert row["modes"] == []


def test_models_check_shows_a_server_that_ignores_the_token_limit(tmp_path: Path) -> None:
    with serving() as server:
        server.always(replace(llama_cpp(SAMPLE), token_fields=()))
        code, row = models_check(tmp_path, "writer", server.url)
    assert code == 0  # usable, but every request runs to the end of the context
    assert row["token_limit_honoured"] is False


def test_models_check_checks_only_the_agents_named_and_refuses_unknown_ones(
    model_servers: dict[str, FakeProvider], tmp_path: Path
) -> None:
    server = fresh(model_servers["vllm"])
    path = tmp_path / "one.yaml"
    path.write_text(CHECKED.format(agent="classifier", model="m", url=server.url))
    check = ["models", "check", "--workflow", str(path), "-f", "json"]
    unknown = CliRunner().invoke(app, [*check, "--agent", "clas%sifier\x00é"])
    assert unknown.exit_code == 2
    assert "no agent" in unknown.output
    assert server.requests == []
    named = CliRunner().invoke(app, [*check, "--agent", "classifier"])
    assert named.exit_code == 0, named.output
    assert [row["agent"] for row in json.loads(named.stdout)] == ["classifier"]


def test_a_base_url_that_is_not_a_url_is_reported_not_a_crash(tmp_path: Path) -> None:
    code, row = models_check(tmp_path, "writer", "http://[::1:bad")
    assert code == 1
    assert row["reachable"] is False and row["error"]
