"""AI agents in definitions: the YAML format, its checks, the builder and YAML export."""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from pathlib import Path

import pytest

from statewise.definition import Retry, Workflow, cmd, load, loads, to_yaml, use_agent, validate
from statewise.definition.model import (
    DEFAULT_RETRY,
    AgentSpec,
    Branch,
    Command,
    Definition,
    ErrorKind,
    KnowledgeDoc,
    Location,
    RetryPolicy,
    State,
    StateKind,
    Transition,
    agent_command,
)
from statewise.errors import DefinitionError, Problem

SUPPORT = Path(__file__).parent / "fixtures" / "support_agents.yaml"
CLASSIFIER_RETRY = RetryPolicy(attempts=4, backoff=2.0, timeout=60.0)


def problems(text: str, commands: frozenset[str] | None = None) -> list[Problem]:
    with pytest.raises(DefinitionError) as info:
        loads(textwrap.dedent(text), file="wf.yaml", commands=commands)
    return list(info.value.problems)


def found(text: str, commands: frozenset[str] | None = None) -> list[tuple[str, int, int]]:
    return [(p.message, p.line, p.column) for p in problems(text, commands)]


def only(text: str, commands: frozenset[str] | None = None) -> tuple[str, int, int]:
    (problem,) = found(text, commands)
    return problem


def invalid_output_schema(text: str) -> list[tuple[str, int, int]]:
    """Where each metaschema violation in ``text`` is reported: the path, line and column.

    The sentence between statewise's prefix and the path is jsonschema's, so it is not pinned.
    """
    sites = []
    for message, line, column in found(text):
        reported = re.fullmatch(
            r"`output` of agent `helper` is not valid JSON Schema: .+?"
            r"(?: \(at `([^`]+)`\))?",
            message,
        )
        assert reported is not None, message
        sites.append((reported.group(1) or "", line, column))
    return sites


def with_agent(agent: str, state: str = "agent: helper") -> str:
    """A small workflow whose agent ``helper`` and state ``ask`` are given as YAML lines."""
    return (
        "workflow: agents\nagents:\n  helper:\n"
        + textwrap.indent(textwrap.dedent(agent).strip("\n"), "    ")
        + "\nstates:\n  ask:\n    kind: initial\n"
        + textwrap.indent(textwrap.dedent(state).strip("\n"), "    ")
        + "\n    transitions: [{to: done}]\n  done: {kind: final}\n"
    )


# --- loading ---------------------------------------------------------------------------------


def test_the_full_agent_example_loads_into_the_model() -> None:
    definition = load(SUPPORT, commands=frozenset({"lookup_order", "log_reply"}))

    classifier = definition.agents["classifier"]
    assert classifier == AgentSpec(
        name="classifier",
        instructions="You classify customer inquiries for {{ item.key }}.\n",
        model="local",
        input="{{ inquiry.text }}",
        output={
            "type": "object",
            "properties": {
                "category": {"type": "string", "enum": ["billing", "technical", "shipping"]},
                "urgency": {"type": "number"},
            },
            "required": ["category"],
        },
        tools=("lookup_order",),
        conversation=True,
        max_tool_rounds=3,
        retry=CLASSIFIER_RETRY,
        examples={
            "category": {"billing": ("I was charged twice", "refund my last invoice")},
            "urgency": {"0.9": ("production is down",)},
        },
        knowledge=(KnowledgeDoc("Returns", "Items can be returned within 30 days."),),
        settings={"temperature": 0},
    )
    assert classifier.location == Location(str(SUPPORT), 5, 3)
    assert definition.agents["translator"] == AgentSpec(
        "translator",
        "Translate the reply into the language {{ item.branch }}.",
        model="openai:gpt-4.1-mini",
    )
    assert list(definition.agents) == ["classifier", "translator", "writer"]


def test_a_state_agent_becomes_its_command() -> None:
    definition = load(SUPPORT)

    classify = definition.state("classify").command
    assert classify == Command(agent_command("classifier"), "classify", CLASSIFIER_RETRY)
    assert classify is not None and classify.name == "agent:classifier"
    assert classify.location == Location(str(SUPPORT), 37, 12)
    # The long form names the result and overrides the agent's retry.
    billing = definition.state("billing").command
    assert billing == Command("agent:classifier", "triage", RetryPolicy(attempts=2))
    # An explicit empty retry is the default policy, not the agent's.
    assert definition.state("answer").command == Command("agent:writer", "answer", DEFAULT_RETRY)


