"""Checks of a typed definition that the schema cannot express, each with a suggested fix.

Every rule only reads the :class:`Definition` (plus what the file declared), so the YAML loader
and the Python builder share them, and a rule reports through ``locate`` to point at the exact
YAML node when there is one. Rules collect problems and never stop at the first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from statewise.conditions import ENGINE_FACTS, local_names
from statewise.definition.agent_rules import (
    AGENT_RULES,
    agent_of,
    inherits_retry,
    state_commands,
    state_tasks,
)
from statewise.definition.data_schema import schema_error
from statewise.definition.declared_types import Declarations, conditions_of, undeclared_field
from statewise.definition.escalation import ESCALATION_OUTCOMES, added_by_statewise
from statewise.definition.graph import (
    fails,
    runs_agent,
    strongly_connected,
    successors,
    targets,
)
from statewise.definition.model import (
    BUFFER_TIMER,
    DONE_EVENT,
    ERROR_EVENT,
    MAX_BUDGET_COST,
    MAX_BUDGET_TOKENS,
    BranchStep,
    Budget,
    Command,
    Definition,
    ErrorKind,
    HumanTask,
    JoinKind,
    Location,
    RetryPolicy,
    State,
    StateKind,
    Transition,
)
from statewise.definition.retry_rules import RETRY_RULES
from statewise.definition.schema import Path, suggest
from statewise.definition.template_checks import TEMPLATE_RULES
from statewise.definition.type_checks import TYPE_RULES
from statewise.definition.webhook_rules import WEBHOOK_RULES
from statewise.errors import Problem
from statewise.inputs import MAX_VERSION

Locate = Callable[[Path], Location]


def model_locator(definition: Definition) -> Locate:
    """Locate a path by the locations stored in the model, for definitions made without YAML."""

    def locate(path: Path) -> Location:
        if path[:1] == ("budget",) and definition.budget is not None:
            return definition.budget.location
        if len(path) > 1 and path[0] == "agents":
            agent = definition.agents.get(str(path[1]))
            return definition.location if agent is None else agent.location
        named = len(path) > 1 and path[0] == "states"
        state = definition.states.get(str(path[1])) if named else None
        if state is None:
            return definition.location
        rest = path[2:]
        if rest[:1] == ("transitions",) and len(rest) > 1:
            index = rest[1]
            if isinstance(index, int) and index < len(state.transitions):
                return state.transitions[index].location
        if rest[:1] in (("command",), ("agent",)) and state.command is not None:
            return state.command.location
        if rest[:1] == ("budget",) and state.budget is not None:
            return state.budget.location
        return state.location

    return locate


def validate(
    definition: Definition,
    declared: Declarations | None = None,
    *,
    locate: Locate | None = None,
    unparsed: frozenset[str] = frozenset(),
) -> list[Problem]:
    """Every problem with ``definition``, ordered by position.

    Args:
        definition: The definition to check.
        declared: Declared input keys and registered commands.
        locate: Maps a YAML path to its position; defaults to the locations in the model.
        unparsed: States that exist but failed to parse. They count as known targets, and the
            whole-graph rules (reachability, loops, unused events) are skipped, because those
            states' transitions are unknown and would cause false reports.

    """
    checker = _Checker(
        definition, declared or Declarations(), locate or model_locator(definition), unparsed
    )
    for rule in _RULES:
        rule(checker)
    return sorted(checker.problems, key=lambda p: (p.file, p.line, p.column))


@dataclass
class _Checker:
    definition: Definition
    declared: Declarations
    locate: Locate
    unparsed: frozenset[str]
    problems: list[Problem] = field(default_factory=list)

    @property
    def states(self) -> Iterator[State]:
        return iter(self.definition.states.values())

    @property
    def complete(self) -> bool:
        return not self.unparsed

    def known_state(self, name: str) -> bool:
        return name in self.definition.states or name in self.unparsed

    @property
    def registered(self) -> frozenset[str] | None:
        return self.declared.commands

    def report(self, message: str, path: Path) -> None:
        where = self.locate(path)
        self.problems.append(Problem(message, where.file, where.line, where.column))


def _command_path(state: State) -> Path:
    """Where the state's own command is written: under ``command:`` or ``agent:``."""
    key = "agent" if state.command is not None and agent_of(state.command) else "command"
    return ("states", state.name, key)


