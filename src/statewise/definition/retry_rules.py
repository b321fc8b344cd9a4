"""Checks of what a retry policy changes: an agent's per-attempt ``adjust`` and ``on_timeout``.

``adjust`` only means something to an agent (its model, settings and instructions), and only
in the agent's own ``retry:``, which is what its runner reads. Its model strings are checked
for shape here; whether the provider exists is checked when the agents are registered, by the
AI layer, which knows the providers. Setting names are checked against pydantic-ai's model
settings when it is installed (a provider's own settings, ``openai_...``, are left to
registration). ``on_timeout: previous`` needs a state to go back to, so it belongs to a
state's own command in a state items can be sent to from elsewhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from statewise.definition.agent_rules import agent_of, state_commands
from statewise.definition.model import Adjustment, RetryPolicy
from statewise.definition.rule_context import RuleContext
from statewise.definition.schema import Path, suggest

_LOCAL = "local"  # the offline model's whole model string
# Providers named in suggestions for a model string that is not `provider:name`.
_COMMON_PROVIDERS = ("openai", "anthropic", "google-gla", "groq", "mistral", "ollama", "vllm")


def check_adjust_place(c: RuleContext) -> None:
    """``adjust`` goes in an agent's own retry, where its runner reads it."""
    for state in c.definition.states.values():
        for path, command in state_commands(state):
            if not command.retry.adjust:
                continue
            where = ("states", state.name, *path, "retry", "adjust")
            agent = agent_of(command)
            spec = None if agent is None else c.definition.agents.get(agent)
            if agent is None:
                c.report(
                    f"`adjust` changes an agent's model, settings or instructions per retry; "
                    f"`{command.name}` is a command, not an agent",
                    where,
                )
            elif spec is not None and spec.retry != command.retry:
                c.report(
                    f"put `adjust` in agent `{agent}`'s own `retry:` (under `agents:`), which "
                    f"its every attempt reads",
                    where,
                )


def check_adjustments(c: RuleContext) -> None:
    """Each entry names a model as `provider:name`, known settings, and an attempt that runs."""
    for agent in c.definition.agents.values():
        here = ("agents", agent.name, "retry", "adjust")
        retries = agent.retry.attempts - 1
        if len(agent.retry.adjust) > max(retries, 0):
            c.report(
                f"agent `{agent.name}` has {len(agent.retry.adjust)} `adjust` entries but "
                f"{agent.retry.attempts} attempts, so it retries {max(retries, 0)} time(s); "
                f"raise `attempts` or drop the entries past that",
                here,
            )
        for index, entry in enumerate(agent.retry.adjust):
            _check_model(c, entry, (*here, index, "model"))
            _check_settings(c, entry, (*here, index))


def _check_model(c: RuleContext, entry: Adjustment, path: Path) -> None:
    model = entry.model
    if model is None or model == _LOCAL:
        return
    provider, sep, name = model.partition(":")
    if sep and provider and name:
        return
    close = difflib.get_close_matches(model, _COMMON_PROVIDERS, n=1)
    hint = f"; did you mean `{close[0]}:<model>`?" if close and not sep else ""
    c.report(
        f"model `{model}` must be `provider:name` (like `openai:gpt-4.1-mini` or "
        f"`ollama:llama3.2`) or `local`{hint}",
        path,
    )


def _check_settings(c: RuleContext, entry: Adjustment, path: Path) -> None:
    known = _model_settings()
    if known is None:
        return
    for key in entry.settings:
        if key in known:
            continue
        hint = suggest(key, known)
        if hint or "_" not in key:  # `openai_...`: a provider's own, checked at registration
            c.report(
                f"unknown key `{key}` in an `adjust` entry{hint} (an entry holds `model`, "
                f"`instructions` and model settings such as `temperature` or `max_tokens`)",
                (*path, key),
            )


def _model_settings() -> frozenset[str] | None:
    """pydantic-ai's model setting names, with statewise's own; None when it is not installed."""
    try:
        from pydantic_ai.settings import ModelSettings
    except ImportError:
        return None
    return frozenset(ModelSettings.__annotations__) | {"base_url", "api_key_env", "output_mode"}


def check_on_timeout(c: RuleContext) -> None:
    """``on_timeout: previous`` is a state's own command's, and the state has a way in."""
    definition = c.definition
    for state in definition.states.values():
        for path, command in state_commands(state):
            if not _goes_back(command.retry):
                continue
            where = ("states", state.name, *path, "retry", "on_timeout")
            if path[0] in ("branches", "map"):
                c.report(
                    "`on_timeout: previous` sends the item back, so it belongs to a state's own "
                    "command, not to a branch",
                    where,
                )
            elif state.name == definition.initial:
                c.report(
                    f"`on_timeout: previous` in the initial state `{state.name}`: an item "
                    f"starts here, so it has no previous state to go back to",
                    where,
                )
            elif state.max_visits is None:
                c.report(
                    f"`on_timeout: previous` sends items back through `{state.name}` again; give "
                    f"`{state.name}` a `max_visits` (and an `on_exhausted` state) so the round "
                    f"trips end",
                    where,
                )


def _goes_back(policy: RetryPolicy) -> bool:
    return policy.on_timeout is not None


RETRY_RULES: tuple[Callable[[RuleContext], None], ...] = (
    check_adjust_place,
    check_adjustments,
    check_on_timeout,
)