def test_parallel_branches_and_maps_can_run_agents() -> None:
    definition = load(SUPPORT)

    translate = definition.state("translate").parallel
    assert translate is not None
    assert translate.branches == (
        Branch("fr", Command("agent:translator", "translate")),
        Branch("de", Command("agent:translator", "german", RetryPolicy(attempts=1))),
        Branch("audit", Command("log_reply", "translate")),
    )
    localise = definition.state("localise").parallel
    assert localise is not None
    assert localise.map_command == Command("agent:writer", "localise", RetryPolicy(attempts=5))


def test_agents_are_optional_and_unused_agents_are_allowed() -> None:
    plain = loads(
        "workflow: w\nstates:\n  a: {kind: initial, transitions: [{to: b}]}\n  b: {kind: final}\n"
    )
    unused = loads(with_agent("instructions: Help.", state="command: work"))

    assert plain.agents == {}
    assert unused.agents == {"helper": AgentSpec("helper", "Help.")}


def test_agent_commands_are_not_checked_against_the_registry() -> None:
    definition = loads(with_agent("instructions: Help."), commands=frozenset())

    assert definition.state("ask").command == Command("agent:helper", "ask")


def test_agent_results_are_known_to_conditions() -> None:
    text = """
        workflow: results
        input: [inquiry]
        agents:
          triager: {instructions: Triage.}
        states:
          start:
            kind: initial
            agent: {name: triager, result: triage}
            transitions:
              - when: triage.urgent && inquiry.vip
                to: done
              - else: true
                to: done
          done: {kind: final}
        """

    assert loads(textwrap.dedent(text)).state("start").command == Command("agent:triager", "triage")


# --- problems ---------------------------------------------------------------------------------


def test_unknown_agent_suggests_the_closest() -> None:
    text = with_agent("instructions: Help.", state="agent: helpr")

    assert only(text) == (
        "agent `helpr` is not declared under `agents:`; did you mean `helper`?",
        8,
        12,
    )


def test_unknown_agent_in_long_form_branch_and_map_points_at_the_name() -> None:
    text = """
        workflow: agents
        agents:
          classifier: {instructions: Classify.}
        states:
          one:
            kind: initial
            agent: {name: clasifier, result: label}
            transitions: [{to: fan}]
          fan:
            kind: parallel
            branches:
              a: {agent: clasifier}
            transitions: [{to: each}]
          each:
            kind: parallel
            map: {over: label.items, command: {agent: writer}}
            transitions: [{to: done}]
          done: {kind: final}
        """

    assert found(text) == [
        ("agent `clasifier` is not declared under `agents:`; did you mean `classifier`?", 8, 19),
        ("agent `clasifier` is not declared under `agents:`; did you mean `classifier`?", 13, 18),
        ("agent `writer` is not declared under `agents:` (declared: classifier)", 17, 47),
    ]


def test_unknown_agent_without_any_agents() -> None:
    text = """
        workflow: agents
        states:
          start: {kind: initial, agent: ghost, transitions: [{to: done}]}
          done: {kind: final}
        """

    assert only(text) == ("agent `ghost` is not declared under `agents:`", 4, 33)


def test_agent_and_command_on_one_state() -> None:
    text = with_agent("instructions: Help.", state="command: work\nagent: helper")

    assert only(text) == (
        "state `ask` has both `command` and `agent`; an agent runs as the state's command, "
        "so keep one",
        9,
        12,
    )


def test_a_command_needs_a_name_or_an_agent_but_not_both() -> None:
    text = """
        workflow: agents
        agents:
          helper: {instructions: Help.}
        states:
          fan:
            kind: initial
            branches:
              a: {agent: helper, name: work}
              b: {result: x}
            transitions: [{to: done}]
          done: {kind: final}
        """

    assert found(text) == [
        ("give a command `name` or an `agent`, not both", 9, 7),
        (
            "`name` is required (or `agent: NAME` to run an agent, `task:` for a person, "
            "`steps:` for a sequence)",
            10,
            7,
        ),
    ]


