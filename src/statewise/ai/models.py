"""From a model string to a pydantic-ai ``Model``: parsed once, built the way pydantic-ai does.

A model string is ``provider:name`` (``openai:gpt-4.1-mini``, ``anthropic:claude-sonnet-4-5``,
``ollama:llama3.2``, any provider pydantic-ai knows) or ``local``, the offline model. The
string is parsed when agents are registered, so a typo in a provider fails at start-up with a
suggestion; the ``Model`` itself is built on first use, so a missing key only matters for
agents that actually run.

Choices worth knowing:

* ``openai:`` speaks Chat Completions, the protocol every OpenAI-compatible server (vLLM,
  LM Studio, llama.cpp, proxies) also speaks; ``openai-responses:`` selects the Responses API.
* The endpoint of an ``openai:`` model is the agent's ``settings.base_url``, else
  ``AISettings.openai_base_url`` / ``$STATEWISE_OPENAI_BASE_URL``, else OpenAI. ``ollama:``
  uses ``$OLLAMA_BASE_URL``, else ``http://localhost:11434/v1``.
* The token limit (``settings.max_tokens``) goes out in the field the endpoint reads: OpenAI's
  own API takes ``max_completion_tokens``; every other OpenAI-compatible server (llama.cpp,
  Ollama, vLLM, LM Studio, proxies) gets ``max_tokens``, the field they all honour (llama.cpp
  ignores the newer one and generates until its context is full). pydantic-ai's profile key
  ``openai_chat_supports_max_completion_tokens`` makes that choice.
* Keys only ever come from the environment: the variable the agent's ``settings.api_key_env``
  names, else the provider's own (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ...).
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import httpx2
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model, infer_model, known_model_names
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.providers import Provider, infer_provider_class
from pydantic_ai.settings import ModelSettings

from statewise.ai.settings import (
    DEFAULT_OLLAMA_BASE_URL,
    LOCAL_MODEL,
    OLLAMA_BASE_URL_ENV,
    AISettings,
)
from statewise.definition.model import AgentSpec
from statewise.errors import ConfigurationError, PermanentError

# Agent settings statewise reads itself; every other key is a pydantic-ai model setting.
BASE_URL = "base_url"
API_KEY_ENV = "api_key_env"
OUTPUT_MODE = "output_mode"
STATEWISE_SETTINGS = frozenset({BASE_URL, API_KEY_ENV, OUTPUT_MODE})
# Providers pydantic-ai supports that have no entry in its list of known model names.
OPENAI_HOST = "api.openai.com"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
# What a keyless server of one's own is sent as its key (see ``_api_key``).
NO_KEY = "no-key"
_UNLISTED_PROVIDERS = (
    "ollama", "vllm", "litellm", "openrouter", "together", "fireworks", "azure", "nebius",
    "ovhcloud", "alibaba", "sambanova", "vercel", "github", "openai-responses",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed model string: which provider, which model, and what running on it implies.

    The offline ``local`` model differs from every provider, and the layer asks this object
    how, never the string: it runs in this process (``runs_locally``), so it is built here,
    its encoder is loaded before the first call is timed, it costs nothing, it computes on
    this process's CPU under one lock (``concurrency``), and it fills the output schema
    itself whatever output mode is asked (``output_mode``).
    """

    provider: str
    name: str

    @property
    def runs_locally(self) -> bool:
        """Whether this is the offline model, computed in this process rather than a provider."""
        return self.provider == LOCAL_MODEL

    def __str__(self) -> str:
        return self.provider if self.runs_locally else f"{self.provider}:{self.name}"

    def concurrency(self, settings: AISettings) -> int:
        """How many requests to this model's provider may be in flight at once.

        The operator's number for the provider wins. Else the offline model takes one: it
        computes under one lock, so more in flight gains nothing and only makes each request
        wait for the others.
        """
        fallback = 1 if self.runs_locally else settings.default_concurrency
        return settings.provider_concurrency.get(self.provider, fallback)

    def output_mode(self, spec: AgentSpec, mode: str) -> str:
        """How the agent's reply is obtained, for its audit record.

        ``local`` (the offline model fills the schema itself, whatever the mode), ``text``
        (no output schema: free text), else the structured mode the reply was asked in
        (``schema.OUTPUT_MODES``; under ``auto``, the one it found).
        """
        if self.runs_locally:
            return LOCAL_MODEL
        return "text" if spec.output is None else mode


