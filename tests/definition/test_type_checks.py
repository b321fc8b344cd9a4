"""Checks that know types: labels, fields, CEL type clashes, examples and templates."""

from __future__ import annotations

import json
import textwrap

import pytest

from statewise.definition import Declarations, loads, validate
from statewise.definition.declared_types import command_at
from statewise.errors import DefinitionError, Problem

AGENT = """
workflow: inquiries
input: [message, amount]
agents:
  classifier:
    instructions: Classify the inquiry.
    input: "{{ message }}"
    output:
      type: object
      properties:
        category: {type: string, enum: [billing, returns, hardware, "café %/?"]}
        confidence: {type: number}
        count: {type: integer}
        tags: {type: array, items: {type: string, enum: [urgent, vip]}}
      required: [category]
    examples:
      category:
        billing: [I was charged twice]
states:
  classify:
    kind: initial
    agent: classifier
    transitions:
      - when: WHEN
        to: check
      - else: true
        to: done
  check:
    command:
      name: check_order
      result_schema: {type: object, properties: {ok: {type: boolean}, total: {type: integer}}}
    transitions:
      - when: check.ok
        to: done
      - else: true
        to: done
  done: {kind: final}
"""


def problems(text: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as info:
        loads(textwrap.dedent(text), file="wf.yaml")
    return list(info.value.problems)


def only(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def with_condition(when: str) -> str:
    """The workflow with ``when`` as its first condition, quoted as YAML reads it back."""
    return AGENT.replace("WHEN", json.dumps(when, ensure_ascii=False))


@pytest.mark.parametrize(
    "when",
    [
        'classify.category == "billing"',
        "classify.category != 'returns'",
        '"café %/?" == classify.category',
        'classify.category in ["billing", "hardware"]',
        '"urgent" in classify.tags',
        "double(classify.count) * classify.confidence > 2.0",
        "classify.confidence > 0.5 && classify.count > 2",
        'classify.tags.exists(t, t == "vip")',
        # Undeclared data stays dynamic: start data and event data are never guessed at.
        'message == "hardwear" && amount * 1.5 > 2.0',
        'has(classify.category) && classify.category.startsWith("bill")',
    ],
)
def test_conditions_that_fit_the_declared_types_load(when: str) -> None:
    loads(textwrap.dedent(with_condition(when)), file="wf.yaml")


def test_a_label_the_enum_lacks_is_caught_with_the_labels_and_a_suggestion() -> None:
    problem = only(with_condition('classify.category == "hardwear"'))
    assert (problem.file, problem.line, problem.column) == ("wf.yaml", 24, 15)
    assert problem.message == (
        'condition `classify.category == "hardwear"` compares `classify.category` with '
        '"hardwear", which is not one of its labels (billing, returns, hardware, café %/?), '
        "so it is never true; did you mean `hardware`?"
    )


@pytest.mark.parametrize(
    ("when", "label"),
    [
        ('"retruns" != classify.category', "retruns"),
        ('classify.category in ["billing", "refunds"]', "refunds"),
        ('"urgnet" in classify.tags', "urgnet"),
        ('classify.category == "café %/"', "café %/"),
    ],
)
def test_every_way_of_comparing_with_a_label_is_checked(when: str, label: str) -> None:
    problem = only(with_condition(when))
    assert f'with "{label}", which is not one of its labels' in problem.message
    assert problem.line == 24


def test_a_label_that_is_no_close_match_names_the_fix() -> None:
    problem = only(with_condition("classify.category == 'zzzz'"))
    assert problem.message.endswith("; use one of the labels or add `zzzz` to the enum")


def test_text_inside_a_string_literal_is_not_a_comparison() -> None:
    loads(
        textwrap.dedent(with_condition("""'classify.category == "nope"' != message""")),
        file="wf.yaml",
    )


def test_a_field_the_agent_output_lacks_is_named_with_the_fields_it_has() -> None:
    problem = only(with_condition("classify.categry == 'billing'"))
    assert problem.line == 24
    assert problem.message == (
        "condition `classify.categry == 'billing'` reads `classify.categry`, but the declared "
        "result `classify` has no field `categry`; did you mean `category`? (it has: "
        "`category`, `confidence`, `count`, `tags`)"
    )


def test_a_field_the_command_result_schema_lacks_is_named() -> None:
    text = with_condition("classify.count > 1").replace("when: check.ok", "when: check.okay")
    problem = only(text)
    assert problem.line == 33
    assert "the declared result `check` has no field `okay`; did you mean `ok`?" in problem.message
    assert "(it has: `ok`, `total`)" in problem.message


def test_int_times_double_is_a_type_error_with_the_conversion_to_write() -> None:
    problem = only(with_condition("classify.count * classify.confidence > 2.0"))
    assert problem.line == 24
    assert "combines values of types CEL never converts" in problem.message
    assert "`classify.count` is integer, `classify.confidence` is number" in problem.message
    assert "e.g. `double(classify.count)`" in problem.message


@pytest.mark.parametrize(
    ("when", "fix"),
    [
        ("classify.confidence * 100 > 50.0", "write literals beside it as `2.0`"),
        ("classify.category > 3", "`classify.category` is text"),
        ("check.total + classify.confidence > 1.0", "`double(check.total)`"),
    ],
)
def test_other_type_clashes_name_their_fix(when: str, fix: str) -> None:
    text = with_condition("classify.count > 1").replace("when: check.ok", f"when: {when}")
    problem = only(text)
    assert problem.line == 33
    assert fix in problem.message


def test_results_written_by_stages_that_declare_different_shapes_stay_dynamic() -> None:
    text = with_condition("classify.count > 1").replace(
        "when: check.ok", "when: check.anything * 2.5 > 1.0"
    )
    text = text.replace(
        "  done: {kind: final}",
        "  again:\n    command: {name: check_order, result: check}\n"
        "    transitions: [{to: done}]\n  done: {kind: final}",
    )
    text = text.replace(
        "      - else: true\n        to: done\n  done",
        "      - else: true\n        to: again\n  done",
    )
    found = problems(text)
    assert all("check.anything" not in p.message for p in found), found


def test_examples_may_only_give_labels_the_field_has() -> None:
    text = with_condition("classify.count > 1").replace(
        "billing: [I was charged twice]", "billing: [a]\n        hardwear: [my laptop broke]"
    )
    problem = only(text)
    assert problem.line == 19
    assert problem.message == (
        "examples of agent `classifier` give label `hardwear`, which the `category` field of "
        "its output does not have (billing, returns, hardware, café %/?); did you mean "
        "`hardware`?"
    )


def test_an_invalid_result_schema_is_refused() -> None:
    text = with_condition("classify.count > 1").replace(
        "result_schema: {type: object, properties:", "result_schema: {type: array, items:"
    )
    problem = only(text)
    assert (problem.line, problem.column) == (31, 7)
    assert problem.message == (
        "the `result_schema` of command `check_order` must describe an object (`type: object`)"
    )


def test_an_agent_command_cannot_declare_a_result_schema() -> None:
    text = with_condition("classify.count > 1").replace(
        "  done: {kind: final}",
        "  other:\n    command: {agent: classifier, result_schema: {type: object}}\n"
        "    transitions: [{to: done}]\n  done: {kind: final}",
    )
    assert any("described by its `output:`" in p.message for p in problems(text))


def test_an_undefined_template_variable_is_caught_with_a_suggestion() -> None:
    problem = only(with_condition("classify.count > 1").replace("{{ message }}", "{{ mesage }}"))
    assert (problem.line, problem.column) == (7, 12)
    assert problem.message == (
        "`input` of agent `classifier` uses `mesage`, which no item's context holds: it is "
        "not an input key, a command result, a task decision or an event, so every call "
        "would fail; did you mean `message`?"
    )


def test_templates_may_use_results_loops_and_the_renderers_names() -> None:
    template = (
        "{% for t in classify.tags %}{{ t }}{% endfor %} {{ item.key }} {{ context | tojson }}"
        " {{ check.ok }} {{ knowledge }} {{ conversations }} {{ range(3) | list }}"
    )
    loads(
        textwrap.dedent(with_condition("classify.count > 1").replace("{{ message }}", template)),
        file="wf.yaml",
    )


def test_without_declared_input_templates_are_not_guessed_at() -> None:
    text = with_condition("classify.count > 1").replace("{{ message }}", "{{ anything }}")
    loads(textwrap.dedent(text.replace("input: [message, amount]\n", "")), file="wf.yaml")


def test_registered_models_schemas_type_conditions_through_declarations() -> None:
    text = textwrap.dedent(
        """
        workflow: typed
        states:
          check:
            kind: initial
            command: check_order
            transitions:
              - when: check.totl > 3
                to: done
              - else: true
                to: done
          done: {kind: final}
        """
    )
    definition = loads(text)  # undeclared: dynamic
    schema = {"type": "object", "properties": {"total": {"type": "integer"}}}
    found = validate(definition, Declarations(schemas={"check_order": schema}))
    assert [p.message for p in found] == [
        "condition `check.totl > 3` reads `check.totl`, but the declared result `check` has "
        "no field `totl`; did you mean `total`? (it has: `total`)"
    ]


def test_a_self_referring_schema_stays_dynamic() -> None:
    text = with_condition("classify.count > 1").replace(
        "result_schema: {type: object, properties: {ok: {type: boolean}, total: {type: integer}}}",
        "result_schema: &s {type: object, properties: {ok: {type: boolean}, next: {$ref: '#'}}}",
    )
    loads(textwrap.dedent(text), file="wf.yaml")


def _deep(levels: int) -> dict[str, object]:
    deep: dict[str, object] = {"type": "integer"}
    for _ in range(levels):
        deep = {"type": "object", "properties": {"a": deep}}
    return deep


def test_a_deeply_nested_output_schema_is_walked_without_recursion_trouble() -> None:
    deep = _deep(40)
    path = ".".join(["classify"] + ["a"] * 40)
    document = textwrap.dedent(AGENT.replace("WHEN", json.dumps(f"{path} > 1 && {path[:-1]}b > 1")))
    document = document.replace(
        document[document.index("    output:") : document.index("    examples:")],
        f"    output: {json.dumps({**deep, 'required': []})}\n",
    ).replace("    examples:\n      category:\n        billing: [I was charged twice]\n", "")
    problem = only(document)
    assert problem.line == 14
    assert "has no field `" + ".".join(["a"] * 39) + ".b` (it has: `a`)" in problem.message


@pytest.mark.parametrize("key", ["output", "result_schema"])
def test_a_schema_too_deep_to_check_is_reported_not_a_crash(key: str) -> None:
    deep = json.dumps(_deep(150))
    text = with_condition("classify.count > 1")
    if key == "output":
        start, end = text.index("    output:"), text.index("    examples:")
        text = text.replace(text[start:end], f"    output: {deep}\n")
        text = text.replace("classify.count > 1", "true")
        text = text.replace(
            "    examples:\n      category:\n        billing: [I was charged twice]\n", ""
        )
    else:
        start = text.index("      result_schema:")
        end = text.index("\n", start)
        text = text.replace(text[start:end], f"      result_schema: {deep}")
    found = problems(text)
    assert any("nested too deeply to be checked" in p.message for p in found), found


def test_a_file_too_deep_to_read_is_reported_not_a_crash() -> None:
    deep = "{a: " * 3000 + "1" + "}" * 3000
    problem = only(with_condition("true").replace("{type: integer}", deep))
    assert problem.message.startswith("the file is nested too deeply to read")


def test_event_data_declared_with_a_schema_is_typed_too() -> None:
    text = textwrap.dedent(
        """
        workflow: paid
        events:
          pay:
            data:
              type: object
              properties:
                amount: {type: integer}
                rate: {type: number}
                method: {enum: [card, transfer]}
        states:
          start: {kind: initial, transitions: [{to: wait}]}
          wait:
            kind: waiting
            transitions:
              - {on: pay, when: WHEN, to: done}
              - {on: pay, else: true, to: done}
          done: {kind: final}
        """
    )
    loads(text.replace("WHEN", "double(event.data.amount) * event.data.rate > 2.0"))
    with pytest.raises(DefinitionError) as info:
        loads(text.replace("WHEN", "event.data.amount * event.data.rate > 2.0"), file="wf.yaml")
    (problem,) = info.value.problems
    assert problem.line == 16
    assert "`event.data.amount` is integer, `event.data.rate` is number" in problem.message
    assert "e.g. `double(event.data.amount)`" in problem.message


def test_event_data_labels_are_checked_against_the_data_schema() -> None:
    text = textwrap.dedent(
        """
        workflow: paid
        events:
          pay: {data: {type: object, properties: {method: {enum: [card, transfer]}}}}
        states:
          start: {kind: initial, transitions: [{to: wait}]}
          wait:
            kind: waiting
            transitions:
              - {on: pay, when: 'event.data.method == "cart"', to: done}
              - {on: pay, else: true, to: done}
          done: {kind: final}
        """
    )
    with pytest.raises(DefinitionError) as info:
        loads(text, file="wf.yaml")
    (problem,) = info.value.problems
    assert problem.line == 10
    assert 'with "cart", which is not one of its labels (card, transfer)' in problem.message
    assert problem.message.endswith("did you mean `card`?")


def test_the_command_a_visit_runs_is_found_for_its_result_schema() -> None:
    definition = loads(
        textwrap.dedent(
            """
            workflow: fan
            input: [lines]
            states:
              start:
                kind: initial
                command: {name: first, result_schema: {type: object}}
                transitions: [{to: checks}]
              checks:
                kind: parallel
                branches:
                  credit: {name: check_credit, result_schema: {type: object, required: [ok]}}
                  fraud: score_fraud
                transitions: [{to: each}]
              each:
                kind: parallel
                map: {over: lines, command: {name: price, result_schema: {type: object}}}
                transitions: [{to: done}]
              done: {kind: final}
            """
        )
    )
    credit = command_at(definition, "checks", "credit")
    assert credit is not None and credit.result_schema == {"type": "object", "required": ["ok"]}
    fraud = command_at(definition, "checks", "fraud")
    assert fraud is not None and fraud.result_schema is None
    priced = command_at(definition, "each", "3")
    assert priced is not None and priced.name == "price" and priced.result_schema is not None
    own = command_at(definition, "start", None)
    assert own is not None and own.name == "first"
    assert command_at(definition, "gone", None) is None


def test_a_registered_output_models_labels_are_checked_through_declarations() -> None:
    text = textwrap.dedent(
        """
        workflow: triage
        agents:
          triager: {instructions: Triage it., output: Triage}
        states:
          triage:
            kind: initial
            agent: triager
            transitions:
              - {when: 'triage.category == "retruns"', to: done}
              - {else: true, to: done}
          done: {kind: final}
        """
    )
    schema = {
        "type": "object",
        "properties": {"category": {"type": "string", "enum": ["billing", "returns"]}},
    }
    definition = loads(text)  # the model is unknown without its registry: dynamic
    found = validate(
        definition, Declarations(commands=frozenset({"Triage"}), schemas={"Triage": schema})
    )
    assert [p.message for p in found] == [
        'condition `triage.category == "retruns"` compares `triage.category` with "retruns", '
        "which is not one of its labels (billing, returns), so it is never true; did you mean "
        "`returns`?"
    ]
