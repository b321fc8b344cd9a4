"""Every validation rule, each checked for its message and for the line and column it names."""

from __future__ import annotations

import textwrap

import pytest

from statewise.conditions import compile_condition
from statewise.definition import Declarations, loads, validate
from statewise.definition.model import (
    Branch,
    Command,
    Definition,
    JoinKind,
    Location,
    Parallel,
    RetryPolicy,
    State,
    StateKind,
    Transition,
)
from statewise.errors import DefinitionError, Problem


def problems(text: str, commands: frozenset[str] | None = None) -> list[Problem]:
    with pytest.raises(DefinitionError) as info:
        loads(textwrap.dedent(text), file="wf.yaml", commands=commands)
    return list(info.value.problems)


def only(text: str, commands: frozenset[str] | None = None) -> tuple[str, int, int]:
    found = problems(text, commands)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0].message, found[0].line, found[0].column


def test_unknown_target_suggests_a_close_state() -> None:
    assert only(
        """
        workflow: refs
        states:
          start:
            kind: initial
            transitions:
              - when: start.ok
                to: reveiw
              - else: true
                to: review
          review: {kind: final}
        """
    ) == ("transition goes to unknown state `reveiw`; did you mean `review`?", 8, 13)


def test_unknown_on_exhausted() -> None:
    assert only(
        """
        workflow: refs
        states:
          start:
            kind: initial
            max_visits: 2
            on_exhausted: gone
            transitions: [{to: done}]
          done: {kind: final}
        """
    ) == ("`on_exhausted` names unknown state `gone`; did you mean `done`?", 7, 19)


def test_explicit_escalation_must_exist() -> None:
    assert only(
        """
        workflow: refs
        escalation: manual_reveiw
        states:
          start:
            kind: initial
            transitions: [{to: manual_review}]
          manual_review: {kind: final}
        """
    ) == (
        "escalation state `manual_reveiw` is not declared; did you mean `manual_review`?; "
        "declare it as a state or remove `escalation:` to get the default `escalated` state, "
        "a person's task",
        3,
        13,
    )


def test_no_initial_state() -> None:
    assert only(
        """
        workflow: start
        states:
          done: {kind: final}
        """
    ) == ("no initial state; mark the state items start in with `kind: initial`", 3, 1)


def test_second_initial_state_is_reported_at_its_kind() -> None:
    assert only(
        """
        workflow: start
        states:
          one:
            kind: initial
            transitions: [{to: two}]
          two:
            kind: initial
            transitions: [{to: done}]
          done: {kind: final}
        """
    ) == (
        "state `two` is a second initial state (the first is `one`); "
        "a workflow has exactly one, so make this one `kind: normal`",
        8,
        11,
    )


def test_unreachable_state() -> None:
    assert only(
        """
        workflow: reach
        states:
          start:
            kind: initial
            transitions: [{to: done}]
          orphan:
            transitions: [{to: done}]
          done: {kind: final}
        """
    ) == (
        "state `orphan` can never be reached from the initial state `start`; "
        "add a transition to it or remove it",
        7,
        3,
    )


def test_escalation_edges_make_states_reachable() -> None:
    definition = loads(
        textwrap.dedent(
            """
            workflow: reach
            escalation: triage
            states:
              start:
                kind: initial
                command: work
                transitions: [{to: done}]
              triage:
                kind: waiting
                transitions: [{on: fixed, to: done}]
              done: {kind: final}
            """
        )
    )

    assert definition.escalation == "triage"
    assert "escalated" not in definition.states


def test_unused_synthesised_escalation_is_not_reported() -> None:
    definition = loads(
        "workflow: w\nstates:\n  s: {kind: initial, transitions: [{to: e}]}\n  e: {kind: final}\n"
    )

    assert "escalated" in definition.states


def test_declared_escalation_state_that_nothing_reaches_is_reported() -> None:
    assert only(
        """
        workflow: reach
        states:
          start:
            kind: initial
            transitions: [{to: done}]
          done: {kind: final}
          escalated: {kind: final}
        """
    )[1:] == (8, 3)


