"""Property tests: random valid definitions driven by random event sequences.

A small in-test "shell" plays the worker and the timer service: it remembers the commands and
timers the engine asked for, answers them in any order (successes, failures of any kind),
fires timers (also ones that were cancelled or belong to a visit that is over), and throws in
external events the item may not accept. After every step the engine's invariants must hold.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import hypothesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statewise.definition.model import (
    Command,
    Definition,
    ErrorKind,
    JoinKind,
    RetryPolicy,
    State,
    StateKind,
    Transition,
)
from statewise.engine import (
    CancelCommands,
    CancelTimers,
    CommandFailed,
    CommandSucceeded,
    Event,
    External,
    HistoryRecord,
    Item,
    ItemStatus,
    Outcome,
    RunCommand,
    Start,
    StartTimer,
    StepResult,
    TimerFired,
    start,
    step,
)
from statewise.engine.defects import defect_kind
from statewise.engine.effects import apply_patches
from statewise.errors import InvalidEventError

from .helpers import ESCALATED, T0, decide, fan, final, go, otherwise, task, wait

FINISH = "finish"
EXTERNAL_EVENTS = ("approve", "reject", "ping")
MAX_EVENTS = 25
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# Events the engine asked for itself: command results and timers, tied to a state visit.
Internal = CommandSucceeded | CommandFailed | TimerFired

# --- random definitions ---------------------------------------------------------------------

thresholds = st.integers(-2, 6)


@st.composite
def guards(draw: st.DrawFn, names: list[str]) -> str:
    """A guard over the counter ``n`` or the engine facts; now and then one that cannot work."""
    k = draw(thresholds)
    name = draw(st.sampled_from(names))
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["n", "missing > 0"]))  # not a bool / reads a missing key
    return draw(st.sampled_from([f"n > {k}", f"n <= {k}", f"visits.{name} < {abs(k)}"]))


@st.composite
def routes(draw: st.DrawFn, on: str, targets: list[str], names: list[str]) -> list[Transition]:
    """Up to two guarded transitions on ``on``, then an ``else`` (always when unguarded)."""
    routed = [
        go(draw(st.sampled_from(targets)), on=on, when=draw(guards(names)))
        for _ in range(draw(st.integers(0, 2)))
    ]
    if not routed or draw(st.booleans()):
        routed.append(otherwise(draw(st.sampled_from(targets)), on=on))
    return routed


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    """A retry policy with 1-3 attempts and any jitter."""
    return RetryPolicy(
        attempts=draw(st.integers(1, 3)),
        backoff=draw(st.floats(0.1, 5)),
        jitter=draw(st.floats(0, 1)),
        retry_on=draw(
            st.just(RetryPolicy().retry_on) | st.frozensets(st.sampled_from(list(ErrorKind)))
        ),
    )


@st.composite
def states(draw: st.DrawFn, name: str, names: list[str], budget: dict[str, Any]) -> State:
    """One non-final state of a random kind with random transitions among ``names``."""
    targets = [*names, FINISH]
    kind = draw(st.sampled_from(["command", "decision", "waiting", "parallel"]))
    transitions: list[Transition] = []
    if kind == "waiting":
        for event in draw(st.sets(st.sampled_from(EXTERNAL_EVENTS), min_size=1, max_size=2)):
            transitions += draw(routes(event, targets, names))
    else:
        transitions += draw(routes("done", targets, names))
        if draw(st.booleans()):
            transitions += draw(routes("error", targets, names))
    if kind in ("waiting", "command") and draw(st.booleans()):
        after = draw(st.floats(1, 100))
        transitions.append(go(draw(st.sampled_from(targets)), on="timeout", after=after))
    if kind == "command":
        return task(name, Command(name, "n", draw(policies())), *transitions, **budget)
    if kind == "decision":
        return decide(name, *transitions, **budget)
    if kind == "waiting":
        return wait(name, *transitions, **budget)
    return replace(draw(parallels(name, transitions)), **budget)


@st.composite
def parallels(draw: st.DrawFn, name: str, transitions: list[Transition]) -> State:
    """Fixed branches or a map over ``items``, with any join and concurrency."""
    policy = draw(policies())
    join = draw(st.sampled_from(list(JoinKind)))
    shape: dict[str, Any] = {
        "concurrency": draw(st.none() | st.integers(1, 2)),
        "join": join,
        "n_of": draw(st.integers(1, 3)) if join is JoinKind.N_OF else None,
    }
    if draw(st.booleans()):
        count = draw(st.integers(1, 3))
        branches = {f"b{i}": Command(f"b{i}", "parts", policy) for i in range(count)}
        return fan(name, *transitions, branches=branches, **shape)
    return fan(name, *transitions, over="items", map_command=Command("m", "parts", policy), **shape)


@st.composite
def definitions(draw: st.DrawFn) -> Definition:
    """2-8 states s0.., a ``finish`` final and the ``escalated`` final; some with budgets."""
    names = [f"s{i}" for i in range(draw(st.integers(2, 8)))]
    limits = {n: draw(st.none() | st.integers(1, 3)) for n in names}
    # Fallbacks point at unbudgeted states: a cycle of exhausted fallbacks is a known engine
    # bug, pinned by test_step.test_an_on_exhausted_cycle_never_exceeds_a_budget.
    unbudgeted = [n for n in names if limits[n] is None] + [FINISH]
    table: dict[str, State] = {}
    for name in names:
        budget: dict[str, Any] = {}
        if limits[name] is not None:
            budget["max_visits"] = limits[name]
            budget["on_exhausted"] = draw(st.none() | st.sampled_from(unbudgeted))
        table[name] = draw(states(name, names, budget))
    table[FINISH] = final(FINISH)
    table[ESCALATED] = final(ESCALATED)
    return Definition(name="prop", version=1, states=table, initial="s0")


@st.composite
def start_data(draw: st.DrawFn) -> dict[str, Any]:
    """Usually the counter ``n`` and a list to map over; sometimes neither is usable."""
    data: dict[str, Any] = {"items": draw(st.lists(st.sampled_from("xyzx"), max_size=3))}
    if draw(st.integers(0, 4)):
        data["n"] = draw(st.integers(-3, 8))
    if draw(st.integers(0, 9)) == 0:
        data["items"] = draw(st.integers())
    return data


# --- the shell ------------------------------------------------------------------------------


def is_current(item: Item, event: Internal) -> bool:
    """Whether ``event`` belongs to the state visit the item is in."""
    return (event.state, event.visit) == (item.state, item.visit)


def fired(timer: StartTimer) -> TimerFired:
    """The event a started timer delivers when it comes due."""
    return TimerFired(timer.name, timer.state, timer.visit, timer.branch)


@dataclass
class Shell:
    """Plays the worker and the timer service around the pure engine, checking every step."""

    definition: Definition
    item: Item
    rows: list[HistoryRecord] = field(default_factory=list)
    commands: list[RunCommand] = field(default_factory=list)
    timers: list[StartTimer] = field(default_factory=list)
    delivered: list[Internal] = field(default_factory=list)
    now: float = T0

    def absorb(self, result: StepResult) -> None:
        """Keep the result's rows and perform its effects in order."""
        self.item = result.item
        self.rows.extend(result.history)
        for effect in result.effects:
            if isinstance(effect, RunCommand):
                self.commands.append(effect)
            elif isinstance(effect, StartTimer):
                self.timers.append(effect)
            elif isinstance(effect, CancelTimers):
                self.delivered.extend(fired(t) for t in self.timers)
                self.timers.clear()

    def choices(self) -> list[str]:
        """What can happen next."""
        options = ["external"]
        if self.commands:
            options += ["succeed", "fail"]
        if self.timers:
            options.append("timer")
        if any(not is_current(self.item, e) for e in self.delivered):
            options.append("stale")
        return options

    def next_event(self, data: st.DataObject) -> Event:
        """Draw the next event the outside world sends."""
        choice = data.draw(st.sampled_from(self.choices()))
        if choice in ("succeed", "fail"):
            cmd = self.commands.pop(data.draw(st.integers(0, len(self.commands) - 1)))
            event: Internal = self._answer(cmd, choice, data)
        elif choice == "timer":
            timer = self.timers.pop(data.draw(st.integers(0, len(self.timers) - 1)))
            event = fired(timer)
        elif choice == "stale":
            stale = [e for e in self.delivered if not is_current(self.item, e)]
            return data.draw(st.sampled_from(stale))
        else:
            name = data.draw(st.sampled_from([*EXTERNAL_EVENTS, "timeout", "done"]))
            return External(name, {"n": data.draw(st.integers(-3, 8))})
        self.delivered.append(event)
        return event

    @staticmethod
    def _answer(cmd: RunCommand, choice: str, data: st.DataObject) -> Internal:
        if choice == "succeed":
            result = data.draw(st.integers(-3, 8))
            return CommandSucceeded(cmd.state, cmd.visit, cmd.attempt, result, branch=cmd.branch)
        kind = data.draw(st.sampled_from(list(ErrorKind)))
        return CommandFailed(cmd.state, cmd.visit, cmd.attempt, kind, "boom", branch=cmd.branch)