def parse_model(text: str, agent: str) -> ModelRef:
    """Split ``provider:name`` and check the provider exists, suggesting the closest one."""
    if text == LOCAL_MODEL:
        return ModelRef(LOCAL_MODEL, LOCAL_MODEL)
    provider, sep, name = text.partition(":")
    if not sep or not provider or not name:
        raise ConfigurationError(
            f"agent {agent!r}: model {text!r} must be `provider:name` (like "
            f"`openai:gpt-4.1-mini` or `ollama:llama3.2`) or `local`"
        )
    if not _is_provider(provider):
        close = difflib.get_close_matches(provider, [*known_providers(), LOCAL_MODEL], n=1)
        hint = f"; did you mean `{close[0]}:{name}`?" if close else ""
        raise ConfigurationError(f"agent {agent!r}: unknown model provider {provider!r}{hint}")
    return ModelRef(provider, name)


@cache
def known_providers() -> tuple[str, ...]:
    """Provider names pydantic-ai can build, for suggestions."""
    listed = {name.split(":", 1)[0] for name in known_model_names() if ":" in name}
    return tuple(sorted(p for p in listed | set(_UNLISTED_PROVIDERS) if _is_provider(p)))


def _is_provider(name: str) -> bool:
    try:
        infer_provider_class(name)
    except ValueError:
        return False
    except ImportError:  # known, but its SDK is not installed: reported when it is built
        return True
    return True


