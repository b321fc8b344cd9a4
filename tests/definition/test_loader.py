from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from statewise.definition import load, loads
from statewise.definition.model import (
    DEFAULT_RETRY,
    Branch,
    Command,
    ErrorKind,
    JoinKind,
    Location,
    RetryPolicy,
    Role,
    StateKind,
)
from statewise.errors import DefinitionError, Problem

FIXTURES = Path(__file__).parent / "fixtures"
ORDERS = FIXTURES / "order_processing.yaml"


def problems(text: str, **kwargs: object) -> list[Problem]:
    with pytest.raises(DefinitionError) as info:
        loads(textwrap.dedent(text), file="wf.yaml", **kwargs)  # type: ignore[arg-type]
    return list(info.value.problems)


def only(text: str, **kwargs: object) -> Problem:
    found = problems(text, **kwargs)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def test_full_example_loads_into_the_model() -> None:
    definition = load(ORDERS)

    assert definition.ref == "order_processing@2"
    assert definition.description == "Orders from checkout to shipping."
    assert definition.initial == "received"
    assert definition.escalation == "manual_review"
    assert list(definition.states) == [
        "received",
        "fraud_check",
        "manual_review",
        "inventory",
        "translate",
        "cancelled",
        "done",
    ]
    assert definition.source == ORDERS.read_text()
    assert definition.location == Location(str(ORDERS), 1, 1)


def test_command_long_form_and_retry_policy() -> None:
    fraud = load(ORDERS).state("fraud_check")

    assert fraud.command == Command(
        "fraud_score",
        result="fraud",
        retry=RetryPolicy(
            attempts=5,
            backoff=2.0,
            multiplier=3.0,
            max_backoff=60.0,
            jitter=0.25,
            retry_on=frozenset({ErrorKind.TRANSIENT}),
            timeout=30.0,
        ),
    )
    assert fraud.max_visits == 3
    assert fraud.on_exhausted == "manual_review"
    assert fraud.location == Location(str(ORDERS), 16, 3)


def test_transitions_keep_order_events_conditions_and_else() -> None:
    first, otherwise, error = load(ORDERS).state("fraud_check").transitions

    assert (first.on, first.target, first.is_else) == ("done", "manual_review", False)
    assert first.when is not None and first.when.source == "fraud.risk > 0.8"
    assert first.when.variables == ("fraud",)
    assert (otherwise.on, otherwise.target, otherwise.is_else, otherwise.when) == (
        "done",
        "inventory",
        True,
        None,
    )
    assert (error.on, error.target) == ("error", "manual_review")
    assert first.location == Location(str(ORDERS), 31, 9)


def test_on_is_a_key_not_the_yaml_1_1_boolean() -> None:
    review = load(ORDERS).state("manual_review")

    assert [t.on for t in review.transitions][:2] == ["approve", "reject"]


def test_timer_transitions_default_their_event_to_the_written_duration() -> None:
    _, _, timer, named = load(ORDERS).state("manual_review").transitions

    assert (timer.on, timer.after) == ("timer:48h", 172_800.0)
    assert (named.on, named.after) == ("sla_breach", 604_800.0)


def test_shorthand_command_uses_state_name_and_default_retry() -> None:
    received = load(ORDERS).state("received")

    assert received.kind is StateKind.INITIAL
    assert received.description == "A new order."
    assert received.command == Command("validate_order", "received", DEFAULT_RETRY)


def test_fixed_branches_store_results_under_the_state_name() -> None:
    fan_out = load(ORDERS).state("inventory").parallel

    assert fan_out is not None
    assert fan_out.branches == (
        Branch("stock", Command("check_stock", "inventory")),
        Branch(
            "price",
            Command("check_price", "inventory", RetryPolicy(attempts=2, timeout=None)),
        ),
    )
    assert (fan_out.join, fan_out.n_of, fan_out.over) == (JoinKind.N_OF, 2, None)


