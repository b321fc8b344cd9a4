"""Configuration of the AI layer, from code or from the environment, never from the workflow.

A workflow file says *what* an agent does; where its model runs, what it may cost and how hard
a provider may be pushed is the operator's business, so it lives here. Credentials are not
configuration at all: they are read from environment variables at the moment a model is built
and are never stored on this object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx2

    from statewise.ai.usage import Price

MODEL_ENV = "STATEWISE_MODEL"
OPENAI_BASE_URL_ENV = "STATEWISE_OPENAI_BASE_URL"
PRICES_ENV = "STATEWISE_PRICES"
OLLAMA_BASE_URL_ENV = "OLLAMA_BASE_URL"
DEFAULT_OLLAMA_BASE_URL = "http://localhost:11434/v1"
LOCAL_MODEL = "local"


@dataclass(frozen=True, slots=True)
class AISettings:
    """How agents reach their models; every field has a safe default.

    Attributes:
        default_model: Model of agents that declare none; else ``$STATEWISE_MODEL``, else
            the offline ``local`` model, so a workflow runs with no key and no network.
        models: Per-agent model overrides by agent name; they win over the workflow's own
            ``model:``, so an operator can move one agent to another provider without
            editing the workflow.
        openai_base_url: An OpenAI-compatible endpoint (vLLM, LM Studio, a proxy) used by
            ``openai:`` models; else ``$STATEWISE_OPENAI_BASE_URL``, else OpenAI itself.
        prices: USD per million input/output tokens by ``provider:model`` or model name;
            they override ``prices_file`` and the bundled price list.
        prices_file: A JSON or YAML file ``{model: {input: x, output: y}}``; else
            ``$STATEWISE_PRICES``.
        cache: Whether to reuse a stored response for an identical request (same model,
            instructions, input, schema and history), so re-runs cost nothing.
        conversation_token_budget: Estimated tokens a per-item conversation keeps; the
            oldest exchanges are dropped first.
        output_retries: How often the model is shown a validation error and asked again
            within one attempt, before the attempt fails as invalid output.
        sdk_retries: Retries inside the provider SDK. Zero by default: the workflow's
            retry policy retries durably, with backoff, and records every attempt.
        default_concurrency: Requests in flight per provider when ``provider_concurrency``
            does not name it (the offline model's is 1: see ``ModelRef.concurrency``).
        provider_concurrency: Requests in flight per provider (``{"openai": 4}``).
        requests_per_minute: Optional request rate per provider, spaced evenly.
        http_client: An ``httpx2.AsyncClient`` for every provider (tests point it at local
            servers); by default each provider uses pydantic-ai's shared client.
        tracer_provider: An OpenTelemetry ``TracerProvider``: every model call becomes a span
            following the GenAI semantic conventions (pydantic-ai's instrumentation, without
            prompt or reply content); None traces nothing.

    """

    default_model: str | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    openai_base_url: str | None = None
    prices: Mapping[str, Price] = field(default_factory=dict)
    prices_file: str | Path | None = None
    cache: bool = False
    conversation_token_budget: int = 4000
    output_retries: int = 2
    sdk_retries: int = 0
    default_concurrency: int = 8
    provider_concurrency: Mapping[str, int] = field(default_factory=dict)
    requests_per_minute: Mapping[str, float] = field(default_factory=dict)
    http_client: httpx2.AsyncClient | None = field(default=None, repr=False)
    tracer_provider: Any = field(default=None, repr=False)

    def model_for(self, agent: str, declared: str | None) -> str:
        """The model string an agent runs on, by the precedence documented on the class."""
        return (
            self.models.get(agent)
            or declared
            or self.default_model
            or os.environ.get(MODEL_ENV)
            or LOCAL_MODEL
        )

    def base_url_for_openai(self) -> str | None:
        """The OpenAI-compatible endpoint ``openai:`` models use, if not OpenAI's own."""
        return self.openai_base_url or os.environ.get(OPENAI_BASE_URL_ENV) or None

    def prices_path(self) -> Path | None:
        """The user's price file, if one is configured."""
        chosen = self.prices_file or os.environ.get(PRICES_ENV)
        return Path(chosen) if chosen else None