def _is_external(transition: Transition) -> bool:
    return transition.after is not None or transition.on not in (DONE_EVENT, ERROR_EVENT)


def _check_references(c: _Checker) -> None:
    names = list(c.definition.states) + sorted(c.unparsed)
    for state in c.states:
        for index, transition in enumerate(state.transitions):
            if not c.known_state(transition.target):
                c.report(
                    f"transition goes to unknown state `{transition.target}`"
                    f"{suggest(transition.target, names)}",
                    ("states", state.name, "transitions", index, "to"),
                )
        if state.on_exhausted is not None and not c.known_state(state.on_exhausted):
            c.report(
                f"`on_exhausted` names unknown state `{state.on_exhausted}`"
                f"{suggest(state.on_exhausted, names)}",
                ("states", state.name, "on_exhausted"),
            )
    if not c.known_state(c.definition.escalation):
        c.report(
            f"escalation state `{c.definition.escalation}` is not declared"
            f"{suggest(c.definition.escalation, names)}; declare it as a state or remove "
            f"`escalation:` to get the default `escalated` state, a person's task",
            ("escalation",),
        )


def _check_initial(c: _Checker) -> None:
    initials = [s.name for s in c.states if s.kind is StateKind.INITIAL]
    if not initials and c.complete:
        c.report(
            "no initial state; mark the state items start in with `kind: initial`", ("states",)
        )
    for extra in initials[1:]:
        c.report(
            f"state `{extra}` is a second initial state (the first is `{initials[0]}`); "
            f"a workflow has exactly one, so make this one `kind: normal`",
            ("states", extra, "kind"),
        )


def _check_shapes(c: _Checker) -> None:
    for state in c.states:
        if state.kind is StateKind.FINAL:
            _check_final(c, state)
        elif not state.transitions:
            c.report(
                f"state `{state.name}` has no transitions, so items would stay there forever; "
                f"add a transition or make it `kind: final`",
                ("states", state.name),
            )
        if state.kind is StateKind.WAITING and state.command is not None:
            c.report(
                f"waiting state `{state.name}` cannot run a command, it only waits for events "
                f"and timers; run `{state.command.name}` in a state before it",
                _command_path(state),
            )
        if state.kind is StateKind.PARALLEL:
            _check_parallel(c, state)
        elif state.parallel is not None:
            key = "branches" if state.parallel.branches else "map"
            c.report(
                f"state `{state.name}` has parallel settings but is `kind: {state.kind}`; "
                f"set `kind: parallel` or remove them",
                ("states", state.name, key),
            )


def _check_final(c: _Checker, state: State) -> None:
    if state.transitions:
        c.report(
            f"final state `{state.name}` cannot have transitions, items end there; "
            f"remove them or make it `kind: normal`",
            ("states", state.name, "transitions"),
        )
    if state.command is not None:
        c.report(
            f"final state `{state.name}` cannot run a command; "
            f"run `{state.command.name}` in a state before it",
            _command_path(state),
        )


def _check_parallel(c: _Checker, state: State) -> None:
    fan_out = state.parallel
    has_map = fan_out is not None and (fan_out.over is not None or fan_out.map_command is not None)
    if state.command is not None:
        c.report(
            f"parallel state `{state.name}` cannot have `command`; "
            f"give the commands under `branches:` or `map:`",
            _command_path(state),
        )
    if fan_out is None or not (fan_out.branches or has_map):
        c.report(
            f"parallel state `{state.name}` needs `branches:` or `map:` to say what runs",
            ("states", state.name),
        )
    elif fan_out.branches and has_map:
        c.report(
            f"parallel state `{state.name}` has both `branches:` and `map:`; keep one",
            ("states", state.name, "map"),
        )


def _check_events(c: _Checker) -> None:
    for state in c.states:
        waits = state.waits
        for index, transition in enumerate(state.transitions):
            path = ("states", state.name, "transitions", index)
            if waits and transition.after is None and transition.on == DONE_EVENT:
                c.report(
                    f"waiting state `{state.name}` never produces `done`; give this "
                    f"transition `on: <event>` or `after: <duration>`",
                    path,
                )
            if transition.on == ERROR_EVENT and transition.after is None and not fails(state):
                c.report(
                    f"`on: error` can never fire in state `{state.name}`: it runs no command",
                    (*path, "on"),
                )
        if waits and state.transitions and not any(map(_is_external, state.transitions)):
            c.report(
                f"waiting state `{state.name}` has no transition on an external event or "
                f"timer, so items could never leave it; add `on: <event>` or `after: <duration>`",
                ("states", state.name),
            )