def test_map_fan_out_compiles_over_and_keeps_its_command() -> None:
    fan_out = load(ORDERS).state("translate").parallel

    assert fan_out is not None
    assert fan_out.over is not None and fan_out.over.source == "product.languages"
    assert fan_out.map_command == Command("translate", "translations")
    assert (fan_out.concurrency, fan_out.join, fan_out.branches) == (2, JoinKind.ANY, ())


def test_default_escalation_state_is_added_when_not_declared() -> None:
    definition = loads(
        """
        workflow: small
        states:
          start:
            kind: initial
            command: work
            transitions: [{to: done}]
          done: {kind: final}
        """
    )

    assert definition.escalation == "escalated"
    assert definition.version == 1
    assert list(definition.states) == [
        "start",
        "done",
        "escalated",
        "escalation_resolved",
        "escalation_abandoned",
    ]
    escalated = definition.state("escalated")
    assert escalated.kind is StateKind.HUMAN
    assert escalated.task is not None
    assert (escalated.task.queue, escalated.task.role) == ("escalations", Role.OPERATOR)
    assert "retries spent" in escalated.task.title
    assert {t.on: t.target for t in escalated.transitions} == {
        "resolve": "escalation_resolved",
        "abandon": "escalation_abandoned",
    }
    for end in ("escalation_resolved", "escalation_abandoned"):
        assert definition.state(end).kind is StateKind.FINAL


def test_a_declared_state_named_like_an_added_escalation_end_is_reported() -> None:
    with pytest.raises(DefinitionError) as raised:
        loads(
            """
            workflow: small
            states:
              start:
                kind: initial
                command: work
                transitions: [{to: escalation_resolved}]
              escalation_resolved: {kind: final}
            """
        )
    (problem,) = raised.value.problems
    assert "state `escalation_resolved` has the name of the final state statewise adds" in str(
        problem
    )
    assert problem.line == 8


def test_declared_default_escalation_state_is_kept() -> None:
    definition = loads(
        """
        workflow: small
        states:
          start:
            kind: initial
            command: work
            transitions: [{to: done}]
          done: {kind: final}
          escalated: {kind: final, description: ops look here}
        """
    )

    assert definition.state("escalated").description == "ops look here"


def test_yaml_syntax_error_points_at_the_mark() -> None:
    problem = only(
        """
        workflow: broken
        states:
          start: [unclosed
        """
    )

    assert problem.message.startswith("YAML syntax error:")
    assert (problem.file, problem.line) == ("wf.yaml", 5)


def test_tab_indentation_is_a_syntax_error_with_position() -> None:
    problem = only("workflow: x\nstates:\n\tstart: {}\n")

    assert "YAML syntax error" in problem.message
    assert (problem.line, problem.column) == (3, 1)


def test_empty_file_is_reported() -> None:
    problem = only("   \n")

    assert "the file is empty" in problem.message
    assert (problem.line, problem.column) == (1, 1)


def test_root_must_be_a_mapping() -> None:
    problem = only("- just\n- a list\n")

    assert problem.message == (
        "`workflow file` must be a mapping of settings, not `['just', 'a list']`"
    )
    assert (problem.line, problem.column) == (1, 1)


def test_misspelled_key_suggests_the_right_one_at_the_key() -> None:
    problem = only(
        """
        workflow: typo
        states:
          start:
            kind: initial
            trasitions: [{to: done}]
          done: {kind: final}
        """
    )

    assert problem.message == "unknown key `trasitions`; did you mean `transitions`?"
    assert (problem.line, problem.column) == (6, 5)


def test_misspelled_nested_key_suggests_from_its_own_mapping() -> None:
    found = problems(
        """
        workflow: typo
        states:
          start:
            kind: initial
            command: {name: work, retry: {atempts: 2}}
            transitions: [{to: done}]
          done: {kind: final}
          other:
            kind: final
            bogus: 1
        """
    )

    assert [(p.message, p.line, p.column) for p in found] == [
        ("unknown key `atempts`; did you mean `attempts`?", 6, 35),
        (
            "unknown key `bogus`; expected one of: kind, description, command, agent, transitions, "
            "max_visits, on_exhausted, map, branches, concurrency, join, task, budget, webhook, "
            "retry",
            11,
            5,
        ),
    ]