def test_state_without_transitions_has_no_way_out() -> None:
    assert only(
        """
        workflow: stuck
        states:
          start:
            kind: initial
            command: work
        """
    ) == (
        "state `start` has no transitions, so items would stay there forever; "
        "add a transition or make it `kind: final`",
        4,
        3,
    )


def test_final_state_with_transitions_and_command() -> None:
    found = problems(
        """
        workflow: finals
        states:
          start:
            kind: initial
            transitions: [{to: done}]
          done:
            kind: final
            command: notify
            transitions: [{to: start}]
        """
    )

    assert [(p.message, p.line, p.column) for p in found] == [
        (
            "final state `done` cannot run a command; run `notify` in a state before it",
            9,
            14,
        ),
        (
            "final state `done` cannot have transitions, items end there; "
            "remove them or make it `kind: normal`",
            10,
            5,
        ),
    ]


def test_waiting_state_with_command() -> None:
    assert only(
        """
        workflow: waits
        states:
          start:
            kind: initial
            transitions: [{to: wait}]
          wait:
            kind: waiting
            command: poll
            transitions: [{on: go, to: done}]
          done: {kind: final}
        """
    ) == (
        "waiting state `wait` cannot run a command, it only waits for events and timers; "
        "run `poll` in a state before it",
        9,
        14,
    )


def test_parallel_state_needs_branches_or_map() -> None:
    assert only(
        """
        workflow: fan
        states:
          start:
            kind: initial
            transitions: [{to: fan}]
          fan:
            kind: parallel
            concurrency: 2
            transitions: [{to: done}]
          done: {kind: final}
        """
    ) == ("parallel state `fan` needs `branches:` or `map:` to say what runs", 7, 3)


def test_parallel_state_with_both_branches_and_map_and_a_command() -> None:
    found = problems(
        """
        workflow: fan
        states:
          start:
            kind: initial
            transitions: [{to: fan}]
          fan:
            kind: parallel
            command: nope
            branches: {a: one}
            map: {over: items, command: each}
            transitions: [{to: done}]
          done: {kind: final}
        """
    )

    assert [(p.message, p.line, p.column) for p in found] == [
        (
            "parallel state `fan` cannot have `command`; "
            "give the commands under `branches:` or `map:`",
            9,
            14,
        ),
        ("parallel state `fan` has both `branches:` and `map:`; keep one", 11, 5),
    ]


def test_normal_state_with_branches() -> None:
    assert only(
        """
        workflow: fan
        states:
          start:
            kind: initial
            branches: {a: one}
            transitions: [{to: done}]
          done: {kind: final}
        """
    ) == (
        "state `start` has parallel settings but is `kind: initial`; "
        "set `kind: parallel` or remove them",
        6,
        5,
    )


def test_waiting_state_that_could_never_leave() -> None:
    found = problems(
        """
        workflow: waits
        states:
          start:
            kind: initial
            transitions: [{to: wait}]
          wait:
            kind: waiting
            transitions:
              - to: done
          done: {kind: final}
        """
    )

    assert [(p.message, p.line, p.column) for p in found] == [
        (
            "waiting state `wait` has no transition on an external event or timer, so items "
            "could never leave it; add `on: <event>` or `after: <duration>`",
            7,
            3,
        ),
        (
            "waiting state `wait` never produces `done`; give this transition "
            "`on: <event>` or `after: <duration>`",
            10,
            9,
        ),
    ]


def test_error_transition_without_anything_that_fails() -> None:
    assert only(
        """
        workflow: errors
        states:
          start:
            kind: initial
            transitions:
              - to: done
              - on: error
                to: done
          done: {kind: final}
        """
    ) == ("`on: error` can never fire in state `start`: it runs no command", 8, 13)


def test_else_must_be_last_for_its_event() -> None:
    assert only(
        """
        workflow: order
        states:
          start:
            kind: initial
            command: work
            transitions:
              - else: true
                to: done
              - when: start.ok
                to: done
              - on: error
                to: done
          done: {kind: final}
        """
    ) == (
        "`else` must be the last transition for event `done` in state `start`; "
        "move it below the others",
        8,
        15,
    )