def _check_order(c: _Checker) -> None:
    for state in c.states:
        by_event: dict[str, list[int]] = {}
        for index, transition in enumerate(state.transitions):
            by_event.setdefault(transition.on, []).append(index)
        for event, indexes in by_event.items():
            _check_event_order(c, state, event, indexes)


def _check_event_order(c: _Checker, state: State, event: str, indexes: list[int]) -> None:
    """Within one event, first match wins: an ``else`` goes last and nothing follows a catch-all."""
    catch_all: Transition | None = None
    seen_else = False
    for index in indexes:
        transition = state.transitions[index]
        path = ("states", state.name, "transitions", index)
        if catch_all is not None:
            c.report(
                f"transition to `{transition.target}` can never fire: the transition to "
                f"`{catch_all.target}` above it always matches event `{event}`",
                path,
            )
        if not transition.is_else:
            if transition.when is None and catch_all is None:
                catch_all = transition
            continue
        if transition.when is not None:
            c.report("a transition cannot have both `when` and `else`; drop one", (*path, "else"))
        if seen_else:
            c.report(
                f"state `{state.name}` has a second `else` for event `{event}`; keep one",
                (*path, "else"),
            )
        elif index != indexes[-1]:
            c.report(
                f"`else` must be the last transition for event `{event}` in state "
                f"`{state.name}`; move it below the others",
                (*path, "else"),
            )
        seen_else = True


def _check_declared_events(c: _Checker) -> None:
    declared = c.definition.events
    if declared is None:
        return
    accepted = c.definition.external_events()
    for name in declared:
        if name not in accepted and c.complete:
            c.report(
                f"event `{name}` is declared but no state accepts it; add a transition "
                f"`on: {name}` to a waiting state or remove the declaration",
                ("events", name),
            )
    for state in c.states:
        if added_by_statewise(state):  # its outcomes are statewise's, not the workflow's
            continue
        for index, transition in enumerate(state.transitions):
            if (
                transition.after is None
                and _is_external(transition)
                and (transition.on not in declared)
            ):
                c.report(
                    f"event `{transition.on}` is not declared under `events:`"
                    f"{suggest(transition.on, declared)}",
                    ("states", state.name, "transitions", index, "on"),
                )


def _check_buffered_events(c: _Checker) -> None:
    """A buffered event must be one some state can be sent it: a human task is decided instead.

    (An event no state accepts at all is reported by ``_check_declared_events``.)
    """
    for state in c.states:
        for index, transition in enumerate(state.transitions):
            if transition.on == BUFFER_TIMER:
                c.report(
                    f"event `{BUFFER_TIMER}` is the name of statewise's own timer that expires "
                    f"buffered events; give this transition another `on:`",
                    ("states", state.name, "transitions", index, "on"),
                )
    if not c.complete:
        return
    sendable = {
        t.on
        for s in c.states
        if s.task is None
        for t in s.transitions
        if t.after is None and _is_external(t)
    }
    accepted = c.definition.external_events()
    for name, spec in (c.definition.events or {}).items():
        if spec.buffer_ttl is not None and name in accepted and name not in sendable:
            c.report(
                f"event `{name}` is buffered, but only human states accept it, and a human "
                f"task is decided, not sent; drop `buffer` or accept `{name}` in a waiting state",
                ("events", name, "buffer"),
            )


def _check_event_data(c: _Checker) -> None:
    """Each event's ``data`` is a valid JSON Schema, and conditions read only fields it names."""
    declared = c.definition.events or {}
    valid: dict[str, Mapping[str, object]] = {}
    for name, spec in declared.items():
        if spec.data is None:
            continue
        error = schema_error(spec.data)
        if error is None:
            valid[name] = spec.data
        else:
            c.report(f"the `data` of event `{name}` {error}", ("events", name, "data"))
    for state in c.states:
        for index, transition in enumerate(state.transitions):
            schema = valid.get(transition.on)
            if schema is None or transition.when is None:
                continue
            for path in transition.when.paths:
                undeclared = undeclared_field(schema, path[2:]) if path[:2] == _DATA else None
                if undeclared is not None:
                    field, known = undeclared
                    c.report(
                        f"condition `{transition.when.source}` reads `event.data.{field}`, which "
                        f"the `data` schema of event `{transition.on}` does not declare"
                        f"{suggest(field.rsplit('.', 1)[-1], known)} (it declares: "
                        f"{', '.join(f'`{k}`' for k in known) or 'nothing'})",
                        ("states", state.name, "transitions", index, "when"),
                    )