def model_settings(spec: AgentSpec, settings: AISettings) -> ModelSettings:
    """The agent's pydantic-ai model settings; an unknown key fails at registration."""
    allowed = set(ModelSettings.__annotations__)
    chosen: dict[str, Any] = {"max_retries": settings.sdk_retries}
    for key, value in spec.settings.items():
        if key in STATEWISE_SETTINGS:
            continue
        if key not in allowed and not _provider_specific(key):
            close = difflib.get_close_matches(key, [*allowed, *STATEWISE_SETTINGS], n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            raise ConfigurationError(f"agent {spec.name!r}: unknown setting `{key}`{hint}")
        chosen[key] = value
    if "timeout" not in chosen and spec.retry.timeout is not None:
        # One HTTP request never outlives the attempt, so a hung request fails as a timeout
        # this layer can account for, rather than being cancelled from outside.
        chosen["timeout"] = spec.retry.timeout
    return cast(ModelSettings, chosen)


def _provider_specific(key: str) -> bool:
    """Whether ``key`` is a provider's own setting, like ``openai_reasoning_effort``."""
    families = {provider.split("-")[0].split("/")[-1] for provider in known_providers()}
    return key.split("_")[0] in families


def build_model(
    spec: AgentSpec, ref: ModelRef, settings: AISettings, profile: Mapping[str, Any] | None = None
) -> Model:
    """The pydantic-ai model for one agent; the local model is imported only when used.

    ``profile`` overrides what pydantic-ai assumes about the model (an output mode's tool
    choice or response format); a Chat Completions model also gets the token-limit field its
    endpoint reads (see the module docstring).
    """
    if ref.runs_locally:
        from statewise.ai.local import LocalModel

        return LocalModel(examples=spec.examples, knowledge=spec.knowledge)
    provider = _provider(spec, ref, settings)
    kind = "openai-chat" if ref.provider == "openai" else ref.provider
    model = infer_model(f"{kind}:{ref.name}", provider_factory=lambda _: provider)
    from pydantic_ai.models.openai import OpenAIChatModel  # only once a provider needs it

    if not isinstance(model, OpenAIChatModel):
        return model
    overrides: dict[str, Any] = dict(profile or {})  # an OpenAIModelProfile key joins below
    if not is_openai_itself(endpoint(spec, ref, settings), ref):
        overrides["openai_chat_supports_max_completion_tokens"] = False
    return type(model)(model.model_name, provider=provider, profile=cast(ModelProfile, overrides))


def endpoint(spec: AgentSpec, ref: ModelRef, settings: AISettings) -> str | None:
    """The base URL the agent's requests go to; None is the provider's own default."""
    return _base_url(spec, ref, settings)


def is_openai_itself(url: str | None, ref: ModelRef) -> bool:
    """Whether requests go to OpenAI's own API rather than a server that speaks its protocol."""
    if url is None:
        return ref.provider.startswith("openai")
    try:
        return httpx2.URL(url).host == OPENAI_HOST
    except httpx2.InvalidURL:  # the SDK reports the bad URL itself, when the request is built
        return False


def _provider(spec: AgentSpec, ref: ModelRef, settings: AISettings) -> Provider[Any]:
    """The provider with its endpoint, key and HTTP client; it reads its own env otherwise.

    A provider that cannot be built fails the attempt in statewise's words, naming the agent
    and provider, with pydantic-ai's explanation (the package to install, the variable to set)
    appended.
    """
    try:
        provider_class = infer_provider_class(ref.provider)
    except ImportError as exc:  # a provider pydantic-ai knows, whose SDK is not installed
        raise PermanentError(
            f"agent {spec.name!r}: provider {ref.provider!r} needs a package that is not "
            f"installed here ({exc})"
        ) from None
    offered = {
        "api_key": _api_key(spec, ref, settings),
        "base_url": _base_url(spec, ref, settings),
        "http_client": settings.http_client,
    }
    accepted = inspect.signature(provider_class).parameters
    for key, setting in (("base_url", BASE_URL), ("api_key", API_KEY_ENV)):
        if setting in spec.settings and key not in accepted:
            raise PermanentError(
                f"agent {spec.name!r}: provider {ref.provider!r} takes no `{setting}`; for an "
                f"OpenAI-compatible endpoint use an `openai:` model with `{BASE_URL}`"
            )
    try:
        return provider_class(
            **{k: v for k, v in offered.items() if v is not None and k in accepted}
        )
    except UserError as exc:  # pydantic-ai's refusal of a provider without key or endpoint
        raise PermanentError(
            f"agent {spec.name!r}: provider {ref.provider!r} cannot be set up: {exc}"
        ) from None


def _api_key(spec: AgentSpec, ref: ModelRef, settings: AISettings) -> str | None:
    """The key the agent names, else the provider's own; for a server of one's own, ``no-key``.

    An ``openai:`` model at a ``base_url`` other than OpenAI's, with no key anywhere, is a
    server of one's own. Servers started without a key (llama.cpp, Ollama, vLLM, LM Studio)
    ignore the header, but the OpenAI SDK will not send a request without one, so it gets the
    placeholder ``Bearer no-key`` (llama.cpp's own examples use it). A server that does want a
    key answers 401, a permanent error.
    """
    variable = spec.settings.get(API_KEY_ENV)
    if variable is None:
        url = _base_url(spec, ref, settings)
        compatible = ref.provider == "openai" and url is not None
        if compatible and not os.environ.get(OPENAI_KEY_ENV) and not is_openai_itself(url, ref):
            return NO_KEY
        return None
    key = os.environ.get(str(variable))
    if not key:
        raise PermanentError(
            f"agent {spec.name!r}: environment variable {variable} (named by "
            f"settings.{API_KEY_ENV}) is not set"
        )
    return key


def _base_url(spec: AgentSpec, ref: ModelRef, settings: AISettings) -> str | None:
    declared = _setting(spec.settings, BASE_URL)
    if declared:
        return declared
    if ref.provider in ("openai", "openai-chat", "openai-responses"):
        return settings.base_url_for_openai()
    if ref.provider == "ollama":
        return os.environ.get(OLLAMA_BASE_URL_ENV) or DEFAULT_OLLAMA_BASE_URL
    return None


def _setting(values: Mapping[str, Any], key: str) -> str | None:
    value = values.get(key)
    return None if value is None else str(value)
