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


def paths(problems: list[str]) -> list[str]:
    """The JSON path each problem starts with: statewise's part; the rest is jsonschema's."""
    return [problem.split(": ", 1)[0] for problem in problems]


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
    problems = schema_errors(ORDER, value)
    # One problem per broken keyword, in path order; tags breaks maxItems and uniqueItems.
    assert paths(problems) == [
        "$",
        "$.customer",
        "$.id",
        "$.note",
        "$.price",
        "$.quantity",
        "$.status",
        "$.tags",
        "$.tags",
    ]
    assert all(problem.split(": ", 1)[1] for problem in problems)
    assert "extra" in problems[0] and "email" in problems[1]  # the fields are named


@pytest.mark.parametrize(
    ("schema", "value", "path"),
    [
        ({"type": "integer"}, True, "$"),
        ({"type": "integer"}, 2.0, None),
        ({"type": "number"}, "1", "$"),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, [], "$"),
        ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, 1, "$"),
        ({"allOf": [{"minimum": 0}, {"maximum": 1}]}, 2, "$"),
        ({"not": {"type": "null"}}, None, "$"),
        ({"const": "x"}, "y", "$"),
        ({"items": {"type": "integer"}}, [1, "a"], "$[1]"),
        (
            {"properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}},
            {"a": "s", "b": "t"},
            "$.b",
        ),
        ({"minItems": 2}, [], "$"),
        # A boolean exclusive bound is draft-04's form; it is honoured when the schema says so.
        ({"$schema": DRAFT_4, "maximum": 10, "exclusiveMaximum": True}, 5, None),
        ({"$schema": DRAFT_4, "maximum": 10, "exclusiveMaximum": True}, 10, "$"),
        (False, 1, "$"),
    ],
)
def test_keywords(schema: Any, value: Any, path: str | None) -> None:
    assert paths(schema_errors(schema, value)) == ([] if path is None else [path])


def test_an_invalid_schema_is_the_authors_problem_not_the_models() -> None:
    # Without `$schema` it is Draft 2020-12, where exclusiveMaximum must be a number.
    with pytest.raises(
        StatewiseError, match=r"^the output schema is not valid JSON Schema: \$\.exclusiveMaximum: "
    ):
        schema_errors({"minimum": 0, "exclusiveMaximum": True}, 5)
    unresolved = r"^the output schema has a \$ref that cannot be resolved: "
    with pytest.raises(StatewiseError, match=unresolved):
        schema_errors({"$ref": "#/$defs/missing"}, 1)
    with pytest.raises(StatewiseError, match=unresolved):
        schema_errors({"$ref": "https://example.com/schema.json"}, 1)


def test_the_model_is_asked_to_fix_every_problem() -> None:
    with pytest.raises(ModelRetry) as raised:
        check_output(ORDER, {"quantity": 0})
    header, *problems = str(raised.value).splitlines()
    assert header == "The output does not match the required JSON Schema:"
    assert paths([problem.removeprefix("- ") for problem in problems]) == ["$", "$.quantity"]
    assert "'id'" in problems[0]  # the missing field is named


def test_at_most_ten_problems_are_listed() -> None:
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}
    with pytest.raises(ModelRetry) as raised:
        check_output(schema, {f"f{i:02}": "x" for i in range(12)})
    lines = str(raised.value).splitlines()
    assert paths([line.removeprefix("- ") for line in lines[1:11]]) == [
        f"$.f{i:02}" for i in range(10)
    ]
    assert lines[-1] == "- ... and 2 more"
    assert len(lines) == 12