_DATA = ("event", "data")


def _check_leaves_on_entry(c: _Checker) -> None:
    """A state that neither runs, waits nor fans out fires ``done`` at once, on entry.

    With only ``on: <event>`` transitions nothing matches that ``done``, so every item that
    enters fails there and then (a defect): the author almost always meant a waiting state.
    """
    for state in c.states:
        if state.kind not in (StateKind.NORMAL, StateKind.INITIAL) or state.command is not None:
            continue
        if not state.transitions or any(
            t.on == DONE_EVENT and t.after is None for t in state.transitions
        ):
            continue
        awaited = ", ".join(f"`{on}`" for on in dict.fromkeys(t.on for t in state.transitions))
        fix = (
            " An item cannot wait in the initial state: make this one `kind: waiting` and "
            "start in an initial state that goes to it"
            if state.kind is StateKind.INITIAL
            else ""
        )
        c.report(
            f"state `{state.name}` runs no command and has no `done` transition, so every item "
            f"fails the moment it enters (nothing can fire on entry; it only has {awaited}); "
            f"did you mean `kind: waiting`? (or give it a `command:` that runs on entry)"
            f"{fix}",
            ("states", state.name, "kind"),
        )


def _check_variables(c: _Checker) -> None:
    inputs = c.declared.inputs
    if inputs is None or not c.complete:
        return
    own = [s for s in c.states if not added_by_statewise(s)]  # no condition reads those
    results = {cmd.result for s in own for _, cmd in state_commands(s)}
    results |= {task.result for s in own for _, task in state_tasks(s)}  # a person's decision
    events = {t.on for s in own for t in s.transitions if t.after is None and _is_external(t)}
    events |= set(c.definition.events or ())
    known = set(inputs) | results | events | ENGINE_FACTS
    for path, condition in conditions_of(c.definition):
        local = local_names(condition.source)
        for name in condition.variables:
            if name in known or name in local:
                continue
            hint = suggest(name, known) or (
                f"; declare it under `input:` or store it as a command `result` "
                f"(known: {', '.join(sorted(known))})"
            )
            c.report(
                f"condition `{condition.source}` reads `{name}`, which is not an input key, "
                f"a command result, a task decision, an event or an engine fact{hint}",
                path,
            )


def _check_registered(c: _Checker) -> None:
    registered = c.declared.commands
    if registered is None:
        return
    listing = ", ".join(sorted(registered)) or "none"
    for state in c.states:
        for path, command in state_commands(state):
            # The runner registers the commands that run agents and send webhooks itself.
            if not command.built_in and command.name not in registered:
                c.report(
                    f"command `{command.name}` is not registered"
                    f"{suggest(command.name, registered)} (registered: {listing})",
                    ("states", state.name, *path, "name"),
                )


def _check_branch_names(c: _Checker) -> None:
    for state in c.states:
        seen: set[str] = set()
        for branch in state.parallel.branches if state.parallel is not None else ():
            if branch.name in seen:
                c.report(
                    f"branch `{branch.name}` is defined twice in state `{state.name}`",
                    ("states", state.name, "branches", branch.name),
                )
            seen.add(branch.name)


def _check_ranges(c: _Checker) -> None:
    if c.definition.version < 1:
        c.report(f"`version` must be at least 1 (got {c.definition.version})", ("version",))
    elif c.definition.version > MAX_VERSION:
        c.report(
            f"`version` must be at most {MAX_VERSION} (got {c.definition.version})", ("version",)
        )
    for state in c.states:
        here = ("states", state.name)
        _at_least_one(c, state.max_visits, (*here, "max_visits"))
        for index, transition in enumerate(state.transitions):
            _not_negative(c, transition.after, (*here, "transitions", index, "after"))
        for path, command in state_commands(state):
            if not inherits_retry(c.definition, command):  # checked once, at the agent
                _check_retry(c, command.retry, (*here, *path, "retry"))
        if state.parallel is not None:
            _at_least_one(c, state.parallel.concurrency, (*here, "concurrency"))
            _check_n_of(c, state)
    for agent in c.definition.agents.values():
        _check_retry(c, agent.retry, ("agents", agent.name, "retry"))