def test_misspelled_top_level_key_and_missing_states() -> None:
    found = problems(
        """
        workflow: typo
        stats: {}
        """
    )

    assert [(p.message, p.line, p.column) for p in found] == [
        ("`states` is required", 2, 1),
        ("unknown key `stats`; did you mean `states`?", 3, 1),
    ]


def test_unknown_kind_suggests_the_closest_kind() -> None:
    problem = only(
        """
        workflow: kinds
        states:
          start:
            kind: initail
            transitions: [{to: done}]
          done: {kind: final}
        """
    )

    assert problem.message == (
        "`kind` must be one of initial, normal, waiting, parallel, human, final, not `initail`; "
        "did you mean `initial`?"
    )
    assert (problem.line, problem.column) == (5, 11)


def test_wrong_types_name_the_key_and_value_in_every_part() -> None:
    found = problems(
        """
        workflow: types
        version: "2"
        states:
          start:
            kind: initial
            max_visits: 2.5
            transitions: [{to: done}]
          done: {kind: final}
        """
    )

    assert [(p.message, p.line, p.column) for p in found] == [
        ("`version` must be a whole number, not `'2'`", 3, 10),
        ("`max_visits` must be a whole number, not `2.5`", 7, 17),
    ]


def test_state_without_settings_names_the_state() -> None:
    problem = only(
        """
        workflow: empty
        states:
          start:
        """
    )

    assert problem.message == "`start` must be a mapping of settings, not `None`"
    assert (problem.line, problem.column) == (4, 3)


def test_misspelled_keys_in_list_items_and_branches() -> None:
    found = problems(
        """
        workflow: typo
        states:
          start:
            kind: parallel
            branches:
              a: {name: one, retyr: {}}
            transitions:
              - to: start
                wen: "true"
        """
    )

    assert [(p.message, p.line, p.column) for p in found] == [
        ("unknown key `retyr`; did you mean `retry`?", 7, 22),
        ("unknown key `wen`; did you mean `when`?", 10, 9),
    ]


def test_values_yaml_cannot_construct_are_reported() -> None:
    found = problems(
        """
        workflow: tags
        version: !!int many
        description: !custom thing
        ? [complex, key]
        : value
        states:
          start: {kind: initial, transitions: [{to: done}]}
          done: {kind: final}
        """
    )

    assert [(p.message.split(":")[0], p.line, p.column) for p in found] == [
        ("cannot read this value", 3, 10),
        ("cannot read this value", 4, 14),
        ("keys must be plain names, not lists or mappings", 5, 3),
    ]


def test_join_must_be_a_word_or_n_of() -> None:
    problem = only(
        """
        workflow: joins
        states:
          start:
            kind: parallel
            branches: {a: one}
            join: 3
            transitions: [{to: start}]
        """
    )

    assert problem.message == "join must be `all`, `any` or `{n_of: N}`"
    assert (problem.line, problem.column) == (7, 11)


def test_invalid_names_point_at_the_key() -> None:
    problem = only(
        """
        workflow: names
        states:
          Start:
            kind: initial
        """
    )

    assert problem.message.startswith("`Start` is not a valid name; use lower-case letters")
    assert (problem.line, problem.column) == (4, 3)


def test_bad_duration_says_how_to_write_one() -> None:
    problem = only(
        """
        workflow: durations
        states:
          start:
            kind: waiting
            transitions:
              - after: 2 days
                to: start
        """
    )

    assert problem.message.startswith("`2 days` is not a duration; write it like 500ms")
    assert (problem.line, problem.column) == (7, 16)


def test_bad_join_says_what_is_allowed() -> None:
    problem = only(
        """
        workflow: joins
        states:
          start:
            kind: parallel
            branches: {a: one}
            join: most
            transitions: [{to: start}]
        """
    )

    assert problem.message == "join `most` is unknown; write `all`, `any` or `{n_of: 2}`"
    assert (problem.line, problem.column) == (7, 11)


