"""Agents against local servers that behave as llama.cpp, Ollama, vLLM and OpenAI do.

One server per kind for the whole module (see ``model_servers`` for what each reproduces and
where that comes from); each test reads only the requests it caused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from statewise.ai.models import NO_KEY, build_model, is_openai_itself, parse_model
from statewise.ai.settings import AISettings
from statewise.errors import PermanentError, UnsupportedRequestError
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, registered, workflow
from .model_servers import RUNAWAY_TOKENS, llama_cpp, ollama, openai_api, vllm
from .servers import FakeProvider

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
