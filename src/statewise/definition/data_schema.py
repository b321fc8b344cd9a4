"""JSON Schemas a workflow declares for data people and systems send in: task forms, events.

One place checks a schema itself (at validation) and data against it (before the data can move
an item), so a task decision and an event are refused with the same kind of message.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    return None


def schema_problems(
    schema: Mapping[str, JSON], data: Mapping[str, JSON], root: str = "data"
) -> list[str]:
    """Every way ``data`` breaks ``schema``, one line each, naming the field (``[]``: it fits).

    ``root`` names a problem with the whole object (a missing required field).
    """
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.validators import validator_for
    except ImportError:  # pragma: no cover - jsonschema comes with the service and ai extras
        return [_NEEDS_JSONSCHEMA]
    validator = validator_for(schema, default=Draft202012Validator)(schema)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or root}: {_shortened(error.message)}"
        for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    ]


def _shortened(message: str) -> str:
    """A problem quotes the offending value; a huge or deeply nested one must not flood it."""
    return message if len(message) <= _MAX_PROBLEM else message[: _MAX_PROBLEM - 1] + "…"
