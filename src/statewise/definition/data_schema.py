"""JSON Schemas a workflow declares for data people and systems send in: task forms, events.

One place checks a schema itself (at validation) and data against it (before the data can move
an item), so a task decision and an event are refused with the same kind of message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

JSON = Any

# Long enough for any field name and a readable value; a 300-deep object is cut, not echoed.
_MAX_PROBLEM = 200

_NEEDS_JSONSCHEMA = (
    "checking data against a JSON Schema needs jsonschema: install statewise[service]"
)


def schema_error(schema: Mapping[str, JSON]) -> str | None:
    """Why ``schema`` is not a valid JSON Schema of an object, or None when it is.

    Without jsonschema installed only the ``type: object`` rule is checked; the data check
    refuses instead, so nothing unchecked gets through.
    """
    if schema.get("type", "object") != "object":
        return "must describe an object (`type: object`)"
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for
    except ImportError:
        return None
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(dict(schema))
    except SchemaError as exc:
        return f"is not a valid JSON Schema: {exc.message}"
    except RecursionError:
        return "is nested too deeply to be checked"
    remote = next(_remote_refs(schema), None)
    if remote is not None:
        return (
            f"refers to `{remote}`; only references inside the schema (`#/$defs/...`) are "
            f"resolved, statewise never fetches a schema"
        )
    return None


def _remote_refs(schema: JSON) -> Iterator[str]:
    """Every ``$ref`` in ``schema`` that points outside it (a URL or another file)."""
    if isinstance(schema, Mapping):
        ref = schema.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            yield ref
        for value in schema.values():
            yield from _remote_refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _remote_refs(value)


def schema_problems(
    schema: Mapping[str, JSON], data: Mapping[str, JSON], root: str = "data"
) -> list[str]:
    """Every way ``data`` breaks ``schema``, one line each, naming the field (``[]``: it fits).

    ``root`` names a problem with the whole object (a missing required field).
    """
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.validators import validator_for
        from referencing.exceptions import Unresolvable
    except ImportError:  # pragma: no cover - jsonschema comes with the service and ai extras
        return [_NEEDS_JSONSCHEMA]
    validator = validator_for(schema, default=Draft202012Validator)(schema)
    # Neither failure may escape: a step that raises would quarantine the item, not refuse.
    try:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    except RecursionError:
        return [f"{root}: nested too deeply to be checked against the schema"]
    except Unresolvable as exc:
        return [f"{root}: the schema refers to {exc.ref!r}, which cannot be resolved"]
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or root}: {_shortened(error.message)}"
        for error in errors
    ]


def _shortened(message: str) -> str:
    """A problem quotes the offending value; a huge or deeply nested one must not flood it."""
    return message if len(message) <= _MAX_PROBLEM else message[: _MAX_PROBLEM - 1] + "…"