def test_output_that_is_not_a_mapping_is_a_schema_problem() -> None:
    assert only(with_agent("instructions: Help.\noutput: [category]")) == (
        "`output` must be the JSON Schema of an object, like "
        "`{type: object, properties: {...}}`, or the name of a registered output model, "
        "not `['category']`",
        5,
        5,
    )


def test_output_may_name_a_registered_model() -> None:
    text = with_agent("instructions: Help.\noutput: Triage\nexamples:\n  team: {billing: [x]}")

    helper = loads(text).agents["helper"]

    assert helper.output == "Triage"
    # A model's fields are unknown here, so its examples are not checked against them.
    assert helper.examples == {"team": {"billing": ("x",)}}
    assert loads(text, commands=frozenset({"Triage"})).agents["helper"].output == "Triage"
    assert only(with_agent('instructions: Help.\noutput: ""')) == (
        "`output` names no output model; give its registered name",
        5,
        5,
    )


def test_an_unregistered_output_model_is_reported_when_names_are_given() -> None:
    text = with_agent("instructions: Help.\noutput: Triag")

    assert only(text, commands=frozenset({"Triage", "lookup_order"})) == (
        "output model `Triag` of agent `helper` is not registered; did you mean `Triage`? "
        "(register a pydantic model with `@registry.output_model()`, or give a JSON Schema)",
        5,
        13,
    )
    assert found(text, commands=frozenset())[0][0].startswith(
        "output model `Triag` of agent `helper` is not registered (register"
    )


def test_output_must_describe_an_object_with_properties() -> None:
    text = with_agent(
        """
        instructions: Help.
        output:
          type: string
        """
    )

    assert found(text) == [
        (
            "`output` of agent `helper` needs `properties:`, a mapping from each field to its "
            "schema (e.g. `category: {type: string}`)",
            5,
            5,
        ),
        (
            "`output` of agent `helper` must be an object schema with `type: object` "
            "(it has `type: string`); structured replies are objects of named fields",
            6,
            13,
        ),
    ]


def test_output_fields_must_be_schemas_and_required_ones_must_exist() -> None:
    text = with_agent(
        """
        instructions: Help.
        output:
          properties:
            category: string
            urgency: {type: number}
          required: [category, urgncy]
        """
    )

    assert found(text) == [
        (
            "`output` of agent `helper` must be an object schema with `type: object` "
            "(it has no `type`); structured replies are objects of named fields",
            5,
            5,
        ),
        (
            "field `category` in the `output` of agent `helper` must be a schema mapping like "
            "`{type: string}`, not `'string'`",
            7,
            19,
        ),
        (
            "required field `urgncy` is not among the `properties` of agent `helper`'s output; "
            "did you mean `urgency`?",
            9,
            28,
        ),
    ]


def test_output_must_be_valid_json_schema() -> None:
    text = with_agent(
        """
        instructions: Help.
        output:
          type: object
          properties:
            urgency: {type: number, minimum: high}
            code: {type: string, pattern: "["}
          additionalProperties: nope
        """
    )

    assert invalid_output_schema(text) == [
        ("properties.urgency.minimum", 8, 42),
        ("properties.code.pattern", 9, 39),
        ("additionalProperties", 10, 29),
    ]


def test_output_schema_may_name_its_dialect() -> None:
    # Draft-04's boolean `exclusiveMaximum` is invalid in the default Draft 2020-12.
    output = """
        instructions: Help.
        output:
          {schema}
          type: object
          properties:
            score: {type: number, maximum: 1, exclusiveMaximum: true}
        """
    draft_4 = with_agent(
        output.replace("{schema}", "$schema: http://json-schema.org/draft-04/schema#")
    )
    default = with_agent(output.replace("{schema}", ""))

    assert loads(draft_4).agents["helper"].output is not None
    assert invalid_output_schema(default) == [("properties.score.exclusiveMaximum", 9, 61)]


