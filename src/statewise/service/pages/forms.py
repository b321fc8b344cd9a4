"""A task's JSON Schema as an HTML form.

Which input each field gets, what it starts with, what the posted text means, and which field
each validation problem belongs to: pure functions of the schema, the posted text and the
item's context; the task page renders what they return.

Rules (documented in the README):

- A string field is a text area when its ``maxLength`` is over ``LONG_TEXT`` characters,
  when it says ``format: textarea`` or ``x-multiline: true``, or, having no ``maxLength``,
  when its name says it holds prose (``PROSE_NAMES``, or a name ending in ``_text``).
- An array of strings is a text area with one entry per line; any other array or object is
  JSON in a text area.
- A field starts with the item's context at the path its ``x-context`` names (say the agent's
  draft, ``draft.reply``), else with its ``default``; after a refused decision, with exactly
  what was posted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LONG_TEXT = 120
PROSE_NAMES = frozenset(
    {"text", "reply", "comment", "comments", "message", "note", "notes", "body", "answer",
     "description", "feedback", "rationale", "reason", "summary", "changes"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Field:
    """One input of a task's form.

    ``kind``: text, textarea, number, integer, boolean, choice, lines (an array of strings,
    one a line) or json (any other value, as JSON text).
    """

    name: str
    label: str
    kind: str
    required: bool = False
    description: str = ""
    options: tuple[str, ...] = ()
    source: str | None = None
    default: Any = None


def form_fields(schema: Mapping[str, Any]) -> list[Field]:
    """The inputs a task's JSON Schema asks for, one per top-level property."""
    required = set(schema.get("required", []))
    return [
        _field(name, spec if isinstance(spec, dict) else {}, name in required)
        for name, spec in (schema.get("properties") or {}).items()
    ]


def _field(name: str, spec: Mapping[str, Any], required: bool) -> Field:
    options = spec.get("enum")
    return Field(
        name=name,
        label=str(spec.get("title") or name.replace("_", " ").capitalize()),
        kind="choice" if isinstance(options, list) else field_kind(name, spec),
        required=required,
        description=str(spec.get("description", "")),
        options=tuple(str(o) for o in options) if isinstance(options, list) else (),
        source=spec.get("x-context") if isinstance(spec.get("x-context"), str) else None,
        default=spec.get("default"),
    )


def field_kind(name: str, spec: Mapping[str, Any]) -> str:
    """Which input a property gets (see the module docstring for the rule)."""
    kind = spec.get("type", "string")
    if kind == "string":
        return "textarea" if is_long_text(name, spec) else "text"
    if kind in ("number", "integer", "boolean"):
        return str(kind)
    items = spec.get("items")
    if kind == "array" and isinstance(items, dict) and items.get("type") == "string":
        return "lines"
    return "json"


def is_long_text(name: str, spec: Mapping[str, Any]) -> bool:
    """Whether a string field holds more than a line: a reply, a rationale, a long limit."""
    if spec.get("format") == "textarea" or spec.get("x-multiline") is True:
        return True
    limit = spec.get("maxLength")
    if isinstance(limit, int):
        return limit > LONG_TEXT
    return name in PROSE_NAMES or name.endswith("_text")


def form_data(fields: list[Field], posted: Mapping[str, str]) -> dict[str, Any]:
    """Typed form data from posted text; what cannot be read is left for the schema to refuse."""
    data: dict[str, Any] = {}
    for field in fields:
        raw = posted.get(f"field.{field.name}")
        if field.kind == "boolean":
            data[field.name] = raw == "true"
        elif raw is not None and raw.strip() != "":
            data[field.name] = typed(field.kind, raw)
    return data


def typed(kind: str, raw: str) -> Any:
    """One field's posted text as the value its kind holds; unreadable text stays text."""
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
        if kind == "json":
            return json.loads(raw)
    except ValueError:
        return raw
    if kind == "lines":
        return [line.strip() for line in raw.splitlines() if line.strip()]
    return raw


def shown(field: Field, value: Any) -> str:
    """A value as its input shows it (the inverse of ``typed``)."""
    if value is None:
        return ""
    if field.kind == "lines" and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if field.kind == "boolean":
        return "true" if value is True else ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2 if field.kind == "json" else None)


def initial_values(fields: list[Field], context: Mapping[str, Any]) -> dict[str, str]:
    """What each field starts with: its ``x-context`` path's value, else its ``default``."""
    values = {}
    for field in fields:
        found = context_value(context, field.source) if field.source else _MISSING
        value = field.default if found is _MISSING else found
        if value is not None:
            values[field.name] = shown(field, value)
    return values


def posted_values(fields: list[Field], posted: Mapping[str, str]) -> dict[str, str]:
    """Every field's text exactly as it was posted, to put back after a refusal."""
    return {f.name: posted[f"field.{f.name}"] for f in fields if f"field.{f.name}" in posted}


_MISSING = object()


def context_value(context: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted context path (``inquiry.text``), or ``_MISSING``."""
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def is_missing(value: Any) -> bool:
    """Whether ``context_value`` found nothing at its path."""
    return value is _MISSING


def field_problems(schema: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each form field's problems under the schema; ``""`` holds those of the whole form.

    A missing required field is that field's problem ("required"), not the form's. A schema
    that cannot be checked (nested too deep, a reference that does not resolve) gives none
    here: the decision itself then refuses it with ``schema_problems``' message.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for
    from referencing.exceptions import Unresolvable

    validator = validator_for(schema, default=Draft202012Validator)(schema)
    try:
        errors = list(validator.iter_errors(data))
    except (RecursionError, Unresolvable):
        return {}
    problems: dict[str, list[str]] = {}
    for error in errors:
        path = list(error.absolute_path)
        if not path and error.validator == "required":
            for name in list(error.validator_value):  # type: ignore[arg-type]
                if name not in data:
                    problems.setdefault(str(name), []).append("this field is required")
            continue
        field = str(path[0]) if path else ""
        where = ".".join(str(p) for p in path[1:])
        message = error.message if len(error.message) <= 200 else error.message[:199] + "…"
        problems.setdefault(field, []).append(f"{where}: {message}" if where else message)
    return problems