def test_second_else_and_else_with_when() -> None:
    found = problems(
        """
        workflow: order
        states:
          start:
            kind: initial
            transitions:
              - when: "true"
                to: done
              - else: true
                when: "false"
                to: done
              - else: true
                to: done
          done: {kind: final}
        """
    )

    assert [(p.message, p.line, p.column) for p in found] == [
        ("a transition cannot have both `when` and `else`; drop one", 9, 15),
        (
            "`else` must be the last transition for event `done` in state `start`; "
            "move it below the others",
            9,
            15,
        ),
        ("state `start` has a second `else` for event `done`; keep one", 12, 15),
    ]


def test_transitions_after_an_unconditional_one_can_never_fire() -> None:
    assert only(
        """
        workflow: order
        states:
          start:
            kind: initial
            transitions:
              - to: done
              - when: "true"
                to: other
          other: {kind: final}
          done: {kind: final}
        """
    )[:2] == (
        "transition to `other` can never fire: the transition to `done` above it always "
        "matches event `done`",
        8,
    )


def test_declared_event_that_no_state_accepts() -> None:
    assert only(
        """
        workflow: events
        events:
          approve: yes
          cancel: never used
        states:
          start:
            kind: waiting
            transitions: [{on: approve, to: done}]
          go:
            kind: initial
            transitions: [{to: start}]
          done: {kind: final}
        """
    ) == (
        "event `cancel` is declared but no state accepts it; add a transition "
        "`on: cancel` to a waiting state or remove the declaration",
        5,
        11,
    )


def test_undeclared_event_suggests_a_declared_one() -> None:
    assert only(
        """
        workflow: events
        events:
          approve: a reviewer approves
        states:
          start:
            kind: initial
            transitions: [{to: wait}]
          wait:
            kind: waiting
            transitions:
              - on: approve
                to: done
              - on: aprove
                to: done
          done: {kind: final}
        """
    ) == ("event `aprove` is not declared under `events:`; did you mean `approve`?", 14, 13)


def test_events_are_not_checked_when_none_are_declared() -> None:
    definition = loads(
        "workflow: w\nstates:\n  s: {kind: initial, transitions: [{to: w}]}\n"
        "  w: {kind: waiting, transitions: [{on: anything, to: e}, {after: 1h, to: e}]}\n"
        "  e: {kind: final}\n"
    )

    # the outcomes of the escalation task statewise adds are events like any task's
    assert definition.external_events() == frozenset({"anything", "resolve", "abandon"})


PAYMENT = """
    workflow: payment
    events:
      pay:
        description: the customer paid
        data:
          type: object
          required: [amount]
          properties:
            amount: {type: number}
            card: {type: object, properties: {brand: {type: string}}}
      nudge: a reminder was sent
    states:
      start:
        kind: initial
        transitions: [{to: wait}]
      wait:
        kind: waiting
        transitions:
          - on: pay
            when: {when}
            to: done
          - on: pay
            else: true
            to: done
          - on: nudge
            to: done
      done: {kind: final}
    """


def test_an_event_keeps_its_description_and_data_schema() -> None:
    definition = loads(textwrap.dedent(PAYMENT.replace("{when}", "event.data.amount > 10")))
    assert definition.events is not None
    pay, nudge = definition.events["pay"], definition.events["nudge"]
    assert pay.description == "the customer paid"
    assert pay.data is not None and pay.data["required"] == ["amount"]
    assert (nudge.description, nudge.data) == ("a reminder was sent", None)


@pytest.mark.parametrize(
    ("when", "field", "hint"),
    [
        ("event.data.amout > 10", "amout", "; did you mean `amount`?"),
        ("has(event.data.card.brnd)", "card.brnd", "; did you mean `brand`?"),
        ("event.data.total > 10 && event.data.amount > 1", "total", ""),
    ],
)
def test_a_condition_reading_event_data_its_schema_lacks(when: str, field: str, hint: str) -> None:
    message, line, column = only(PAYMENT.replace("{when}", when))
    assert message.startswith(
        f"condition `{when}` reads `event.data.{field}`, which the `data` schema of event `pay` "
        f"does not declare{hint}"
    )
    assert (line, column) == (21, 15)