def _check_n_of(c: _Checker, state: State) -> None:
    fan_out = state.parallel
    if fan_out is None or fan_out.join is not JoinKind.N_OF:
        return
    path = ("states", state.name, "join", "n_of")
    if fan_out.n_of is None:
        c.report("`join: {n_of: N}` needs a number of branches N", path)
        return
    _at_least_one(c, fan_out.n_of, path)
    if fan_out.branches and fan_out.n_of > len(fan_out.branches):
        c.report(
            f"`n_of` is {fan_out.n_of} but state `{state.name}` has only "
            f"{len(fan_out.branches)} branches, so it could never join",
            path,
        )


def _check_retry(c: _Checker, retry: RetryPolicy, path: Path) -> None:
    _at_least_one(c, retry.attempts, (*path, "attempts"))
    if ErrorKind.BUDGET in retry.retry_on:
        c.report(
            "`retry_on` cannot hold `budget`: a run cut short by its budget is never retried, "
            "the item goes to the budget's `on_exceeded` state",
            (*path, "retry_on"),
        )
    if not 0 <= retry.jitter <= 1:
        c.report(f"`jitter` must be between 0 and 1 (got {retry.jitter})", (*path, "jitter"))
    _not_negative(c, retry.backoff, (*path, "backoff"))
    _not_negative(c, retry.max_backoff, (*path, "max_backoff"))
    _not_negative(c, retry.timeout, (*path, "timeout"))


def _at_least_one(c: _Checker, value: int | None, path: Path) -> None:
    if value is not None and value < 1:
        c.report(f"`{path[-1]}` must be at least 1 (got {value})", path)


def _not_negative(c: _Checker, seconds: float | None, path: Path) -> None:
    if seconds is not None and seconds < 0:
        c.report(f"`{path[-1]}` cannot be negative (got {seconds:g} seconds)", path)


def _check_budgets(c: _Checker) -> None:
    """Budgets are positive and sane, on states that run agents, and lead somewhere that works.

    An ``on_exceeded`` state that runs an agent itself would be refused by the same spent
    budget at once, so it must be a person, a wait, a final state or plain commands.
    """
    definition = c.definition
    if definition.budget is not None:
        _check_budget(c, definition.budget, ("budget",))
        target = definition.states.get(definition.budget.on_exceeded or definition.escalation)
        if target is not None and runs_agent(target):
            c.report(
                f"`on_exceeded` state `{target.name}` runs an agent, which the spent workflow "
                f"budget would refuse too; send the item to a person or a final state",
                ("budget", "on_exceeded"),
            )
    for state in c.states:
        if state.budget is None:
            continue
        path: Path = ("states", state.name, "budget")
        _check_budget(c, state.budget, path)
        if not runs_agent(state):
            c.report(
                f"state `{state.name}` has a `budget` but runs no agent, so it would never "
                f"spend; put the budget on the state that runs the agent",
                path,
            )
        if state.budget.on_exceeded == state.name:
            c.report(
                f"`on_exceeded` of state `{state.name}` is the state itself, whose spent "
                f"budget would refuse it again; name another state",
                (*path, "on_exceeded"),
            )


def _check_budget(c: _Checker, budget: Budget, path: Path) -> None:
    names = list(c.definition.states) + sorted(c.unparsed)
    if budget.on_exceeded is not None and not c.known_state(budget.on_exceeded):
        c.report(
            f"`on_exceeded` names unknown state `{budget.on_exceeded}`"
            f"{suggest(budget.on_exceeded, names)}",
            (*path, "on_exceeded"),
        )
    if budget.tokens is not None and not 1 <= budget.tokens <= MAX_BUDGET_TOKENS:
        c.report(
            f"`tokens` must be a whole number from 1 to {MAX_BUDGET_TOKENS:,} "
            f"(got {budget.tokens:,})",
            (*path, "tokens"),
        )
    cost = budget.cost
    if cost is not None and not (math.isfinite(cost) and 0 < cost <= MAX_BUDGET_COST):
        c.report(
            f"`cost` must be a number of USD above 0 and at most {MAX_BUDGET_COST:,.0f} "
            f"(got {cost:g})",
            (*path, "cost"),
        )


