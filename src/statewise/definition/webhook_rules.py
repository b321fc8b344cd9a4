"""Checks of the states that send a webhook (``webhook: {to, payload}``).

A webhook runs as the state's command, so the general rules (results, retries) apply to it
unchanged; the rules here check what only a webhook has: a destination that is declared and
receives statewise's JSON, a state that runs it on entry, and a payload path that names a
value some stage puts in the context (and, when that stage declares its result's shape, a
field that shape has).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from statewise.definition.agent_rules import agent_of, state_commands
from statewise.definition.declared_types import undeclared_field
from statewise.definition.model import (
    Command,
    Definition,
    Preset,
    State,
    StateKind,
)
from statewise.definition.rule_context import RuleContext
from statewise.definition.schema import suggest


def _senders(definition: Definition) -> list[State]:
    return [s for s in definition.states.values() if s.webhook is not None]


def check_destinations(c: RuleContext) -> None:
    """Each webhook goes to a declared destination that takes statewise's JSON body."""
    declared = c.definition.destinations
    for state in _senders(c.definition):
        assert state.webhook is not None
        to, path = state.webhook.to, ("states", state.name, "webhook", "to")
        destination = declared.get(to)
        if destination is None:
            listing = ", ".join(f"`{name}`" for name in declared) or "none"
            c.report(
                f"state `{state.name}` sends a webhook to `{to}`, which is not declared under "
                f"`destinations:`{suggest(to, declared)} (declared: {listing})",
                path,
            )
        elif destination.preset is Preset.CHAT:
            c.report(
                f"state `{state.name}` sends a webhook to `{to}`, a `preset: chat` destination; "
                f"a state's webhook posts statewise's JSON body, so declare a destination "
                f"without `preset: chat` for it",
                path,
            )


def check_sender_kind(c: RuleContext) -> None:
    """A webhook is sent on entering the state, so the state must run work on entry."""
    for state in _senders(c.definition):
        if state.kind not in (StateKind.NORMAL, StateKind.INITIAL) or state.parallel:
            c.report(
                f"state `{state.name}` is `kind: {state.kind}`{_branched(state)} and cannot "
                f"send a webhook; a webhook is sent on entering a plain state",
                ("states", state.name, "webhook"),
            )


def _branched(state: State) -> str:
    return " with branches" if state.parallel is not None else ""


def check_payload(c: RuleContext) -> None:
    """The payload path starts at an input key, a command result or a task decision."""
    inputs = c.declared.inputs
    if inputs is None or not c.complete:
        return
    shapes: dict[str, Mapping[str, object] | None] = {}
    for state in c.definition.states.values():
        for _, command in state_commands(state):
            shapes[command.result] = _shape(c, command)
        if state.task is not None:
            shapes[state.task.result] = None
    known = set(inputs) | set(shapes)
    for state in _senders(c.definition):
        assert state.webhook is not None
        payload = state.webhook.payload
        root, *fields = payload.split(".")
        path = ("states", state.name, "webhook", "payload")
        if root not in known:
            c.report(
                f"webhook payload `{payload}` starts at `{root}`, which is not an input key, a "
                f"command result or a task decision{suggest(root, known)}",
                path,
            )
            continue
        shape = shapes.get(root)
        missing = None if shape is None or not fields else undeclared_field(shape, tuple(fields))
        if missing is not None:
            field, names = missing
            listing = ", ".join(f"`{n}`" for n in names) or "nothing"
            c.report(
                f"webhook payload `{payload}` reads `{field}`, which the result `{root}` does "
                f"not declare{suggest(field.rsplit('.', 1)[-1], names)} (it declares: {listing})",
                path,
            )


def _shape(c: RuleContext, command: Command) -> Mapping[str, object] | None:
    """The JSON Schema a command's result declares, or an agent's inline output, if any."""
    if command.result_schema is not None:
        return command.result_schema
    agent = agent_of(command)
    spec = None if agent is None else c.definition.agents.get(agent)
    if spec is not None and isinstance(spec.output, Mapping):
        return spec.output
    return (c.declared.schemas or {}).get(command.name)


WEBHOOK_RULES: tuple[Callable[[RuleContext], None], ...] = (
    check_destinations,
    check_sender_kind,
    check_payload,
)
