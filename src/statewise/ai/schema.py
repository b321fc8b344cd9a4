"""An agent's output schema: what the model is shown, and the check its reply must pass.

The model is given the user's JSON Schema unchanged (pydantic-ai's ``StructuredDict``), but
``StructuredDict`` itself only checks that the reply is an object. The reply is therefore
checked here against the schema, and every violation is handed back to the model as a
``ModelRetry``, so it sees exactly what to fix before the attempt is given up as invalid output.

The checker covers the JSON Schema vocabulary that describes data: ``type``, ``enum``,
``const``, ``properties``, ``required``, ``additionalProperties``, ``items``, ``minItems``,
``maxItems``, ``uniqueItems``, ``minimum``, ``maximum``, ``exclusiveMinimum``,
``exclusiveMaximum``, ``multipleOf``, ``minLength``, ``maxLength``, ``pattern``, ``anyOf``,
``oneOf``, ``allOf``, ``not`` and local ``$ref`` into ``$defs``/``definitions``. Annotations such
as ``format`` and ``description`` are not checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic_ai import ModelRetry, NativeOutput, PromptedOutput, StructuredDict, ToolOutput

from statewise.errors import StatewiseError

JSON = Any
T = TypeVar("T")
# The name of the tool a structured reply is given through, so transcripts can recognise it.
OUTPUT_TOOL = "final_result"
OUTPUT_MODES = ("tool", "native", "prompted")
Schema = Mapping[str, Any]
_MAX_REPORTED = 10
_TYPES: dict[str, Callable[[JSON], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: _is_number(v),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def output_spec(agent: str, schema: Schema | None, mode: str = "tool") -> Any:
    """What pydantic-ai should ask the model for: text, or the schema in one of three ways.

    ``tool`` (the default, supported most widely) has the model call an output tool whose
    parameters are the schema; ``native`` uses the provider's JSON-schema response format;
    ``prompted`` puts the schema in the prompt and parses the text reply.
    """
    if schema is None:
        return str
    if mode not in OUTPUT_MODES:
        raise StatewiseError(
            f"agent {agent!r}: output_mode must be one of {', '.join(OUTPUT_MODES)}, not {mode!r}"
        )
    structured = StructuredDict(dict(schema), name=f"{agent}_output")
    if mode == "native":
        return NativeOutput(structured)
    if mode == "prompted":
        return PromptedOutput(structured)
    return ToolOutput(structured, name=OUTPUT_TOOL)


def check_output(schema: Schema, value: T) -> T:
    """Return ``value`` if it satisfies ``schema``; otherwise ask the model to fix it."""
    problems = schema_errors(schema, value)
    if problems:
        shown = problems[:_MAX_REPORTED]
        hidden = len(problems) - len(shown)
        more = f"\n- ... and {hidden} more" if hidden else ""
        listing = "\n".join(f"- {p}" for p in shown)
        raise ModelRetry(f"The output does not match the required JSON Schema:\n{listing}{more}")
    return value


def schema_errors(schema: Schema, value: JSON) -> list[str]:
    """Every way ``value`` violates ``schema``, each prefixed with its JSON path."""
    return _Checker(schema).check(schema, value, "$")


class _Checker:
    """Walks a value and its schema together; holds the root for resolving ``$ref``."""

    def __init__(self, root: Schema) -> None:
        self.root = root

    def check(self, schema: Schema | bool, value: JSON, path: str) -> list[str]:
        if schema is True or schema == {}:
            return []
        if schema is False:
            return [f"{path}: no value is allowed here"]
        assert isinstance(schema, Mapping)
        if "$ref" in schema:
            return self.check(self._resolve(str(schema["$ref"])), value, path)
        problems = self._type_and_values(schema, value, path)
        if problems:  # the rest would only repeat that the value has the wrong type
            return problems
        problems += self._combinators(schema, value, path)
        if isinstance(value, dict):
            problems += self._object(schema, value, path)
        elif isinstance(value, list):
            problems += self._array(schema, value, path)
        elif isinstance(value, str):
            problems += _string(schema, value, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            problems += _number(schema, value, path)
        return problems

    def _resolve(self, ref: str) -> Schema:
        target: Any = self.root
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref are supported, not {ref!r}")
        for part in filter(None, ref[1:].split("/")):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return dict(target)

    def _type_and_values(self, schema: Schema, value: JSON, path: str) -> list[str]:
        kinds = schema.get("type")
        if kinds is not None:
            allowed = [kinds] if isinstance(kinds, str) else list(kinds)
            if not any(_TYPES.get(kind, lambda _: True)(value) for kind in allowed):
                return [f"{path}: expected {' or '.join(allowed)}, got {_show(value)}"]
        if "enum" in schema and value not in schema["enum"]:
            options = ", ".join(_show(option) for option in schema["enum"])
            return [f"{path}: {_show(value)} is not one of {options}"]
        if "const" in schema and value != schema["const"]:
            return [f"{path}: must be {_show(schema['const'])}, got {_show(value)}"]
        return []

    def _combinators(self, schema: Schema, value: JSON, path: str) -> list[str]:
        problems: list[str] = []
        for sub in schema.get("allOf", ()):
            problems += self.check(sub, value, path)
        if "anyOf" in schema and not any(
            not self.check(sub, value, path) for sub in schema["anyOf"]
        ):
            problems.append(f"{path}: matches none of the allowed shapes (anyOf)")
        if "oneOf" in schema:
            matching = sum(not self.check(sub, value, path) for sub in schema["oneOf"])
            if matching != 1:
                problems.append(f"{path}: must match exactly one shape (oneOf), matches {matching}")
        if "not" in schema and not self.check(schema["not"], value, path):
            problems.append(f"{path}: matches a shape that is not allowed (not)")
        return problems

    def _object(self, schema: Schema, value: dict[str, JSON], path: str) -> list[str]:
        properties: Mapping[str, Any] = schema.get("properties", {})
        problems = [
            f"{path}: missing required field {name!r}"
            for name in schema.get("required", ())
            if name not in value
        ]
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            where = f"{path}.{name}"
            if name in properties:
                problems += self.check(properties[name], item, where)
            elif extra is False:
                allowed = ", ".join(sorted(properties)) or "none"
                problems.append(f"{where}: unexpected field (allowed: {allowed})")
            elif isinstance(extra, Mapping):
                problems += self.check(extra, item, where)
        return problems

    def _array(self, schema: Schema, value: list[JSON], path: str) -> list[str]:
        problems: list[str] = []
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{path}: needs at least {schema['minItems']} items, has {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{path}: allows at most {schema['maxItems']} items, has {len(value)}")
        if schema.get("uniqueItems") and len({_canonical(v) for v in value}) != len(value):
            problems.append(f"{path}: items must be unique")
        items = schema.get("items")
        if isinstance(items, Mapping | bool):
            for index, item in enumerate(value):
                problems += self.check(items, item, f"{path}[{index}]")
        return problems


def _string(schema: Schema, value: str, path: str) -> list[str]:
    problems: list[str] = []
    if "minLength" in schema and len(value) < schema["minLength"]:
        problems.append(f"{path}: needs at least {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(f"{path}: allows at most {schema['maxLength']} characters")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{path}: {_show(value)} does not match the pattern {schema['pattern']!r}")
    return problems


def _number(schema: Schema, value: float, path: str) -> list[str]:
    bounds: list[tuple[str, Callable[[float, float], bool], str]] = [
        ("minimum", lambda v, b: v >= b, "at least"),
        ("maximum", lambda v, b: v <= b, "at most"),
        ("exclusiveMinimum", lambda v, b: v > b, "greater than"),
        ("exclusiveMaximum", lambda v, b: v < b, "less than"),
    ]
    problems = [
        f"{path}: must be {words} {schema[key]}, got {_show(value)}"
        for key, holds, words in bounds
        if _is_number(schema.get(key)) and not holds(value, schema[key])
    ]
    step = schema.get("multipleOf")
    if _is_number(step) and step and (value / step) % 1:
        problems.append(f"{path}: must be a multiple of {step}, got {_show(value)}")
    return problems


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: JSON) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _canonical(value: JSON) -> str:
    return json.dumps(value, sort_keys=True, default=str)
