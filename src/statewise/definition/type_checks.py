"""Checks that know types: conditions and examples against the shapes a workflow declares.

A misspelled label (``classify.category == "hardwear"``) is a valid CEL expression that is
simply never true, so without types it passes silently; so does a condition reading a field the
agent never returns, or multiplying an integer by a double, which CEL refuses at run time.
Wherever a result's shape is declared (see ``declared_types``) these are reported at load.

The CEL library statewise uses has no type checker (it compiles to no checked expression), so
type clashes are found by CEL itself: a condition whose every variable is typed is run once
over sample values of the declared types, and CEL's "no such overload" is a clash any real data
of those types meets too. Undeclared data stays dynamic and is never guessed at.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping

from statewise.conditions import Condition, local_names
from statewise.definition.agent_rules import agent_of, state_commands
from statewise.definition.data_schema import schema_error
from statewise.definition.declared_types import (
    Schema,
    Untyped,
    conditions_of,
    field_schema,
    labels,
    sample,
    type_name,
    typed_results,
    undeclared_field,
)
from statewise.definition.model import Definition
from statewise.definition.rule_context import RuleContext
from statewise.definition.schema import Path, suggest

_STRING = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
_FIELD = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+"
# `path == "label"`, `"label" != path`, `"label" in path` (a list of labels).
_COMPARISONS = (
    re.compile(rf"(?<![\w.])(?P<path>{_FIELD})\s*(?:==|!=)\s*(?P<text>{_STRING})"),
    re.compile(rf"(?P<text>{_STRING})\s*(?:==|!=|\bin\b)\s*(?P<path>{_FIELD})(?![\w(])"),
)
_IN_LIST = re.compile(rf"(?<![\w.])(?P<path>{_FIELD})\s+in\s+\[(?P<texts>[^\]]*)\]")
_STRINGS = re.compile(_STRING)
# CEL's words for operands of types no operator or function takes together.
_TYPE_CLASH = ("No such overload", "Unsupported operation")


def _comparisons(source: str) -> list[tuple[str, str]]:
    """``(dotted path, text)`` for each comparison of a field with a string literal.

    A match that starts inside another string literal is text, not an expression.
    """
    quoted = [m.span() for m in _STRINGS.finditer(source)]

    def in_string(at: int) -> bool:
        return any(start < at < end for start, end in quoted)

    found: list[tuple[str, str]] = []
    for pattern in _COMPARISONS:
        for match in pattern.finditer(source):
            if not in_string(match.start()):
                found.append((match["path"], _literal(match["text"])))
    for match in _IN_LIST.finditer(source):
        if not in_string(match.start()):
            texts = _STRINGS.findall(match["texts"])
            found.extend((match["path"], _literal(text)) for text in texts)
    return found


def _literal(text: str) -> str:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text[1:-1]
    return value if isinstance(value, str) else text[1:-1]


def _label_schema(typed: Mapping[str, Schema], path: str) -> Schema | None:
    """The schema of the field ``path`` reads, or of its elements when it is a list."""
    root, *fields = path.split(".")
    schema = typed.get(root)
    found = None if schema is None else field_schema(schema, tuple(fields))
    if found is not None and type_name(found) == "array" and isinstance(found.get("items"), dict):
        return found["items"]  # type: ignore[no-any-return]  # a JSON Schema mapping
    return found


def _check_labels(c: RuleContext) -> None:
    """A condition compares an enum field only with labels the enum has."""
    typed = typed_results(c.definition, c.declared.schemas)
    for path, condition in conditions_of(c.definition):
        here = {**typed, **_event_schema(c.definition, path)}
        for field, text in _comparisons(condition.source):
            allowed = labels(_label_schema(here, field))
            if allowed is None or text in allowed:
                continue
            hint = suggest(text, allowed) or f"; use one of the labels or add `{text}` to the enum"
            c.report(
                f'condition `{condition.source}` compares `{field}` with "{text}", which is '
                f"not one of its labels ({', '.join(allowed)}), so it is never true{hint}",
                path,
            )


def _check_example_labels(c: RuleContext) -> None:
    """The local model's examples are given per label, and each must be one the field has."""
    for agent in c.definition.agents.values():
        output = agent.output
        if not isinstance(output, Mapping):
            continue
        for field, by_label in agent.examples.items():
            allowed = labels(field_schema(output, (field,)))
            if allowed is None:
                continue
            for label in by_label:
                if label not in allowed:
                    hint = suggest(label, allowed) or f"; add `{label}` to the enum or remove it"
                    c.report(
                        f"examples of agent `{agent.name}` give label `{label}`, which the "
                        f"`{field}` field of its output does not have ({', '.join(allowed)})"
                        f"{hint}",
                        ("agents", agent.name, "examples", field, label),
                    )


def _check_result_schemas(c: RuleContext) -> None:
    """A command's ``result_schema`` is a valid JSON Schema of an object."""
    for state in c.definition.states.values():
        for path, command in state_commands(state):
            if command.result_schema is None or agent_of(command) is not None:
                continue
            error = schema_error(command.result_schema)
            if error is not None:
                c.report(
                    f"the `result_schema` of command `{command.name}` {error}",
                    ("states", state.name, *path, "result_schema"),
                )


