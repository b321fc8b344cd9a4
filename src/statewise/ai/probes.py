"""What a configured model's endpoint supports, found by a few small requests.

``statewise models check`` runs :func:`probe` once per declared agent, before any item runs,
so that a server that cannot be reached, refuses every output mode, reports no usage or
ignores the token limit is found by the operator and not by the first thousand items. Each
probe sends, through the same models, profiles and limits the agents use:

1. one plain request capped at ``PROBE_TOKENS`` tokens: whether the endpoint answers at all
   (and how fast), whether it reports usage, and whether it honours the cap (it reports no
   more output tokens than asked);
2. for an agent with an output schema, one request per output mode (``schema.OUTPUT_MODES``)
   with that schema: the modes whose reply validates are the ones ``output_mode: auto`` can
   use, and the first of them is the one it will pick.

A failure is classified as an agent's would be (``failures.classify``) and scrubbed of keys.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.settings import ModelSettings

from statewise.ai.failures import UNSUPPORTED, classify, scrub
from statewise.ai.models import ModelRef, build_model, endpoint, model_settings, parse_model
from statewise.ai.schema import OUTPUT_MODES, check_output, mode_profile, output_spec
from statewise.ai.settings import AISettings
from statewise.definition.model import AgentSpec
from statewise.errors import TransientError

# The cap the token-limit probe asks for; a server that honours it reports at most this many.
PROBE_TOKENS = 8
_CAP_PROMPT = "Count from 1 to 100, one number a line."
_SHOWN = 160
_MODE_PROMPT = "This is a connectivity check. Reply with any output that fits the schema."


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """What one agent's model endpoint showed; ``None`` where it could not be told."""

    agent: str
    model: str
    endpoint: str
    reachable: bool
    modes: tuple[str, ...] = ()
    latency: float | None = None
    usage_reported: bool | None = None
    token_limit_honoured: bool | None = None
    error: str | None = None
    refused: Mapping[str, str] = field(default_factory=dict)
    """``error`` is why the endpoint could not be reached, else why each refused mode failed
    (shortened; ``refused`` keeps each in full)."""

    @property
    def works(self) -> bool:
        """Reachable, and (for an agent with an output schema) at least one mode works."""
        return self.reachable and bool(self.modes)


async def probe(
    spec: AgentSpec, settings: AISettings, shape: Mapping[str, Any] | type[BaseModel] | None
) -> ProbeReport:
    """Probe the model ``spec`` runs on (see the module docstring); ``shape`` is its output."""
    ref = parse_model(settings.model_for(spec.name, spec.model), spec.name)
    where = "in this process" if ref.runs_locally else endpoint(spec, ref, settings)
    base = ProbeReport(spec.name, str(ref), where or f"{ref.provider}'s own", reachable=False)
    if ref.runs_locally:  # nothing to reach: it fills the schema itself
        return ProbeReport(base.agent, base.model, base.endpoint, True, ("local",))
    chosen = dict(model_settings(spec, settings))
    capped = cast(ModelSettings, {**chosen, "max_tokens": PROBE_TOKENS})
    try:
        capping = _agent(spec, ref, settings, "tool", str)
        began = time.perf_counter()  # the request alone, not building the model
        answered = await capping.run(_CAP_PROMPT, model_settings=capped)
    except Exception as exc:  # every failure is the report, never a crash
        return ProbeReport(base.agent, base.model, base.endpoint, False, error=_said(exc))
    latency = time.perf_counter() - began
    usage = answered.usage
    reported = usage.input_tokens > 0 or usage.output_tokens > 0
    honoured = usage.output_tokens <= PROBE_TOKENS if reported else None
    modes: tuple[str, ...] = ("text",)
    refused: dict[str, str] = {}
    if shape is not None:
        modes, refused = await _working_modes(spec, ref, settings, shape, chosen)
    # Why each other mode failed is worth reading even when one works (a server flag to set).
    error = "; ".join(f"{mode}: {_short(why)}" for mode, why in refused.items()) or None
    return ProbeReport(
        base.agent, base.model, base.endpoint, True, modes, latency, reported, honoured, error,
        refused,
    )  # fmt: skip


async def _working_modes(
    spec: AgentSpec,
    ref: ModelRef,
    settings: AISettings,
    shape: Mapping[str, Any] | type[BaseModel],
    chosen: dict[str, Any],
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The output modes whose reply validated, and why each other one did not."""
    working: list[str] = []
    refused: dict[str, str] = {}
    for mode in OUTPUT_MODES:
        agent = _agent(spec, ref, settings, mode, output_spec(spec.name, shape, mode))
        if not isinstance(shape, type):
            agent.output_validator(_conforming(shape))
        try:
            await agent.run(_MODE_PROMPT, model_settings=cast(ModelSettings, chosen))
        except Exception as exc:  # a refused or failed mode is what the report is for
            refused[mode] = _said(exc)
            continue
        working.append(mode)
    return tuple(working), refused


def _conforming(schema: Mapping[str, Any]) -> Any:
    """An output validator holding replies to the inline schema, as the agent's own does."""

    def conforms(value: dict[str, Any]) -> dict[str, Any]:
        return check_output(schema, value)

    return conforms


def _agent(
    spec: AgentSpec, ref: ModelRef, settings: AISettings, mode: str, output: Any
) -> Agent[None, Any]:
    model = build_model(spec, ref, settings, profile=mode_profile(mode))
    return Agent(model, output_type=output, retries={"output": 1})


def _short(text: str) -> str:
    """One line of at most ``_SHOWN`` characters, for a table cell."""
    line = " ".join(text.split())
    return line if len(line) <= _SHOWN else line[: _SHOWN - 1] + "…"


def _said(exc: Exception) -> str:
    """The failure as an agent's would read: its kind and message, without keys."""
    error_class, message, _ = classify(exc)
    kind = "unreachable" if error_class is TransientError else error_class.code
    return scrub(f"{kind}: {message.removeprefix(UNSUPPORTED)}")