def _check_reachable(c: _Checker) -> None:
    initial = c.definition.initial
    if not c.complete or initial not in c.definition.states:
        return
    seen = {initial}
    todo = [initial]
    while todo:
        for target in successors(c.definition, c.definition.states[todo.pop()]):
            if target in c.definition.states and target not in seen:
                seen.add(target)
                todo.append(target)
    for state in c.states:
        if state.name not in seen and not added_by_statewise(state):
            c.report(
                f"state `{state.name}` can never be reached from the initial state "
                f"`{initial}`; add a transition to it or remove it",
                ("states", state.name),
            )


def _check_loops(c: _Checker) -> None:
    """Every cycle needs a visit budget or a waiting state, else an item could loop forever."""
    if not c.complete:
        return
    states = c.definition.states
    free = [s.name for s in c.states if s.max_visits is None and s.kind is not StateKind.WAITING]
    free_set = set(free)
    edges = {name: [t for t in targets(states[name]) if t in free_set] for name in free}
    for component in strongly_connected(free, edges):
        if len(component) == 1 and component[0] not in edges[component[0]]:
            continue
        ordered = [name for name in free if name in component]
        what = (
            f"state `{ordered[0]}` loops to itself"
            if len(ordered) == 1
            else f"states {', '.join(f'`{n}`' for n in ordered)} form a loop"
        )
        c.report(
            f"{what} with no visit budget, so an item could cycle forever; set `max_visits` "
            f"on one of them (e.g. `max_visits: 3` on `{ordered[0]}`)",
            ("states", ordered[0]),
        )


def _check_reserved_names(c: _Checker) -> None:
    """Results and event data named like an engine fact would be hidden from conditions.

    Event data is kept under the event's name, so an event named like a command's result key
    would overwrite that result; both are refused.
    """
    facts = ", ".join(sorted(ENGINE_FACTS))
    results = {
        command.result: state.name for state in c.states for _, command in state_commands(state)
    }
    for state in c.states:
        for path, command in state_commands(state):
            if command.result in ENGINE_FACTS:
                c.report(
                    f"result key `{command.result}` is reserved for the engine ({facts}); "
                    f"give the command another `result`",
                    ("states", state.name, *path, "result"),
                )
        for index, transition in enumerate(state.transitions):
            if transition.on in ENGINE_FACTS and transition.on != ERROR_EVENT:
                c.report(
                    f"event `{transition.on}` is named like an engine fact ({facts}); its data "
                    f"would be hidden from conditions, so rename it",
                    ("states", state.name, "transitions", index, "on"),
                )
            elif transition.on in results and transition.on in c.definition.external_events():
                c.report(
                    f"event `{transition.on}` is named like the result key of state "
                    f"`{results[transition.on]}`; its data would overwrite that result in the "
                    f"context, so rename the event or give the command another `result`",
                    ("states", state.name, "transitions", index, "on"),
                )


def _check_human(c: _Checker) -> None:
    """A human state opens a task and leaves only by a decision (or a timer)."""
    names = list(c.definition.states) + sorted(c.unparsed)
    for state in c.states:
        path: Path = ("states", state.name)
        if state.kind is not StateKind.HUMAN:
            if state.task is not None:
                c.report(
                    f"state `{state.name}` has a `task` but is `kind: {state.kind}`; "
                    f"set `kind: human` or remove it",
                    (*path, "task"),
                )
            continue
        if state.task is None:
            c.report(
                f"human state `{state.name}` needs a `task:` with at least a `queue`",
                (*path, "kind"),
            )
            continue
        if state.command is not None or state.parallel is not None:
            c.report(
                f"human state `{state.name}` cannot run commands or branches; a person "
                f"decides it, so run the work in a state before it",
                (*path, "kind"),
            )
        if not state.outcomes and c.complete:
            c.report(
                f"human state `{state.name}` offers no outcomes; add transitions such as "
                f"`- on: approve` for the decisions a person can make",
                (*path, "transitions"),
            )
        if state.task.result in state.outcomes:
            c.report(
                f"outcome `{state.task.result}` of `{state.name}` has the name of the "
                f"decision's result key; rename one (set `task.result`)",
                (*path, "task"),
            )
        target = state.task.escalate_to
        if target is not None and not c.known_state(target):
            c.report(
                f"`escalate_to` names unknown state `{target}`{suggest(target, names)}",
                (*path, "task", "escalate_to"),
            )
        _check_form(c, state.task.form, (*path, "task", "form"))