def _check_fields(c: RuleContext) -> None:
    """Conditions read only fields a declared result has (the result's writer names them)."""
    typed = typed_results(c.definition, c.declared.schemas)
    for path, condition in conditions_of(c.definition):
        for read in condition.paths:
            schema = typed.get(read[0])
            missing = None if schema is None else undeclared_field(schema, read[1:])
            if missing is None or _is_method(condition.source, read):
                continue
            field, known = missing
            names = ", ".join(f"`{name}`" for name in known) or "nothing"
            c.report(
                f"condition `{condition.source}` reads `{read[0]}.{field}`, but the declared "
                f"result `{read[0]}` has no field `{field}`"
                f"{suggest(field.rsplit('.', 1)[-1], known)} (it has: {names})",
                path,
            )


def _check_shown_fields(c: RuleContext) -> None:
    """A task's ``show:`` names only fields a declared result has (else it shows "not set")."""
    typed = typed_results(c.definition, c.declared.schemas)
    for state in c.definition.states.values():
        for index, shown in enumerate(state.task.show if state.task else ()):
            root, *rest = shown.split(".")
            schema = typed.get(root)
            missing = None if schema is None else undeclared_field(schema, tuple(rest))
            if missing is None:
                continue
            field, known = missing
            names = ", ".join(f"`{name}`" for name in known) or "nothing"
            c.report(
                f"`show` lists `{root}.{field}`, but the declared result `{root}` has no field "
                f"`{field}`{suggest(field.rsplit('.', 1)[-1], known)} (it has: {names})",
                ("states", state.name, "task", "show", index),
            )


def _is_method(source: str, read: tuple[str, ...]) -> bool:
    """Whether the path's last name is called (``tags.exists(...)``), not read."""
    return re.search(rf"{re.escape('.'.join(read))}\s*\(", source) is not None


def _check_types(c: RuleContext) -> None:
    """Run each fully typed condition over sample values; CEL names any type clash."""
    typed = typed_results(c.definition, c.declared.schemas)
    samples = _samples(typed)
    for path, condition in conditions_of(c.definition):
        event = _event_schema(c.definition, path)
        here = {**typed, **event}
        if not _clashes(condition, {**samples, **_samples(event)}):
            continue
        kinds = _field_types(condition, here)
        declared = ", ".join(f"`{field}` is {kind}" for field, kind in kinds.items())
        c.report(
            f"condition `{condition.source}` combines values of types CEL never converts "
            f"into each other, so it fails for every item ({declared or 'see the literals'}); "
            f"{_conversion_hint(kinds)}",
            path,
        )


def _samples(typed: Mapping[str, Schema]) -> dict[str, object]:
    """A sample value of each typed name whose whole shape is typed."""
    samples: dict[str, object] = {}
    for name, schema in typed.items():
        try:
            samples[name] = sample(schema)
        except Untyped:
            continue
    return samples


def _event_schema(definition: Definition, path: Path) -> dict[str, Schema]:
    """``event`` as a transition on a declared event with a ``data`` schema sees it."""
    if len(path) < 4 or path[2] != "transitions" or not isinstance(path[3], int):
        return {}
    transition = definition.states[str(path[1])].transitions[path[3]]
    spec = (definition.events or {}).get(transition.on)
    if spec is None or spec.data is None:
        return {}
    properties = {"name": {"type": "string"}, "data": spec.data}
    return {"event": {"type": "object", "properties": properties}}


def _clashes(condition: Condition, samples: Mapping[str, object]) -> bool:
    """Whether CEL finds no operator for ``condition``'s operands over the sample values."""
    read = set(condition.variables) - local_names(condition.source)
    if condition.program is None or not read or not read <= samples.keys():
        return False
    try:
        condition.program.execute({name: samples[name] for name in read})
    except TypeError as exc:
        return str(exc).startswith(_TYPE_CLASH)
    except Exception:
        return False
    return False


def _field_types(condition: Condition, typed: Mapping[str, Schema]) -> dict[str, str]:
    """The declared JSON Schema type of each typed field the condition reads."""
    kinds: dict[str, str] = {}
    for read in condition.paths:
        schema = typed.get(read[0])
        kind = None if schema is None else type_name(field_schema(schema, read[1:]))
        if kind is not None and len(read) > 1:
            kinds[".".join(read)] = kind
    return kinds


def _conversion_hint(kinds: Mapping[str, str]) -> str:
    """Name the conversion to write, around the field that needs it."""
    integers = [path for path, kind in kinds.items() if kind == "integer"]
    if integers:
        return (
            f"convert explicitly, e.g. `double({integers[0]})` to compute with a number, "
            f"and write whole literals as `2.0` beside numbers"
        )
    numbers = [path for path, kind in kinds.items() if kind == "number"]
    if numbers:
        return f"`{numbers[0]}` is a double: write literals beside it as `2.0`, not `2`"
    texts = [path for path, kind in kinds.items() if kind == "string"]
    if texts:
        return f"`{texts[0]}` is text: compare it with text, or convert it with `double(...)`"
    return "convert explicitly with `double(x)`, `int(x)` or `string(x)`"


TYPE_RULES: tuple[Callable[[RuleContext], None], ...] = (
    _check_result_schemas,
    _check_labels,
    _check_example_labels,
    _check_fields,
    _check_shown_fields,
    _check_types,
)