# --- invariants -----------------------------------------------------------------------------


def check_item(definition: Definition, item: Item, rows: list[HistoryRecord]) -> None:
    """What must hold of an item and the whole audit trail after any step."""
    state = definition.states[item.state]
    expected_status = {StateKind.FINAL: ItemStatus.DONE, StateKind.WAITING: ItemStatus.WAITING}
    if item.status is ItemStatus.FAILED:  # only a defect fails an item inside the engine
        assert defect_kind(rows[-1].error) is not None
    else:
        assert item.status is expected_status.get(state.kind, ItemStatus.ACTIVE)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert item.seq == len(rows)
    assert [r.from_state for r in rows] == [None, *(r.to_state for r in rows[:-1])]
    assert rows[-1].to_state == item.state
    assert item.visit >= 1
    for name, count in item.visits.items():
        limit = definition.states[name].max_visits
        assert limit is None or count <= limit, f"{name} visited {count} > {limit}"
    if state.kind is not StateKind.PARALLEL:
        assert item.branches == ()
    if state.command is not None:
        assert 1 <= item.attempt <= state.command.retry.attempts


def check_effects(result: StepResult) -> None:
    """Commands are always asked for the visit (and attempt) the item is now waiting on.

    A step that fails its item with a defect leaves it no work: its last effects cancel it.
    """
    item = result.item
    if item.status is ItemStatus.FAILED:
        kinds = [type(effect) for effect in result.effects]
        assert kinds[-2:] == [CancelTimers, CancelCommands] or kinds[-3:-1] == [
            CancelTimers,
            CancelCommands,
        ]
        return
    attempts = {run.name: run.attempt for run in item.branches}
    for effect in result.effects:
        if isinstance(effect, RunCommand):
            assert (effect.state, effect.visit) == (item.state, item.visit)
            expected = item.attempt if effect.branch is None else attempts[effect.branch]
            assert effect.attempt == expected


