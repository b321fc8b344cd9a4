"""Provider failures become the statewise error that says who must act, with no key in it."""

from __future__ import annotations

import asyncio
import pickle

import pytest
from pydantic_ai.exceptions import (
    ContentFilterError,
    ModelHTTPError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)

from statewise.ai.failures import REDACTED, classify, scrub
from statewise.contract import CommandRegistry
from statewise.definition.model import ErrorKind
from statewise.errors import (
    CommandDefectError,
    CommandError,
    InvalidOutputError,
    PermanentError,
    TimedOutError,
    TransientError,
    UnsupportedRequestError,
)
from statewise.store.sqlite import SQLiteStore
from statewise.worker.commands import classify as worker_classify

from .conftest import ANTHROPIC_KEY, OPENAI_KEY, agent, on_anthropic, registered, workflow
from .servers import FakeProvider, Reply, error, malformed, openai_tool_call

OUTPUT = {"type": "object", "properties": {"answer": {"type": "string"}}}


def fail_once(
    server: FakeProvider, store: SQLiteStore, reply: Reply, *, anthropic: bool = False
) -> CommandError:
    """Run one attempt against a server that answers ``reply``; return what it raised."""
    spec = on_anthropic(server, output=OUTPUT) if anthropic else agent(output=OUTPUT)
    server.reply(reply)

    async def scenario() -> CommandError:
        async with registered(store, workflow(spec), openai=server) as agents:
            with pytest.raises(CommandError) as raised:
                await agents.run("classifier", {"message": "hi"})
        return raised.value

    return asyncio.run(scenario())


def test_a_429_is_transient_and_carries_retry_after(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    raised = fail_once(openai, store, error(429, "Rate limit reached", retry_after="7"))
    assert isinstance(raised, TransientError)
    assert raised.retry_after == 7.0
    assert "rate limited (retry after 7s)" in raised.message
    assert "Rate limit reached" in raised.message
    assert raised.usage is not None
    assert raised.usage["outcome"] == "transient"
    assert raised.usage["input_tokens"] == 0
    # The engine retries with backoff; the SDK must not retry behind its back.
    assert len(openai.requests) == 1


def test_a_429_from_anthropic_is_transient_too(anthropic: FakeProvider, store: SQLiteStore) -> None:
    raised = fail_once(anthropic, store, error(429, "slow down", retry_after="3"), anthropic=True)
    assert isinstance(raised, TransientError)
    assert raised.retry_after == 3.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(openai: FakeProvider, store: SQLiteStore, status: int) -> None:
    raised = fail_once(openai, store, error(status, "upstream exploded"))
    assert isinstance(raised, TransientError)
    assert f"HTTP {status}: upstream exploded" in raised.message
    assert len(openai.requests) == 1


def test_an_anthropic_overload_is_transient(anthropic: FakeProvider, store: SQLiteStore) -> None:
    raised = fail_once(anthropic, store, error(529, "Overloaded"), anthropic=True)
    assert isinstance(raised, TransientError)


def test_a_malformed_reply_is_transient(openai: FakeProvider, store: SQLiteStore) -> None:
    raised = fail_once(openai, store, malformed())
    assert isinstance(raised, TransientError)
    # What failed to decode is worded by pydantic-ai; the class and prefix are statewise's.
    assert "(openai:gpt-4o-mini): provider error: " in raised.message


def test_a_bad_key_is_permanent_and_never_shown(openai: FakeProvider, store: SQLiteStore) -> None:
    # Providers echo (part of) the key they rejected; the message must not carry it.
    reply = error(401, f"Incorrect API key provided: {OPENAI_KEY}. Bearer {OPENAI_KEY}")
    raised = fail_once(openai, store, reply)
    assert isinstance(raised, PermanentError)
    assert "HTTP 401" in raised.message
    assert OPENAI_KEY not in raised.message
    assert OPENAI_KEY not in repr(raised.usage)
    assert REDACTED in raised.message
    assert raised.__cause__ is None and raised.__suppress_context__
    assert OPENAI_KEY not in str(pickle.loads(pickle.dumps(raised)))


def test_a_bad_anthropic_key_is_permanent_and_never_shown(
    anthropic: FakeProvider, store: SQLiteStore
) -> None:
    raised = fail_once(
        anthropic, store, error(401, f"invalid x-api-key {ANTHROPIC_KEY}"), anthropic=True
    )
    assert isinstance(raised, PermanentError)
    assert ANTHROPIC_KEY not in raised.message


@pytest.mark.parametrize("status", [400, 404, 422])
def test_rejected_requests_are_permanent(
    openai: FakeProvider, store: SQLiteStore, status: int
) -> None:
    assert isinstance(fail_once(openai, store, error(status, "no")), PermanentError)


def test_a_bug_in_a_tool_is_a_command_defect_not_a_business_failure(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    registry = CommandRegistry()

    @registry.tool()
    def lookup(order: str) -> str:
        """Look the order up."""
        return {"a": 1}[order]  # type: ignore[return-value]  # the bug: a KeyError

    spec = agent("clerk", tools=("lookup",), output=OUTPUT)
    openai.reply(openai_tool_call("lookup", {"order": "ORD-7"}))

    async def scenario() -> CommandError:
        async with registered(store, workflow(spec), registry=registry, openai=openai) as agents:
            with pytest.raises(CommandError) as raised:
                await agents.run("clerk", {})
        return raised.value

    raised = asyncio.run(scenario())
    assert isinstance(raised, CommandDefectError)
    assert "KeyError" in raised.message and "ORD-7" in raised.message
    # The worker files it as a defect (the item fails unless `on: error` takes it).
    assert worker_classify(raised)[0] is ErrorKind.COMMAND_ERROR


def test_an_unreachable_provider_is_transient(store: SQLiteStore) -> None:
    with_nobody_listening = FakeProvider()  # bound, never started: the port refuses
    url = with_nobody_listening.url
    with_nobody_listening.stop_unstarted()
    spec = agent(output=OUTPUT, settings={"base_url": url})

    async def scenario() -> CommandError:
        async with registered(store, workflow(spec)) as agents:
            with pytest.raises(CommandError) as raised:
                await agents.run("classifier", {})
        return raised.value

    assert isinstance(asyncio.run(scenario()), TransientError)


def test_a_tool_raising_a_statewise_error_keeps_its_class_and_gains_usage(
    openai: FakeProvider, store: SQLiteStore
) -> None:
    registry = CommandRegistry()

    @registry.tool()
    def charge(amount: int) -> str:
        """Charge the customer."""
        raise TransientError("the payment service is busy", retry_after=30)

    spec = agent("cashier", tools=("charge",), output=OUTPUT)
    openai.reply(openai_tool_call("charge", {"amount": 5}))

    async def scenario() -> CommandError:
        async with registered(store, workflow(spec), registry=registry, openai=openai) as agents:
            with pytest.raises(CommandError) as raised:
                await agents.run("cashier", {})
        return raised.value

    raised = asyncio.run(scenario())
    assert isinstance(raised, TransientError)
    assert raised.message == "agent 'cashier' (openai:gpt-4o-mini): the payment service is busy"
    assert raised.retry_after == 30
    assert raised.usage is not None and raised.usage["requests"] == 1


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (UnexpectedModelBehavior("Exceeded maximum output retries (2)"), InvalidOutputError),
        (
            UsageLimitExceeded("The next request would exceed the request_limit of 4"),
            InvalidOutputError,
        ),
        (ContentFilterError("blocked"), PermanentError),
        (UserError("Set the `OPENAI_API_KEY` environment variable"), PermanentError),
        (ModelHTTPError(418, "m", body={"message": "teapot"}), PermanentError),
        (ModelHTTPError(599, "m"), TransientError),
        (TimeoutError("read timed out"), TimedOutError),
        (ConnectionResetError("reset"), TransientError),
        (ValueError("a bug in a tool"), CommandDefectError),
        (ImportError("Please install the `groq` package"), PermanentError),
    ],
)
def test_classification(exc: Exception, expected: type[CommandError]) -> None:
    assert classify(exc)[0] is expected


