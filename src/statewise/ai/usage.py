"""What model calls cost: token counts from the messages, prices from a table the user extends.

Prices come from three layers, the first that knows the model wins: the user's
``AISettings.prices``, then the user's price file (``AISettings.prices_file`` or
``$STATEWISE_PRICES``, JSON or YAML ``{model: {input: x, output: y}}`` in USD per million
tokens), then the price list bundled with pydantic-ai (genai-prices), which pydantic-ai already
applied to each response. The offline ``local`` model is free. A model nobody prices costs
``None``: unknown, which is not the same as zero, and never an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, NonNegativeFloat, ValidationError
from pydantic_ai.messages import ModelMessage, ModelResponse

from statewise.ai.models import ModelRef
from statewise.ai.settings import AISettings
from statewise.errors import ConfigurationError

MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input and output tokens."""

    input: float
    output: float

    def of(self, input_tokens: int, output_tokens: int) -> float:
        """What that many tokens cost at this price."""
        return (input_tokens * self.input + output_tokens * self.output) / MILLION


class _PriceEntry(BaseModel):
    """One entry of a user's price file, checked at the edge."""

    model_config = ConfigDict(extra="forbid")

    input: NonNegativeFloat
    output: NonNegativeFloat


@dataclass(frozen=True, slots=True)
class Tokens:
    """Tokens and requests of one agent run, summed over its model responses."""

    input: int = 0
    output: int = 0
    requests: int = 0
    library_cost: Decimal | None = None


def count_tokens(messages: Iterable[ModelMessage]) -> Tokens:
    """Sum the usage every model response reported, with the bundled-price cost if all had one.

    Counting from the messages rather than the run result means a failed run, whose result
    never exists, is accounted for the same way as a successful one.
    """
    responses = [m for m in messages if isinstance(m, ModelResponse)]
    costs = [r.usage.cost for r in responses]
    known = all(cost is not None for cost in costs) and bool(costs)
    return Tokens(
        input=sum(r.usage.input_tokens for r in responses),
        output=sum(r.usage.output_tokens for r in responses),
        requests=len(responses),
        library_cost=sum((c for c in costs if c is not None), Decimal(0)) if known else None,
    )


class PriceTable:
    """The user's prices over the bundled ones; see the module docstring for the order."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)

    @classmethod
    def from_settings(cls, settings: AISettings) -> PriceTable:
        """The price file (if any) overridden by ``settings.prices``."""
        path = settings.prices_path()
        loaded = load_prices(path) if path is not None else {}
        return cls({**loaded, **settings.prices})

    def price(self, provider: str, model: str) -> Price | None:
        """The user's price for ``provider:model`` (or for the bare model name), if any."""
        return self._prices.get(f"{provider}:{model}") or self._prices.get(model)

    def cost(self, model: ModelRef, tokens: Tokens) -> float | None:
        """USD for ``tokens`` on ``model``, or None when no table knows the model."""
        price = self.price(model.provider, model.name)
        if price is not None:
            return round(price.of(tokens.input, tokens.output), 10)
        if model.runs_locally or tokens.input + tokens.output == 0:
            return 0.0  # offline, or a call that failed before spending anything
        if tokens.library_cost is not None:
            return float(tokens.library_cost)
        return None


def load_prices(path: Path) -> dict[str, Price]:
    """Read a JSON or YAML price file; every problem names the file and the model."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read the price file {path}: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"the price file {path} must map each model to its prices, like "
            f"`gpt-4.1-mini: {{input: 0.4, output: 1.6}}` (USD per million tokens)"
        )
    return {str(model): _price(path, str(model), entry) for model, entry in raw.items()}


def _price(path: Path, model: str, entry: object) -> Price:
    try:
        checked = _PriceEntry.model_validate(entry)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(
            f"the price of `{model}` in {path} needs `input` and `output` in USD per million "
            f"tokens: {problems}"
        ) from None
    return Price(checked.input, checked.output)


# Hex digits of the instructions' sha256 kept in the audit: enough to tell versions apart.
INSTRUCTIONS_HASH_DIGITS = 12


def instructions_version(template: str) -> str:
    """The short sha256 of an agent's instructions template, naming its version."""
    return hashlib.sha256(template.encode()).hexdigest()[:INSTRUCTIONS_HASH_DIGITS]


def usage_record(
    *,
    agent: str,
    provider: str,
    model: str,
    tokens: Tokens,
    cost: float | None,
    latency: float,
    tool_calls: Sequence[Mapping[str, Any]],
    cached: bool,
    outcome: str,
    instructions: str,
    output_mode: str,
    queued: float = 0.0,
) -> dict[str, Any]:
    """The audit row of one agent run, in the shape the store's cost report reads.

    ``instructions`` names the version of the agent's instructions (a short hash of their
    template) and ``output_mode`` how the reply was asked for, so a change in either can be
    told apart from a change in the model when decisions shift. ``latency`` is the requests'
    own time, from when each was sent; ``queued_ms`` the wait for the provider's limiter before
    them, kept apart so a slow queue is never mistaken for a slow model.
    """
    return {
        "agent": agent,
        "provider": provider,
        "model": model,
        "instructions": instructions,
        "output_mode": output_mode,
        "input_tokens": tokens.input,
        "output_tokens": tokens.output,
        "requests": tokens.requests,
        "cost": cost,
        "latency": round(latency, 6),
        "queued_ms": round(queued * 1000),
        "tool_calls": [dict(call) for call in tool_calls],
        "cached": cached,
        "outcome": outcome,
    }