def test_conditions_on_fields_the_schema_declares_or_cannot_tell_pass() -> None:
    for when in ("event.data.amount > 10", "event.data.card.brand == 'x'", "has(event.data.card)"):
        loads(textwrap.dedent(PAYMENT.replace("{when}", when)))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("{type: array}", "the `data` of event `pay` must describe an object (`type: object`)"),
        (
            "{type: object, required: amount}",
            "the `data` of event `pay` is not a valid JSON Schema: ",
        ),
        (
            "{type: object, properties: {a: {$ref: 'https://example.com/a.json'}}}",
            "the `data` of event `pay` refers to `https://example.com/a.json`; only references "
            "inside the schema (`#/$defs/...`) are resolved, statewise never fetches a schema",
        ),
    ],
)
def test_an_event_data_schema_must_be_a_valid_object_schema(data: str, expected: str) -> None:
    found = problems(
        f"""
        workflow: payment
        events:
          pay: {{description: paid, data: {data}}}
        states:
          start: {{kind: initial, transitions: [{{to: wait}}]}}
          wait: {{kind: waiting, transitions: [{{on: pay, to: done}}]}}
          done: {{kind: final}}
        """
    )
    assert [(p.message[: len(expected)], p.line) for p in found] == [(expected, 4)]


def test_an_event_data_schema_must_be_a_mapping() -> None:
    found = problems(
        """
        workflow: payment
        events:
          pay: {description: paid, data: [amount]}
        states:
          start: {kind: initial, transitions: [{to: wait}]}
          wait: {kind: waiting, transitions: [{on: pay, to: done}]}
          done: {kind: final}
        """
    )
    assert [(p.line, "data" in p.message) for p in found] == [(4, True)]


@pytest.mark.parametrize(
    ("kind", "more"),
    [
        (
            "initial",
            " An item cannot wait in the initial state: make this one `kind: waiting` and "
            "start in an initial state that goes to it",
        ),
        ("normal", ""),
    ],
)
def test_a_state_that_can_only_wait_but_does_not_is_caught_with_a_hint(
    kind: str, more: str
) -> None:
    # The case is the initial state itself; a later `kind: normal` state is the same.
    first = "" if kind == "initial" else "first: {kind: initial, transitions: [{to: wait}]}"
    message, line, column = only(
        f"""
        workflow: waits
        states:
          {first}
          wait:
            kind: {kind}
            transitions:
              - on: done_
                to: finished
              - after: 1h
                to: finished
          finished: {{kind: final}}
        """
    )
    assert message == (
        "state `wait` runs no command and has no `done` transition, so every item fails "
        "the moment it enters (nothing can fire on entry; it only has `done_`, `timer:1h`); "
        f"did you mean `kind: waiting`? (or give it a `command:` that runs on entry){more}"
    )
    assert (line, column) == (6, 11)


def test_a_decision_state_with_a_done_transition_beside_events_is_fine() -> None:
    loads(
        textwrap.dedent(
            """
            workflow: waits
            states:
              first:
                kind: initial
                transitions:
                  - {on: poke, to: finished}
                  - {when: "visits.first > 0", to: finished}
                  - {else: true, to: finished}
              finished: {kind: final}
            """
        )
    )


def test_condition_that_does_not_compile_in_when_and_over() -> None:
    found = problems(
        """
        workflow: cel
        states:
          start:
            kind: initial
            transitions:
              - when: "a >"
                to: fan
              - else: true
                to: fan
          fan:
            kind: parallel
            map: {over: "items[", command: each}
            transitions: [{to: done}]
          done: {kind: final}
        """
    )

    assert [(p.line, p.column) for p in found] == [(7, 15), (13, 17)]
    assert found[0].message.startswith("condition `a >` does not compile: CEL syntax error")
    assert found[1].message.startswith("condition `items[` does not compile: CEL syntax error")