def test_scrub_removes_environment_secrets_and_key_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "opaque-credential-value")
    text = scrub(
        "token opaque-credential-value, key sk-proj-abcdefghijklmnop, "
        "url https://x.test/v1?key=AIzaSyA-very-secret-value&alt=json, Bearer abc.def.ghi.jkl"
    )
    assert "opaque-credential-value" not in text
    assert "sk-proj-abcdefghijklmnop" not in text
    assert "AIzaSyA-very-secret-value" not in text
    assert "abc.def.ghi.jkl" not in text
    assert "&alt=json" in text
    assert scrub("nothing secret here: status 500") == "nothing secret here: status 500"
    monkeypatch.setenv("TEAM_LLM_CREDS", "plain-looking-value")
    assert scrub("plain-looking-value", {"TEAM_LLM_CREDS"}) == REDACTED


def test_the_variable_an_agent_names_is_scrubbed(
    openai: FakeProvider, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_LLM_CREDS", "plain-looking-value")
    spec = agent(output=OUTPUT, settings={"api_key_env": "TEAM_LLM_CREDS"})
    openai.reply(error(401, "unknown key plain-looking-value"))

    async def scenario() -> CommandError:
        async with registered(store, workflow(spec), openai=openai) as agents:
            with pytest.raises(CommandError) as raised:
                await agents.run("classifier", {})
        return raised.value

    raised = asyncio.run(scenario())
    assert "plain-looking-value" not in raised.message
    assert openai.requests[0].headers["authorization"] == "Bearer plain-looking-value"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        # llama-cpp-python's server on a forced tool_choice, and on a json_schema format.
        (500, "AssertionError: tool_choice must be 'auto' (got 'required')"),
        (500, "response_format.type\n  Input should be 'text' or 'json_object'"),
        # llama-server (C++) of 2024 on a json_schema format.
        (500, 'response_format type must be one of "text" or "json_object", but got: json_schema'),
        # vLLM started without the tool-calling flags.
        (400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser'),
        # Ollama serving a model whose template has no tools.
        (400, "registry.ollama.ai/library/smollm2:135m does not support tools"),
    ],
)
def test_a_refused_feature_is_a_configuration_error_not_an_outage(
    openai: FakeProvider, store: SQLiteStore, status: int, message: str
) -> None:
    raised = fail_once(openai, store, error(status, message))
    assert isinstance(raised, UnsupportedRequestError)
    assert worker_classify(raised)[0] is ErrorKind.PERMANENT
    assert "the server does not support this request" in raised.message
    assert message.splitlines()[-1].strip() in raised.message
    assert raised.usage is not None
    assert raised.usage["outcome"] == "unsupported_request"
    assert len(openai.requests) == 1