def test_missing_required_key_points_at_the_enclosing_entry() -> None:
    problem = only(
        """
        workflow: targets
        states:
          start:
            kind: initial
            transitions:
              - when: "true"
          done: {kind: final}
        """
    )

    assert problem.message == "`to` is required"
    assert (problem.line, problem.column) == (7, 9)


def test_duplicate_state_is_reported_at_the_second_definition() -> None:
    problem = only(
        """
        workflow: dupes
        states:
          start:
            kind: initial
            transitions: [{to: done}]
          done: {kind: final}
          done: {kind: final, description: again}
        """
    )

    assert problem.message == (
        "state `done` is defined twice (first at line 7); rename or remove one"
    )
    assert (problem.line, problem.column) == (8, 3)


def test_duplicate_branch_and_duplicate_key_are_reported() -> None:
    found = problems(
        """
        workflow: dupes
        states:
          start:
            kind: initial
            transitions: [{to: fan}]
          fan:
            kind: parallel
            branches:
              a: one
              a: two
            transitions:
              - to: done
                to: start
          done: {kind: final}
        """
    )

    assert [(p.message, p.line, p.column) for p in found] == [
        ("branch `a` is defined twice (first at line 10); rename or remove one", 11, 7),
        ("key `to` is defined twice (first at line 13); rename or remove one", 14, 9),
    ]


def test_recursive_alias_is_reported() -> None:
    found = problems("workflow: loop\nstates: &s {a: *s}\n")

    assert "an alias refers to itself" in found[0].message
    assert (found[0].line, found[0].column) == (2, 9)


def test_unreadable_file_is_a_definition_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DefinitionError) as info:
        load(missing)

    (problem,) = info.value.problems
    assert problem.file == str(missing)
    assert problem.message.startswith("cannot read the workflow file")


def test_many_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            workflow: many
            events:
              approve: a reviewer approves
            states:
              start:
                kind: initial
                command: {name: fraud_scor, retry: {attempts: 0, jitter: 2}}
                transitions:
                  - when: "risk >"
                    to: reveiw
                  - to: review
              review:
                kind: waiting
                transitions:
                  - on: aprove
                    to: done
              broken:
                kind: normal
                trasitions: []
              done: {kind: final}
              done: {kind: final}
            """
        )
    )
    with pytest.raises(DefinitionError) as info:
        load(path, commands=frozenset({"fraud_score"}))

    expected = [
        (7, 21, "command `fraud_scor` is not registered; did you mean `fraud_score`?"),
        (7, 51, "`attempts` must be at least 1 (got 0)"),
        (7, 62, "`jitter` must be between 0 and 1 (got 2.0)"),
        (9, 15, "condition `risk >` does not compile: CEL syntax error"),
        (10, 13, "transition goes to unknown state `reveiw`; did you mean `review`?"),
        (15, 13, "event `aprove` is not declared under `events:`; did you mean `approve`?"),
        (19, 5, "unknown key `trasitions`; did you mean `transitions`?"),
        (21, 3, "state `done` is defined twice (first at line 20)"),
    ]
    found = info.value.problems
    assert [(p.line, p.column) for p in found] == [(line, column) for line, column, _ in expected]
    for problem, (_, _, message) in zip(found, expected, strict=True):
        assert problem.message.startswith(message)
    assert all(p.file == str(path) for p in info.value.problems)
    assert str(info.value).count("\n") >= len(info.value.problems) - 1


def test_the_content_hash_ignores_layout_and_comments_but_not_content() -> None:
    from statewise.definition.fingerprint import content_hash, describe_change

    source = "workflow: a\nstates:\n  s:\n    transitions:\n      - on: go\n        to: t\n"
    relaid = "# a comment\nworkflow: a\nstates:\n  s:\n    transitions: [{on: go, to: t}]\n"
    changed = source.replace("to: t", "to: u")
    assert content_hash(source) == content_hash(relaid)
    assert content_hash(source) != content_hash(changed)
    assert describe_change(source, changed) == "@@ -6 +6 @@\n-        to: t\n+        to: u"