def _check_form(c: _Checker, form: object, path: Path) -> None:
    """An inline form must be a valid JSON Schema of an object."""
    error = schema_error(form) if isinstance(form, dict) else None
    if error is not None:
        c.report(f"a task's `form` {error}", path)


def _branch_tasks(state: State) -> Iterator[tuple[Path, str, BranchStep]]:
    """Each step of ``state``'s branches that opens a task: its path, its name, the step."""
    for branch in state.parallel.branches if state.parallel is not None else ():
        if branch.task is not None:
            yield ("branches", branch.name), branch.name, branch.sequence[0]
        for index, step in enumerate(branch.steps):
            if step.task is not None:
                yield ("branches", branch.name, "steps", index), branch.task_key(step.name), step


def _check_branch_tasks(c: _Checker) -> None:
    """A branch's task escalates to a known state and has a valid form."""
    names = list(c.definition.states) + sorted(c.unparsed)
    for state in c.states:
        for path, _, step in _branch_tasks(state):
            assert step.task is not None
            here = ("states", state.name, *path, "task")
            target = step.task.escalate_to
            if target is not None and not c.known_state(target):
                c.report(
                    f"`escalate_to` names unknown state `{target}`{suggest(target, names)}",
                    (*here, "escalate_to"),
                )
            _check_form(c, step.task.form, (*here, "form"))


def _check_reviews(c: _Checker) -> None:
    """A task's ``reviews`` grades a state that runs an agent, with outcomes the task offers."""
    for state in c.states:
        tasks: list[tuple[Path, str, HumanTask, tuple[str, ...]]] = []
        if state.task is not None:
            tasks.append((("task",), state.name, state.task, state.outcomes))
        tasks += [
            ((*path, "task"), name, step.task, step.outcomes)
            for path, name, step in _branch_tasks(state)
            if step.task is not None
        ]
        for where, name, task, offered in tasks:
            if task.reviews is not None:
                _check_review(c, ("states", state.name, *where, "reviews"), name, task, offered)


def _check_review(
    c: _Checker, path: Path, name: str, task: HumanTask, offered: tuple[str, ...]
) -> None:
    """One task's ``reviews``: its outcomes are the task's, its state runs an agent."""
    reviews = task.reviews
    assert reviews is not None
    for key, outcomes in (("agree", reviews.agree), ("override", reviews.override)):
        for index, outcome in enumerate(outcomes):
            if outcome not in offered and c.complete:
                c.report(
                    f"`reviews.{key}` lists `{outcome}`, which is not an outcome of task "
                    f"`{name}`{suggest(outcome, offered)} (its outcomes: "
                    f"{', '.join(offered) or 'none'})",
                    (*path, key, index),
                )
    reviewed = c.definition.states.get(reviews.state)
    agent = agent_of(reviewed.command) if reviewed and reviewed.command else None
    if reviewed is not None and reviewed.command is not None and agent is not None:
        if reviews.score is not None:
            _check_score(c, reviewed.command, agent, reviews.score, (*path, "score"))
    elif reviews.state not in c.unparsed:
        _report_not_an_agent_stage(c, reviews.state, (*path, "state"))


def _report_not_an_agent_stage(c: _Checker, name: str, path: Path) -> None:
    agents = [s.name for s in c.states if s.command is not None and agent_of(s.command)]
    listing = ", ".join(f"`{n}`" for n in agents) or "none"
    state = c.definition.states.get(name)
    if state is None:
        hint = suggest(name, agents or c.definition.states)
        c.report(
            f"`reviews` names unknown state `{name}`{hint} (the states that run an agent: "
            f"{listing})",
            path,
        )
        return
    runs = f"runs command `{state.command.name}`" if state.command else "runs no command"
    c.report(
        f"`reviews` names state `{name}`, which {runs}, not an agent; a task reviews a state "
        f"with `agent: NAME` (here: {listing})",
        path,
    )


