"""The output-schema check whose findings are shown to the model."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai import ModelRetry

from statewise.ai.schema import check_output, schema_errors
from statewise.errors import StatewiseError

DRAFT_4 = "http://json-schema.org/draft-04/schema#"

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
        "$: Additional properties are not allowed ('extra' was unexpected)",
        "$.customer: 'email' is a required property",
        "$.id: 'B-1' does not match '^A-[0-9]+$'",
        "$.note: 'too long' is too long",
        "$.price: 0.7 is not a multiple of 0.5",
        "$.quantity: 11 is greater than the maximum of 10",
        "$.status: 'lost' is not one of ['open', 'closed']",
        "$.tags: ['x', 'x', 'y'] is too long",
        "$.tags: ['x', 'x', 'y'] has non-unique elements",
    ]


@pytest.mark.parametrize(
    ("schema", "value", "problem"),
    [
        ({"type": "integer"}, True, "$: True is not of type 'integer'"),
        ({"type": "integer"}, 2.0, None),
        ({"type": "number"}, "1", "$: '1' is not of type 'number'"),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, [], "not valid under any of"),
        ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, 1, "is valid under each of"),
        ({"allOf": [{"minimum": 0}, {"maximum": 1}]}, 2, "greater than the maximum of 1"),
        ({"not": {"type": "null"}}, None, "should not be valid under"),
        ({"const": "x"}, "y", "'x' was expected"),
        ({"items": {"type": "integer"}}, [1, "a"], "$[1]: 'a' is not of type 'integer'"),
        (
            {"properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}},
            {"a": "s", "b": "t"},
            "$.b: 't' is not of type 'integer'",
        ),
        ({"minItems": 2}, [], "$: [] is too short"),
        # A boolean exclusive bound is draft-04's form; it is honoured when the schema says so.
        ({"$schema": DRAFT_4, "maximum": 10, "exclusiveMaximum": True}, 5, None),
        ({"$schema": DRAFT_4, "maximum": 10, "exclusiveMaximum": True}, 10, "or equal to the max"),
        (False, 1, "False schema does not allow 1"),
    ],
)
def test_keywords(schema: Any, value: Any, problem: str | None) -> None:
    problems = schema_errors(schema, value)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_an_invalid_schema_is_the_authors_problem_not_the_models() -> None:
    # Without `$schema` it is Draft 2020-12, where exclusiveMaximum must be a number.
    with pytest.raises(StatewiseError, match=r"not valid JSON Schema: \$\.exclusiveMaximum: "):
        schema_errors({"minimum": 0, "exclusiveMaximum": True}, 5)
    with pytest.raises(StatewiseError, match="cannot be resolved"):
        schema_errors({"$ref": "#/$defs/missing"}, 1)
    with pytest.raises(StatewiseError, match="cannot be resolved"):
        schema_errors({"$ref": "https://example.com/schema.json"}, 1)


def test_the_model_is_asked_to_fix_every_problem() -> None:
    with pytest.raises(ModelRetry) as raised:
        check_output(ORDER, {"quantity": 0})
    assert str(raised.value) == (
        "The output does not match the required JSON Schema:\n"
        "- $: 'id' is a required property\n"
        "- $.quantity: 0 is less than the minimum of 1"
    )


def test_at_most_ten_problems_are_listed() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    with pytest.raises(ModelRetry) as raised:
        check_output(schema, {f"f{i:02}": "x" for i in range(12)})
    lines = str(raised.value).splitlines()
    assert lines[1:3] == [
        "- $.f00: 'x' is not of type 'integer'",
        "- $.f01: 'x' is not of type 'integer'",
    ]
    assert lines[-1] == "- ... and 2 more"
    assert len(lines) == 12