def test_unknown_condition_variable_suggests_a_known_name() -> None:
    assert only(
        """
        workflow: vars
        input: [order]
        states:
          start:
            kind: initial
            command: {name: score, result: fraud}
            transitions:
              - when: fruad.risk > 0.5
                to: done
              - else: true
                to: done
          done: {kind: final}
        """
    ) == (
        "condition `fruad.risk > 0.5` reads `fruad`, which is not an input key, a command "
        "result, a task decision, an event or an engine fact; did you mean `fraud`?",
        9,
        15,
    )


def test_unknown_condition_variable_lists_known_names_when_nothing_is_close() -> None:
    message, line, column = only(
        """
        workflow: vars
        input: [order]
        states:
          start:
            kind: initial
            transitions:
              - when: zzz > 1
                to: done
              - else: true
                to: done
          done: {kind: final}
        """
    )

    assert message.endswith(
        "; declare it under `input:` or store it as a command `result` "
        "(known: attempts, error, event, item, order, visits)"
    )
    assert (line, column) == (8, 15)


def test_known_condition_variables_pass() -> None:
    definition = loads(
        textwrap.dedent(
            """
            workflow: vars
            input: [order]
            states:
              start:
                kind: initial
                command: check
                transitions:
                  - when: order.lines.exists(line, line.qty > 10) && start.ok && visits < 3
                    to: wait
                  - else: true
                    to: fan
              wait:
                kind: waiting
                transitions:
                  - on: approve
                    when: approve.by != ''
                    to: fan
              fan:
                kind: parallel
                map: {over: order.lines, command: price}
                transitions: [{to: done}]
              done: {kind: final}
            """
        )
    )

    assert definition.state("start").transitions[0].when is not None


def test_a_human_tasks_decision_is_a_known_condition_variable() -> None:
    definition = loads(
        textwrap.dedent(
            """
            workflow: vars
            input: [doc]
            events: {approve: ok, reject: no}
            states:
              start:
                kind: initial
                transitions: [{to: senior}]
              senior:
                kind: human
                task: {queue: senior, result: senior_decision}
                transitions:
                  - {on: approve, to: check}
                  - {on: reject, to: check}
              check:
                transitions:
                  - when: senior_decision.outcome == "approve"
                    to: done
                  - else: true
                    to: done
              done: {kind: final}
            """
        )
    )

    assert definition.state("check").transitions[0].when is not None


def test_condition_variables_are_not_checked_without_input() -> None:
    assert (
        loads(
            "workflow: w\nstates:\n  s: {kind: initial, transitions: [{when: anything, to: e}, "
            "{else: true, to: e}]}\n  e: {kind: final}\n"
        ).initial
        == "s"
    )


def test_loop_without_visit_budget() -> None:
    assert only(
        """
        workflow: loops
        states:
          start:
            kind: initial
            transitions: [{to: draft}]
          draft:
            command: write
            transitions: [{to: critique}]
          critique:
            command: judge
            transitions:
              - when: critique.ok
                to: done
              - else: true
                to: draft
          done: {kind: final}
        """
    ) == (
        "states `draft`, `critique` form a loop with no visit budget, so an item could cycle "
        "forever; set `max_visits` on one of them (e.g. `max_visits: 3` on `draft`)",
        7,
        3,
    )


def test_self_loop_without_visit_budget() -> None:
    message, line, column = only(
        """
        workflow: loops
        states:
          start:
            kind: initial
            command: poll
            transitions:
              - when: start.ready
                to: done
              - else: true
                to: start
          done: {kind: final}
        """
    )

    assert message.startswith("state `start` loops to itself with no visit budget")
    assert (line, column) == (4, 3)


def test_loops_with_a_budget_or_a_waiting_state_are_fine() -> None:
    definition = loads(
        textwrap.dedent(
            """
            workflow: loops
            states:
              start:
                kind: initial
                command: write
                max_visits: 3
                transitions:
                  - when: start.ok
                    to: review
                  - else: true
                    to: start
              review:
                kind: waiting
                transitions:
                  - on: redo
                    to: start
                  - on: accept
                    to: done
              done: {kind: final}
            """
        )
    )

    assert definition.state("start").max_visits == 3