def test_json_schema_check_is_skipped_without_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    output = "output: {type: object, properties: {n: {type: number, minimum: high}}}"

    definition = loads(with_agent(f"instructions: Help.\n{output}"))

    assert definition.agents["helper"].output == {
        "type": "object",
        "properties": {"n": {"type": "number", "minimum": "high"}},
    }


def test_examples_must_name_output_fields() -> None:
    output = "output: {type: object, properties: {category: {type: string}}}"
    unknown = with_agent(f"instructions: Help.\n{output}\nexamples:\n  categry: {{a: [x]}}")
    no_output = with_agent("instructions: Help.\nexamples:\n  category: {a: [x]}")

    assert only(unknown) == (
        "examples for `categry` name no field of agent `helper`'s output; did you mean `category`?",
        7,
        7,
    )
    assert only(no_output) == (
        "agent `helper` has `examples` but no `output` schema; examples are given per output "
        "field, so declare the fields under `output:`",
        5,
        5,
    )


def test_templates_must_compile() -> None:
    text = with_agent(
        """
        instructions: |
          You help with {{ item.key }}.
          {% if vip %}Be quick.
        input: "{{ inquiry.text }"
        """
    )

    assert found(text) == [
        (
            "`instructions` of agent `helper` is not a valid Jinja2 template: Unexpected end "
            "of template. Jinja was looking for the following tags: 'elif' or 'else' or "
            "'endif'. The innermost block that needs to be closed is 'if'. "
            "(line 2 of the template)",
            4,
            19,
        ),
        (
            "`input` of agent `helper` is not a valid Jinja2 template: unexpected '}'",
            7,
            12,
        ),
    ]


def test_template_check_is_skipped_without_jinja2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)

    definition = loads(with_agent('instructions: "{{ broken"'))

    assert definition.agents["helper"].instructions == "{{ broken"


def test_conversation_must_be_per_item_or_none() -> None:
    assert only(with_agent("instructions: Help.\nconversation: per_tem")) == (
        "`conversation` must be one of per_item, none, not `per_tem`; did you mean `per_item`?",
        5,
        19,
    )
    assert (
        loads(with_agent("instructions: Help.\nconversation: none")).agents["helper"].conversation
        is False
    )


def test_ranges_of_an_agent() -> None:
    text = with_agent(
        """
        instructions: Help.
        max_tool_rounds: -1
        retry: {attempts: 0, jitter: 3}
        """
    )

    # The state inherits the agent's retry; the problem is reported once, at the agent.
    assert found(text) == [
        ("`max_tool_rounds` cannot be negative (got -1)", 5, 22),
        ("`attempts` must be at least 1 (got 0)", 6, 23),
        ("`jitter` must be between 0 and 1 (got 3.0)", 6, 34),
    ]


def test_a_states_own_retry_for_an_agent_is_checked_at_the_state() -> None:
    text = with_agent("instructions: Help.", state="agent: {name: helper, retry: {attempts: 0}}")

    assert only(text) == ("`attempts` must be at least 1 (got 0)", 8, 45)


def test_agent_schema_problems_point_at_the_key() -> None:
    text = """
        workflow: agents
        agents:
          helper:
            instrucions: Help.
          other:
            instructions: Help.
            tools: lookup
        states:
          start: {kind: initial, agent: helper, transitions: [{to: done}]}
          done: {kind: final}
        """

    # `helper` did not parse, but the state still finds it declared.
    assert found(text) == [
        ("`instructions` is required", 4, 3),
        ("unknown key `instrucions`; did you mean `instructions`?", 5, 5),
        ("`tools` must be a list, not `'lookup'`", 8, 12),
    ]


def test_an_agent_defined_twice() -> None:
    text = """
        workflow: agents
        agents:
          helper: {instructions: One.}
          helper: {instructions: Two.}
        states:
          start: {kind: initial, agent: helper, transitions: [{to: done}]}
          done: {kind: final}
        """

    assert only(text) == (
        "agent `helper` is defined twice (first at line 4); rename or remove one",
        5,
        3,
    )


