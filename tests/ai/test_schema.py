"""The output-schema check whose findings are shown to the model."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai import ModelRetry

from statewise.ai.schema import check_output, schema_errors

ORDER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^A-[0-9]+$"},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 10},
        "price": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2, "uniqueItems": True},
        "status": {"enum": ["open", "closed"]},
        "note": {"type": ["string", "null"], "maxLength": 5},
        "customer": {"$ref": "#/$defs/customer"},
    },
    "required": ["id", "quantity"],
    "additionalProperties": False,
    "$defs": {
        "customer": {
            "type": "object",
            "properties": {"email": {"type": "string", "minLength": 3}},
            "required": ["email"],
        }
    },
}


def test_a_conforming_value_has_no_errors() -> None:
    value = {
        "id": "A-1",
        "quantity": 2,
        "price": 1.5,
        "tags": ["x", "y"],
        "status": "open",
        "note": None,
        "customer": {"email": "a@b"},
    }
    assert schema_errors(ORDER, value) == []
    assert check_output(ORDER, value) is value


def test_every_violation_is_reported_with_its_path() -> None:
    value = {
        "id": "B-1",
        "quantity": 11,
        "price": 0.7,
        "tags": ["x", "x", "y"],
        "status": "lost",
        "note": "too long",
        "customer": {},
        "extra": 1,
    }
    assert schema_errors(ORDER, value) == [
        "$.id: \"B-1\" does not match the pattern '^A-[0-9]+$'",
        "$.quantity: must be at most 10, got 11",
        "$.price: must be a multiple of 0.5, got 0.7",
        "$.tags: allows at most 2 items, has 3",
        "$.tags: items must be unique",
        '$.status: "lost" is not one of "open", "closed"',
        "$.note: allows at most 5 characters",
        "$.customer: missing required field 'email'",
        "$.extra: unexpected field (allowed: customer, id, note, price, quantity, status, tags)",
    ]


@pytest.mark.parametrize(
    ("schema", "value", "problem"),
    [
        ({"type": "integer"}, True, "$: expected integer, got true"),
        ({"type": "integer"}, 2.0, None),
        ({"type": "number"}, "1", '$: expected number, got "1"'),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, [], "matches none"),
        ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, 1, "matches 2"),
        ({"allOf": [{"minimum": 0}, {"maximum": 1}]}, 2, "must be at most 1"),
        ({"not": {"type": "null"}}, None, "not allowed"),
        ({"const": "x"}, "y", 'must be "x"'),
        ({"items": {"type": "integer"}}, [1, "a"], "$[1]: expected integer"),
        (
            {"properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}},
            {"a": "s", "b": "t"},
            "$.b: expected integer",
        ),
        ({"minItems": 1}, [], "at least 1 items"),
        ({"minimum": 0, "exclusiveMaximum": True}, 5, None),
        (False, 1, "no value is allowed"),
    ],
)
def test_keywords(schema: Any, value: Any, problem: str | None) -> None:
    problems = schema_errors(schema, value)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_the_model_is_asked_to_fix_every_problem() -> None:
    with pytest.raises(ModelRetry) as raised:
        check_output(ORDER, {"quantity": 0})
    assert str(raised.value) == (
        "The output does not match the required JSON Schema:\n"
        "- $: missing required field 'id'\n"
        "- $.quantity: must be at least 1, got 0"
    )