def _check_score(c: _Checker, command: Command, agent: str, score: str, path: Path) -> None:
    """``score`` reads a number the agent declares, or a result or input key that exists."""
    root, *fields = score.split(".")
    if root == command.result:
        spec = c.definition.agents.get(agent)
        output = spec.output if spec is not None else None
        if isinstance(output, Mapping):
            problem = _not_a_number_field(output, tuple(fields))
            if problem is not None:
                c.report(
                    f"`score` reads `{score}`, but the output of agent `{agent}` {problem}", path
                )
        return
    if not c.complete:
        return
    known = {cmd.result for s in c.states for _, cmd in state_commands(s)}
    known |= {task.result for s in c.states for _, task in state_tasks(s)}
    inputs = c.declared.inputs
    if root not in known and (inputs is not None and root not in inputs):
        c.report(
            f"`score` reads `{score}`, but `{root}` is not a command result or input key"
            f"{suggest(root, known | set(inputs))} (point it at the agent's score, e.g. "
            f"`{command.result}.<field>`)",
            path,
        )


def _not_a_number_field(schema: Mapping[str, object], fields: tuple[str, ...]) -> str | None:
    """Why ``fields`` of an output ``schema`` cannot be a score, or None when it can."""
    if not fields:
        return "is an object; name its score field"
    undeclared = undeclared_field(schema, fields)
    if undeclared is not None:
        field, known = undeclared
        names = ", ".join(f"`{k}`" for k in known) or "nothing"
        hint = suggest(field.rsplit(".", 1)[-1], known)
        return f"does not declare `{field}`{hint} (it declares: {names})"
    leaf: object = schema
    for name in fields:
        properties = leaf.get("properties") if isinstance(leaf, Mapping) else None
        leaf = properties.get(name) if isinstance(properties, Mapping) else None
    kind = leaf.get("type") if isinstance(leaf, Mapping) else None
    if isinstance(kind, str) and kind not in ("number", "integer"):
        return f"declares `{'.'.join(fields)}` as `{kind}`, not a number"
    return None


def _check_escalation_names(c: _Checker) -> None:
    """The added escalation task ends in states of its own; a declared one of that name clashes.

    Neither may silently stand in for the other: the workflow's state would end escalated
    items it never meant to, or the added one would hide the workflow's.
    """
    escalated = c.definition.states.get(c.definition.escalation)
    if escalated is None or not added_by_statewise(escalated):
        return
    for outcome, name in ESCALATION_OUTCOMES.items():
        declared = c.definition.states.get(name)
        if declared is not None and not added_by_statewise(declared):
            c.report(
                f"state `{name}` has the name of the final state statewise adds for the "
                f"`{outcome}` outcome of the default `escalated` task; rename it, or declare "
                f"your own escalation state (a state `escalated`, or `escalation: <state>`)",
                ("states", name),
            )


def _check_alerts(c: _Checker) -> None:
    names = list(c.definition.states) + sorted(c.unparsed)
    declared = list(c.definition.destinations)
    for index, alert in enumerate(c.definition.alerts):
        if alert.state and not c.known_state(alert.state):
            c.report(
                f"alert on unknown state `{alert.state}`{suggest(alert.state, names)}",
                ("alerts", index, "state"),
            )
        for place, name in enumerate(alert.notify or ()):
            if name not in c.definition.destinations:
                c.report(
                    f"alert notifies `{name}`, which is not declared under `destinations:`"
                    f"{suggest(name, declared)}",
                    ("alerts", index, "notify", place),
                )


def _check_migrations(c: _Checker) -> None:
    """``migrations:`` maps states of earlier versions (unknown here) to states of this one."""
    names = list(c.definition.states) + sorted(c.unparsed)
    for old, new in c.definition.migrations.items():
        if not c.known_state(new):
            c.report(
                f"`migrations` sends `{old}` to unknown state `{new}`{suggest(new, names)}",
                ("migrations", old),
            )


_RULES: tuple[Callable[[_Checker], None], ...] = (
    _check_references,
    _check_migrations,
    _check_escalation_names,
    _check_human,
    _check_branch_tasks,
    _check_reviews,
    _check_alerts,
    _check_initial,
    _check_shapes,
    _check_events,
    _check_order,
    _check_declared_events,
    _check_buffered_events,
    _check_event_data,
    _check_leaves_on_entry,
    _check_variables,
    _check_registered,
    _check_reserved_names,
    _check_branch_names,
    _check_ranges,
    _check_budgets,
    _check_reachable,
    _check_loops,
    *AGENT_RULES,
    *WEBHOOK_RULES,
    *RETRY_RULES,
    *TYPE_RULES,
    *TEMPLATE_RULES,
)