def test_unregistered_command_suggests_and_lists_registered_ones() -> None:
    assert only(
        """
        workflow: cmds
        states:
          start:
            kind: initial
            command:
              name: fraud_scor
            transitions: [{to: done}]
          done: {kind: final}
        """,
        commands=frozenset({"fraud_score", "notify", "approve"}),
    ) == (
        "command `fraud_scor` is not registered; did you mean `fraud_score`? "
        "(registered: approve, fraud_score, notify)",
        7,
        13,
    )


def test_branch_and_map_commands_are_checked_too() -> None:
    found = problems(
        """
        workflow: cmds
        states:
          start:
            kind: parallel
            branches: {a: one, b: {name: two}}
            transitions: [{to: fan}]
          fan:
            kind: parallel
            map: {over: "[1, 2]", command: three}
            transitions: [{to: done}]
          done: {kind: final}
          go:
            kind: initial
            transitions: [{to: start}]
        """,
        commands=frozenset({"one"}),
    )

    assert [(p.message.split(";")[0], p.line, p.column) for p in found] == [
        ("command `two` is not registered (registered: one)", 6, 34),
        ("command `three` is not registered (registered: one)", 10, 36),
    ]


def test_ranges_of_numbers_and_durations() -> None:
    found = problems(
        """
        workflow: ranges
        version: 0
        states:
          start:
            kind: initial
            max_visits: 0
            command:
              name: work
              retry: {attempts: 0, jitter: 1.5, backoff: -1, max_backoff: -2, timeout: -3}
            transitions: [{to: fan}]
          fan:
            kind: parallel
            branches: {a: one, b: two}
            concurrency: 0
            join: {n_of: 3}
            transitions: [{to: wait}]
          wait:
            kind: waiting
            transitions: [{after: -5, to: done}]
          done: {kind: final}
          zero:
            kind: parallel
            branches: {a: one}
            join: {n_of: 0}
            transitions: [{to: done}]
        """
    )

    assert [(p.message, p.line, p.column) for p in found] == [
        ("`version` must be at least 1 (got 0)", 3, 10),
        ("`max_visits` must be at least 1 (got 0)", 7, 17),
        ("`attempts` must be at least 1 (got 0)", 10, 25),
        ("`jitter` must be between 0 and 1 (got 1.5)", 10, 36),
        ("`backoff` cannot be negative (got -1 seconds)", 10, 50),
        ("`max_backoff` cannot be negative (got -2 seconds)", 10, 67),
        ("`timeout` cannot be negative (got -3 seconds)", 10, 80),
        ("`concurrency` must be at least 1 (got 0)", 15, 18),
        ("`n_of` is 3 but state `fan` has only 2 branches, so it could never join", 16, 18),
        ("`after` cannot be negative (got -5 seconds)", 20, 27),
        (
            "state `zero` can never be reached from the initial state `start`; "
            "add a transition to it or remove it",
            22,
            3,
        ),
        ("`n_of` must be at least 1 (got 0)", 25, 18),
    ]


@pytest.mark.parametrize("version", [2**31, 99999999999999999999])
def test_a_version_beyond_what_the_stores_keep_is_refused(version: int) -> None:
    """It loaded, then a deploy crashed on it (SQLite's OverflowError, PostgreSQL's bigint)."""
    assert only(
        f"""
        workflow: big
        version: {version}
        states:
          start: {{kind: initial, transitions: [{{to: done}}]}}
          done: {{kind: final}}
        """
    ) == (f"`version` must be at most 2147483647 (got {version})", 3, 10)


def _hand_made(*states: State) -> Definition:
    where = Location("hand.py", 1, 1)
    return Definition("hand", 1, {s.name: s for s in states}, states[0].name, location=where)


