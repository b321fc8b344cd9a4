"""Agents' templates read only what an item's context can hold.

A template renders with ``StrictUndefined``, so a misspelled variable (``{{ mesage }}``) fails
every item's agent call at run time. What a context holds is known only when the workflow
declares its start data (``input:``): then it is those keys, every command's result, every
person's decision and every event's data, and a template that reads anything else is
reported at load. Without ``input:`` nothing is said, rather than guessed.
"""

from __future__ import annotations

from collections.abc import Callable

from statewise.definition.agent_rules import state_commands
from statewise.definition.escalation import added_by_statewise
from statewise.definition.model import Definition
from statewise.definition.rule_context import RuleContext
from statewise.definition.schema import suggest

# Names the renderer adds next to the context keys (statewise.ai.prompts).
TEMPLATE_NAMES = frozenset({"context", "item", "conversations", "knowledge"})


def context_keys(definition: Definition, inputs: tuple[str, ...]) -> frozenset[str]:
    """Every key an item's context can hold: inputs, results, decisions and event data."""
    own = [s for s in definition.states.values() if not added_by_statewise(s)]
    results = {command.result for s in own for _, command in state_commands(s)}
    decisions = {s.task.result for s in own if s.task is not None}
    events = definition.external_events() | set(definition.events or ())
    return frozenset(inputs) | results | decisions | events


def _check_template_variables(c: RuleContext) -> None:
    inputs = c.declared.inputs
    if inputs is None or not c.complete:
        return
    try:
        from jinja2 import TemplateSyntaxError, meta
        from jinja2.sandbox import SandboxedEnvironment
    except ImportError:  # the `ai` extra is not installed; the runner reports that itself
        return
    environment = SandboxedEnvironment()
    keys = context_keys(c.definition, inputs)
    known = keys | TEMPLATE_NAMES | set(environment.globals)
    for agent in c.definition.agents.values():
        for key, text in (("instructions", agent.instructions), ("input", agent.input)):
            try:
                used = meta.find_undeclared_variables(environment.parse(text or ""))
            except TemplateSyntaxError:  # reported by the agent rules
                continue
            for name in sorted(used - known):
                hint = suggest(name, keys) or (
                    f"; declare it under `input:` or store it as a command `result` "
                    f"(the context can hold: {', '.join(sorted(keys))})"
                )
                c.report(
                    f"`{key}` of agent `{agent.name}` uses `{name}`, which no item's context "
                    f"holds: it is not an input key, a command result, a task decision or an "
                    f"event, so every call would fail{hint}",
                    ("agents", agent.name, key),
                )


TEMPLATE_RULES: tuple[Callable[[RuleContext], None], ...] = (_check_template_variables,)
