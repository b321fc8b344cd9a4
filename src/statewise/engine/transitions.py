"""Deciding which transition fires: pure, and explained for the audit trail."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from statewise.definition.model import Definition, State, Transition
from statewise.engine.item import Item

JSON = Any


@dataclass(frozen=True, slots=True)
class Selection:
    """The transition that fired, its position, and the guard values that decided it.

    ``rejected`` holds the guards on the same event tried before it and found false, each as
    ``{"condition": source, "values": what it read}``: the "why" of an ``else``.
    """

    transition: Transition
    index: int
    condition: str | None
    values: dict[str, JSON] = field(default_factory=dict)
    rejected: tuple[dict[str, JSON], ...] = ()


def condition_facts(
    definition: Definition,
    item: Item,
    context: Mapping[str, JSON],
    event: str,
    event_data: Mapping[str, JSON] | None = None,
    error: Mapping[str, str] | None = None,
) -> dict[str, JSON]:
    """Everything a condition may read: the context plus the engine's own facts.

    Every state appears in ``visits`` (zero if never entered) so that budget guards such as
    ``visits.enrich < 3`` never trip over a missing key.
    """
    facts = dict(context)
    facts["visits"] = {name: item.visits.get(name, 0) for name in definition.states}
    facts["attempts"] = item.attempt
    facts["item"] = {
        "key": item.key,
        "workflow": item.workflow,
        "version": item.version,
        "state": item.state,
    }
    facts["event"] = {"name": event, "data": dict(event_data or {})}
    facts["error"] = dict(error) if error else None
    return facts


def select_transition(state: State, event: str, facts: Mapping[str, JSON]) -> Selection | None:
    """First transition on ``event`` whose guard holds (or the ``else``), in written order.

    Raises ConditionError when a guard cannot be evaluated; the caller turns that into an
    ``error`` event so the failure is recorded, never swallowed. The guards found false on the
    way are kept in the selection, with the values they read.
    """
    rejected: list[dict[str, JSON]] = []
    for index, transition in enumerate(state.transitions):
        if transition.on != event:
            continue
        when = transition.when
        if when is None:
            condition = "else" if transition.is_else else None
            return Selection(transition, index, condition, rejected=tuple(rejected))
        if when.is_true(facts):
            values = when.read_values(facts)
            return Selection(transition, index, when.source, values, tuple(rejected))
        rejected.append({"condition": when.source, "values": when.read_values(facts)})
    return None


def false_guards(state: State, event: str, facts: Mapping[str, JSON]) -> tuple[JSON, ...]:
    """Every guard on ``event`` with the values it read: once nothing matched, all were false.

    Only called on that rare path, so the guards' second evaluation costs the hot path nothing.
    """
    return tuple(
        {"condition": t.when.source, "values": t.when.read_values(facts)}
        for t in state.transitions
        if t.on == event and t.when is not None
    )


def accepted_events(state: State) -> list[str]:
    """Event names this state has transitions for, in written order, without repeats."""
    return list(dict.fromkeys(t.on for t in state.transitions))