def test_unregistered_tools_are_reported_with_a_suggestion() -> None:
    text = with_agent("instructions: Help.\ntools: [lookup_order, lookup_ordr]")

    assert only(text, commands=frozenset({"lookup_order", "work"})) == (
        "tool `lookup_ordr` of agent `helper` is not registered; did you mean `lookup_order`? "
        "(registered: lookup_order, work)",
        5,
        27,
    )
    assert loads(with_agent("instructions: Help.\ntools: [anything]")).agents["helper"].tools == (
        "anything",
    )


def test_reserved_result_key_of_an_agent_state() -> None:
    text = with_agent("instructions: Help.", state="agent: {name: helper, result: item}")

    assert only(text) == (
        "result key `item` is reserved for the engine (attempts, error, event, item, visits); "
        "give the command another `result`",
        8,
        35,
    )


def test_condition_variables_suggest_agent_results() -> None:
    text = """
        workflow: results
        input: [inquiry]
        agents:
          triager: {instructions: Triage.}
        states:
          start:
            kind: initial
            agent: {name: triager, result: triage}
            transitions: [{when: triag.urgent, to: done}, {else: true, to: done}]
          done: {kind: final}
        """

    message, line, _ = only(text)
    assert message.endswith("did you mean `triage`?")
    assert line == 10


def test_states_that_cannot_run_an_agent_are_reported_at_agent() -> None:
    text = """
        workflow: agents
        agents:
          helper: {instructions: Help.}
        states:
          start:
            kind: initial
            transitions: [{to: wait}]
          wait:
            kind: waiting
            agent: helper
            transitions: [{on: poke, to: done}]
          done: {kind: final, agent: helper}
        """

    assert found(text) == [
        (
            "waiting state `wait` cannot run a command, it only waits for events and timers; "
            "run `agent:helper` in a state before it",
            11,
            12,
        ),
        (
            "final state `done` cannot run a command; run `agent:helper` in a state before it",
            13,
            30,
        ),
    ]


def test_validate_locates_agent_problems_of_a_model_made_in_code() -> None:
    where = Location("agents.py", 12, 1)
    states = {
        "start": State(
            "start",
            StateKind.INITIAL,
            command=Command(agent_command("helper"), "start"),
            transitions=(Transition("done"),),
        ),
        "done": State("done", StateKind.FINAL),
        "escalated": State("escalated", StateKind.FINAL),
    }
    agent = AgentSpec("helper", "Help.", output={"type": "object"}, location=where)
    definition = Definition("code", 1, states, "start", agents={"helper": agent})

    (problem,) = validate(definition)

    assert problem.message.startswith("`output` of agent `helper` needs `properties:`")
    assert (problem.file, problem.line) == ("agents.py", 12)


# --- builder and export -----------------------------------------------------------------------


def support() -> Workflow:
    wf = Workflow(
        "support", description="Customer inquiries, triaged by agents.", inputs=["inquiry"]
    )
    classifier = wf.agent(
        "classifier",
        model="local",
        instructions="You classify customer inquiries for {{ item.key }}.\n",
        input="{{ inquiry.text }}",
        output={
            "type": "object",
            "properties": {
                "category": {"type": "string", "enum": ["billing", "technical", "shipping"]},
                "urgency": {"type": "number"},
            },
            "required": ["category"],
        },
        tools=["lookup_order"],
        conversation=True,
        retry=Retry(attempts=4, backoff="2s", timeout="60s"),
        examples={
            "category": {"billing": ["I was charged twice", "refund my last invoice"]},
            "urgency": {"0.9": ["production is down"]},
        },
        knowledge=[{"title": "Returns", "text": "Items can be returned within 30 days."}],
        settings={"temperature": 0},
    )
    wf.agent(
        "translator",
        model="openai:gpt-4.1-mini",
        instructions="Translate the reply into the language {{ item.branch }}.",
    )
    wf.agent("writer", instructions="Answer the customer.", retry=Retry(attempts=5))
    wf.initial("classify", agent=classifier).to(
        "billing", when="classify.category == 'billing'"
    ).otherwise("answer")
    wf.state("billing", agent=cmd("classifier", result="triage", retry=Retry(attempts=2))).to(
        "answer", when="triage.urgency > 0.5"
    ).otherwise("translate")
    wf.state("answer", agent=cmd("writer", retry=Retry())).to("translate")
    wf.parallel(
        "translate",
        branches={
            "fr": use_agent("translator"),
            "de": use_agent("translator", result="german", retry=Retry(attempts=1)),
            "audit": "log_reply",
        },
    ).to("localise")
    wf.parallel("localise", over="inquiry.languages", command=use_agent("writer")).to("done")
    wf.final("done")
    return wf