def test_validate_works_on_definitions_made_without_yaml() -> None:
    command = Command("work", "fan", RetryPolicy(attempts=0), Location("hand.py", 7, 3))
    definition = _hand_made(
        State(
            "fan",
            StateKind.INITIAL,
            transitions=(Transition("done", location=Location("hand.py", 5, 1)),),
            parallel=Parallel(branches=(Branch("a", command), Branch("a", command))),
            location=Location("hand.py", 4, 1),
        ),
        State("done", StateKind.FINAL, location=Location("hand.py", 9, 1)),
        State("escalated", StateKind.FINAL, location=Location("hand.py", 10, 1)),
    )

    found = validate(definition, Declarations(commands=frozenset({"work"})))

    assert [(p.message, p.file, p.line) for p in found] == [
        (
            "state `fan` has parallel settings but is `kind: initial`; "
            "set `kind: parallel` or remove them",
            "hand.py",
            4,
        ),
        ("branch `a` is defined twice in state `fan`", "hand.py", 4),
        ("`attempts` must be at least 1 (got 0)", "hand.py", 4),
        ("`attempts` must be at least 1 (got 0)", "hand.py", 4),
    ]


def test_validate_points_at_transitions_and_commands_of_hand_made_definitions() -> None:
    definition = _hand_made(
        State(
            "start",
            StateKind.INITIAL,
            command=Command("wrok", "start", location=Location("hand.py", 3, 5)),
            transitions=(
                Transition(
                    "nowhere", when=compile_condition("true"), location=Location("hand.py", 4, 5)
                ),
                Transition("escalated", is_else=True, location=Location("hand.py", 5, 5)),
            ),
        ),
        State("escalated", StateKind.FINAL),
    )

    found = validate(definition, Declarations(commands=frozenset({"work"})))

    assert [(p.message.split(";")[0], p.line, p.column) for p in found] == [
        ("command `wrok` is not registered", 3, 5),
        ("transition goes to unknown state `nowhere`", 4, 5),
    ]


def test_hand_made_problems_without_a_path_point_at_the_definition() -> None:
    fan = State(
        "fan",
        StateKind.PARALLEL,
        transitions=(Transition("fan"),),
        max_visits=2,
        parallel=Parallel(branches=(Branch("a", Command("one", "fan")),), join=JoinKind.N_OF),
        location=Location("hand.py", 4, 1),
    )
    definition = Definition(
        "hand", 0, {"fan": fan}, "fan", escalation="fan", location=Location("hand.py", 1, 1)
    )

    found = validate(definition)

    assert [(p.message, p.line) for p in found] == [
        ("no initial state; mark the state items start in with `kind: initial`", 1),
        ("`version` must be at least 1 (got 0)", 1),
        ("`join: {n_of: N}` needs a number of branches N", 4),
    ]


def test_names_reserved_for_engine_facts_are_refused() -> None:
    text = """\
workflow: clash
states:
  start:
    kind: initial
    command: {name: check, result: item}
    transitions:
      - to: wait
  wait:
    kind: waiting
    transitions:
      - on: visits
        to: done
  done:
    kind: final
"""
    with pytest.raises(DefinitionError) as caught:
        loads(text, file="clash.yaml")
    messages = [str(p) for p in caught.value.problems]
    assert any(
        m.startswith("clash.yaml:5:") and "result key `item` is reserved" in m for m in messages
    )
    assert any(
        m.startswith("clash.yaml:11:") and "event `visits` is named like" in m for m in messages
    )


def test_an_event_named_like_a_result_key_is_refused_because_it_would_overwrite_it() -> None:
    # Event data is kept under the event's name: `review` would replace the review result.
    message, line, column = only(
        """
        workflow: clash
        states:
          review:
            kind: initial
            command: score
            transitions:
              - to: hold
          hold:
            kind: waiting
            transitions:
              - on: review
                to: done
          done: {kind: final}
        """
    )
    assert message == (
        "event `review` is named like the result key of state `review`; its data would "
        "overwrite that result in the context, so rename the event or give the command "
        "another `result`"
    )
    assert (line, column) == (12, 13)