def check_step(shell: Shell, before: Item, event: Event, result: StepResult, now: float) -> None:
    """What must hold of one step's result relative to the item it started from."""
    assert result.item.context == apply_patches(before.context, result.patches)
    assert all(row.at == now for row in result.history)
    if result.outcome is Outcome.IGNORED:
        assert result.item == before
        assert (result.effects, result.patches, result.history) == ((), (), ())
        return
    assert before.status not in (ItemStatus.DONE, ItemStatus.FAILED), "a stopped item changed"
    if not isinstance(event, External | Start):
        assert is_current(before, event), "an event for a visit that is over was not ignored"
    assert result.history, "a step that did something must say so in the audit trail"
    moved = sum(result.item.visits.values()) > sum(before.visits.values()) or (
        result.item.status is ItemStatus.FAILED  # a defect fails the item where it stands
    )
    assert (result.outcome is Outcome.MOVED) == moved
    assert result.item.updated_at == now
    check_effects(result)
    check_item(shell.definition, result.item, [*shell.rows, *result.history])


def deliver(shell: Shell, event: Event) -> None:
    """Step the item with ``event`` and check everything; external refusals change nothing."""
    before = shell.item
    snapshot = copy.deepcopy(before)
    try:
        result = step(shell.definition, before, event, shell.now)
    except InvalidEventError:
        assert isinstance(event, External), f"internal event {event} was refused"
        assert before == snapshot
        hypothesis.event("refused")
        return
    assert before == snapshot, "step mutated its input item"
    if isinstance(event, External) and before.status is not ItemStatus.DONE:
        state = shell.definition.states[before.state]
        assert any(t.on == event.name and t.after is None for t in state.transitions)
    check_step(shell, before, event, result, shell.now)
    hypothesis.event(f"{type(event).__name__} {result.outcome}")
    shell.absorb(result)


@PROPERTY_SETTINGS
@given(definition=definitions(), data_in=start_data(), data=st.data())
def test_random_runs_keep_the_engine_invariants(
    definition: Definition, data_in: dict[str, Any], data: st.DataObject
) -> None:
    result = start(definition, "prop-1", data_in, T0)
    assert result.outcome is Outcome.MOVED
    assert result.history[0].from_state is None
    assert all(result.item.context[key] == value for key, value in data_in.items())
    shell = Shell(definition, result.item)
    check_effects(result)
    check_item(definition, result.item, list(result.history))
    shell.absorb(result)
    for _ in range(data.draw(st.integers(1, MAX_EVENTS))):
        shell.now += data.draw(st.floats(0, 100))
        deliver(shell, shell.next_event(data))
    hypothesis.event(f"ends {shell.item.status}")
    for row in shell.rows:
        if row.error:
            hypothesis.event(f"error {row.error['kind']}")
        if row.note and "budget" in row.note:
            hypothesis.event("budget exhausted")
    if shell.item.status in (ItemStatus.DONE, ItemStatus.FAILED):
        replay_everything(shell)


def replay_everything(shell: Shell) -> None:
    """A finished or failed item ignores every event it ever saw, and refuses external ones."""
    done = shell.item
    late = [*shell.delivered, *map(fired, shell.timers)]
    for event in [*late, External("approve"), TimerFired("timeout", done.state, done.visit)]:
        shell.now += 1
        deliver(shell, event)
        assert shell.item is done