def test_builder_agents_make_the_same_definition_as_yaml() -> None:
    built = support().build(commands=frozenset({"lookup_order", "log_reply"}))
    loaded = load(SUPPORT)

    assert built == loaded
    assert built.agents["classifier"].retry == CLASSIFIER_RETRY
    assert built.state("classify").command == Command(
        "agent:classifier", "classify", CLASSIFIER_RETRY
    )


def test_builder_to_yaml_loads_back_equal_with_agents_above_states() -> None:
    wf = support()
    built = wf.build()

    text = wf.to_yaml()

    assert loads(text) == built
    assert text.index("agents:") < text.index("states:")
    assert "    agent: classifier\n" in text
    assert "      fr:\n        agent: translator\n" in text


def test_to_yaml_round_trips_agents_from_a_file_and_the_builder() -> None:
    loaded = load(SUPPORT)
    built = support().build()

    text = to_yaml(loaded)

    assert loads(text) == loaded
    assert loads(to_yaml(built)) == built
    assert (
        "    instructions: |\n      You classify customer inquiries for {{ item.key }}.\n" in text
    )
    assert "    agent: classifier\n" in text
    assert "    agent:\n      name: classifier\n      result: triage\n" in text
    assert "    agent:\n      name: writer\n      retry: {}\n" in text
    assert "      de:\n        agent: translator\n        result: german\n" in text


def test_to_yaml_writes_a_state_retry_only_when_it_differs_from_the_agents() -> None:
    wf = Workflow("retries")
    wf.agent("helper", instructions="Help.", retry=Retry(retry_on=[ErrorKind.PERMANENT]))
    wf.initial("start", agent=cmd("helper", retry=Retry(retry_on=[ErrorKind.PERMANENT]))).to("done")
    wf.final("done")
    definition = wf.build()

    text = to_yaml(definition)

    assert "    agent: helper\n" in text
    assert "retry_on:\n        - permanent\n" in text
    assert loads(text) == definition


def test_builder_agent_with_a_named_output_model_round_trips() -> None:
    wf = Workflow("named")
    wf.agent(
        "triage",
        instructions="Route it.",
        output="Triage",
        examples={"team": {"billing": ["invoice"]}},
    )
    wf.initial("route", agent="triage").to("done", when="route.team == 'billing'").otherwise("done")
    wf.final("done")
    definition = wf.build(commands=frozenset({"Triage"}))

    text = wf.to_yaml()

    assert definition.agents["triage"].output == "Triage"
    assert "    output: Triage\n" in text
    assert loads(text) == definition
    assert loads(to_yaml(definition), commands=frozenset({"Triage"})) == definition
    with pytest.raises(DefinitionError, match="output model `Triage` of agent `triage`"):
        wf.build(commands=frozenset({"lookup_order"}))


def test_builder_problems_point_at_the_python_line() -> None:
    wf = Workflow("lines")
    wf.agent("helper", instructions="Help.")
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    wf.agent("helper", instructions="Again.")
    wf.agent("broken", instructions="{% if %}", max_tool_rounds=-2)
    wf.initial("start", agent="helpr").to("done")
    wf.final("done")

    with pytest.raises(DefinitionError) as info:
        wf.build()

    by_message = {p.message: p for p in info.value.problems}
    twice = by_message[f"agent `helper` is defined twice (first at line {line - 2}); rename one"]
    assert (twice.file, twice.line) == (__file__, line)
    assert sorted(by_message) == [
        "`instructions` of agent `broken` is not a valid Jinja2 template: "
        "Expected an expression, got 'end of statement block'",
        "`max_tool_rounds` cannot be negative (got -2)",
        f"agent `helper` is defined twice (first at line {line - 2}); rename one",
        "agent `helpr` is not declared under `agents:`; did you mean `helper`?",
    ]
    assert all(p.line in (line, line + 1, line + 2) for p in info.value.problems)
