"""What a workflow declares about the shape of its data, read as types for the checks.

A context key is typed only when every stage that writes it declares the shape of what it
writes: an agent with an ``output:`` schema (or a registered output model), a command with a
``result_schema:`` (or a registered result model). Everything else (start data, event data
kept under the event's name, a person's decision, a parallel state's results) stays dynamic,
and no check guesses about it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from statewise.conditions import Condition
from statewise.definition.agent_rules import agent_of, state_commands, state_tasks
from statewise.definition.escalation import added_by_statewise
from statewise.definition.model import Command, Definition
from statewise.definition.schema import Path

JSON = Any
Schema = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Declarations:
    """What a workflow declares besides its states and events; ``None``: undeclared, unchecked.

    ``schemas`` are the JSON Schemas of registered result and output models by name (a
    ``--commands`` module's pydantic models), so conditions can be checked against them too.
    """

    inputs: tuple[str, ...] | None = None
    commands: frozenset[str] | None = None
    schemas: Mapping[str, Schema] | None = None


def conditions_of(definition: Definition) -> Iterator[tuple[Path, Condition]]:
    """Every condition of ``definition`` with the path it is written at."""
    for state in definition.states.values():
        for index, transition in enumerate(state.transitions):
            if transition.when is not None:
                yield ("states", state.name, "transitions", index, "when"), transition.when
        if state.parallel is not None and state.parallel.over is not None:
            yield ("states", state.name, "map", "over"), state.parallel.over


def command_schema(
    definition: Definition, command: Command, schemas: Mapping[str, Schema] | None
) -> Schema | None:
    """The declared shape of ``command``'s result, or None when it does not declare one."""
    agent = agent_of(command)
    if agent is None:
        if command.result_schema is not None:
            return command.result_schema
        return None if schemas is None else schemas.get(command.name)
    spec = definition.agents.get(agent)
    output = None if spec is None else spec.output
    if isinstance(output, str):
        return None if schemas is None else schemas.get(output)
    return output


def command_at(
    definition: Definition, state: str, branch: str | None, name: str | None = None
) -> Command | None:
    """The command a state visit runs: the state's own, a named branch's, or its map's.

    In a branch of several steps, the step's command called ``name``.
    """
    found = definition.states.get(state)
    if found is None:
        return None
    fan_out = found.parallel
    if fan_out is None or branch is None:
        return found.command
    named = next((b for b in fan_out.branches if b.name == branch), None)
    if named is None:
        return fan_out.map_command
    return next((c for c in named.commands if name is None or c.name == name), None)


def typed_results(
    definition: Definition, schemas: Mapping[str, Schema] | None
) -> dict[str, Schema]:
    """Each context key whose every writer declares one and the same shape, with that shape."""
    writers: dict[str, list[Schema | None]] = {}
    for state in definition.states.values():
        if added_by_statewise(state):
            continue
        for _, task in state_tasks(state):
            writers.setdefault(task.result, []).append(None)
        for path, command in state_commands(state):
            own = path in (("command",), ("agent",))
            schema = command_schema(definition, command, schemas) if own else None
            writers.setdefault(command.result, []).append(schema)
    for event in definition.external_events() | set(definition.events or ()):
        writers.setdefault(event, []).append(None)  # event data is kept under its name
    for name in definition.inputs or ():
        writers.setdefault(name, []).append(None)
    typed: dict[str, Schema] = {}
    for key, found in writers.items():
        first = found[0]
        if first is not None and all(schema == first for schema in found):
            typed[key] = first
    return typed


def undeclared_field(schema: Schema, fields: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """The first of ``fields`` (a dotted path into the data) its schema's ``properties`` lack.

    Returns that path and the names the schema does declare there; None when every field is
    declared, or where a schema lists no ``properties`` and so cannot say.
    """
    current: object = schema
    for depth, name in enumerate(fields):
        properties = current.get("properties") if isinstance(current, Mapping) else None
        if not isinstance(properties, Mapping):
            return None
        if name not in properties:
            return ".".join(fields[: depth + 1]), sorted(properties)
        current = properties[name]
    return None


def field_schema(schema: Schema, fields: tuple[str, ...]) -> Schema | None:
    """The schema of the field at ``fields`` below ``schema``, or None where none is declared."""
    current: object = schema
    for name in fields:
        properties = current.get("properties") if isinstance(current, Mapping) else None
        current = properties.get(name) if isinstance(properties, Mapping) else None
    return current if isinstance(current, Mapping) else None


def labels(schema: Schema | None) -> list[str] | None:
    """The string labels an ``enum`` allows, or None when the field is not an enum of text."""
    enum = None if schema is None else schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(value, str) for value in enum):
        return list(enum)
    return None


class Untyped(Exception):
    """A schema whose values have no single CEL type: the data stays dynamic."""


# A value of each JSON Schema type as CEL sees it; numbers are doubles, integers ints.
_SAMPLES: dict[str, JSON] = {"integer": 1, "number": 1.5, "string": "text", "boolean": True}


def sample(schema: Schema, depth: int = 0) -> JSON:
    """A value every field of which has the CEL type ``schema`` declares for it.

    An ``enum`` gives its first value, an object every declared property, an array one
    element. Raises Untyped where a type is missing or a union (``[integer, "null"]``), and
    past a depth no hand-written schema reaches (a recursive ``$ref`` is not followed).
    """
    if depth > 32:
        raise Untyped
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if not isinstance(kind, str):
        raise Untyped
    if kind in _SAMPLES:
        return _SAMPLES[kind]
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        return {
            str(name): sample(field, depth + 1)
            for name, field in properties.items()
            if isinstance(field, Mapping)
        }
    if kind == "array":
        items = schema.get("items")
        return [sample(items, depth + 1)] if isinstance(items, Mapping) else []
    raise Untyped  # null, or a type JSON Schema does not have


def type_name(schema: Schema | None) -> str | None:
    """The declared JSON Schema ``type`` of a field, when it names one."""
    kind = None if schema is None else schema.get("type")
    return kind if isinstance(kind, str) else None
