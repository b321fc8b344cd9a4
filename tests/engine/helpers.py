"""Shared factories for engine tests: terse definitions and a driver that feeds events.

Definitions are built straight from the model dataclasses (no YAML). A ``Run`` keeps the
current item and every audit row written so far, and builds well-formed command and timer
events for the visit the item is in, so a test reads as a story of what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from statewise.conditions import compile_condition
from statewise.definition.model import (
    DEFAULT_ESCALATION,
    DONE_EVENT,
    Branch,
    Command,
    Definition,
    ErrorKind,
    JoinKind,
    Parallel,
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
    RunCommand,
    StartTimer,
    StepResult,
    TimerFired,
    start,
    step,
)
from statewise.engine.defects import DEFECT_NOTE

T0 = 1_000.0
ESCALATED = DEFAULT_ESCALATION
UNHANDLED_NOTE = f"unhandled error; escalated to {ESCALATED!r}"

# A retry policy without jitter, so delays are exact: 1s, 2s, 4s, ...
EXACT_RETRY = RetryPolicy(attempts=3, backoff=1.0, multiplier=2.0, max_backoff=60.0, jitter=0.0)


# --- definition factories -------------------------------------------------------------------


def command(
    name: str, result: str | None = None, retry: RetryPolicy = EXACT_RETRY, **policy: Any
) -> Command:
    """A command storing its result under ``result`` (default: its own name)."""
    return Command(name=name, result=result or name, retry=replace(retry, **policy))


def go(
    target: str, *, on: str = DONE_EVENT, when: str | None = None, after: float | None = None
) -> Transition:
    """A transition to ``target`` on ``on``, guarded by the CEL source ``when`` if given."""
    condition = compile_condition(when) if when is not None else None
    return Transition(target=target, on=on, when=condition, after=after)


def otherwise(target: str, *, on: str = DONE_EVENT) -> Transition:
    """The ``else`` transition on ``on``."""
    return Transition(target=target, on=on, is_else=True)


def task(name: str, cmd: Command | str, *transitions: Transition, **extra: Any) -> State:
    """A normal state that runs a command (a bare string names a command with that result)."""
    if isinstance(cmd, str):
        cmd = command(cmd)
    return State(name=name, command=cmd, transitions=transitions, **extra)


def decide(name: str, *transitions: Transition, **extra: Any) -> State:
    """A decision state: no command, moves on at once by its ``done`` transitions."""
    return State(name=name, transitions=transitions, **extra)


def wait(name: str, *transitions: Transition, **extra: Any) -> State:
    """A waiting state: sits until an external event or one of its timers."""
    return State(name=name, kind=StateKind.WAITING, transitions=transitions, **extra)


def final(name: str) -> State:
    """A final state."""
    return State(name=name, kind=StateKind.FINAL)


def fan(
    name: str,
    *transitions: Transition,
    branches: dict[str, Command] | None = None,
    over: str | None = None,
    map_command: Command | None = None,
    concurrency: int | None = None,
    join: JoinKind = JoinKind.ALL,
    n_of: int | None = None,
) -> State:
    """A parallel state: fixed ``branches`` (name -> command) or a map ``over`` a list."""
    parallel = Parallel(
        branches=tuple(Branch(n, c) for n, c in (branches or {}).items()),
        over=compile_condition(over) if over is not None else None,
        map_command=map_command,
        concurrency=concurrency,
        join=join,
        n_of=n_of,
    )
    return State(name=name, kind=StateKind.PARALLEL, transitions=transitions, parallel=parallel)


def workflow(*states: State, escalation: str = ESCALATED, initial: str | None = None) -> Definition:
    """A definition starting at the first state; undeclared targets become final states."""
    table = {s.name: s for s in states}
    referenced = [t.target for s in states for t in s.transitions]
    referenced += [s.on_exhausted for s in states if s.on_exhausted]
    for name in [escalation, *referenced]:
        table.setdefault(name, final(name))
    return Definition(
        name="wf", version=1, states=table, initial=initial or states[0].name, escalation=escalation
    )


def assert_defect(result: StepResult, state: str, kind: str, *says: str) -> HistoryRecord:
    """``result`` failed its item in ``state`` with a defect of ``kind`` saying ``says``.

    The item holds no work any more (timers and commands cancelled, none started after), and
    the defect's audit row stays in that state; it is returned for further checks.
    """
    assert (result.item.state, result.item.status) == (state, ItemStatus.FAILED)
    row = result.history[-1]
    assert (row.from_state, row.to_state) == (state, state)
    assert row.error is not None and row.error["kind"] == kind, row.error
    for part in says:
        assert part in row.error["message"], row.error["message"]
    assert row.note is not None and row.note.endswith(DEFECT_NOTE)
    kinds = [type(e) for e in result.effects]
    assert CancelTimers in kinds and CancelCommands in kinds
    cancelled = kinds.index(CancelTimers)
    assert not {RunCommand, StartTimer} & set(kinds[cancelled:]), kinds
    return row


# --- driving an item ------------------------------------------------------------------------


@dataclass
class Run:
    """One item moving through a definition; every step's result and row is kept."""

    definition: Definition
    data: dict[str, Any] = field(default_factory=dict)
    key: str = "item-1"
    now: float = T0
    results: list[StepResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.results.append(start(self.definition, self.key, dict(self.data), self.now))

    @property
    def last(self) -> StepResult:
        """The most recent step's result."""
        return self.results[-1]

    @property
    def item(self) -> Item:
        """The item as the last step left it."""
        return self.last.item

    @property
    def rows(self) -> list[HistoryRecord]:
        """Every audit row written so far, in order."""
        return [row for result in self.results for row in result.history]

    @property
    def path(self) -> list[str]:
        """The ``to_state`` of every audit row: where the item has been."""
        return [row.to_state for row in self.rows]

    def deliver(self, event: Event, *, advance: float = 1.0) -> StepResult:
        """Step the item with ``event`` at a later time and keep the result."""
        self.now += advance
        result = step(self.definition, self.item, event, self.now)
        self.results.append(result)
        return result

    def succeed(
        self, result: Any = None, *, branch: str | None = None, duration: float = 0.5
    ) -> StepResult:
        """The command the item waits for (or the branch's) returned ``result``."""
        return self.deliver(
            CommandSucceeded(
                state=self.item.state,
                visit=self.item.visit,
                attempt=self._attempt(branch),
                result=result,
                duration=duration,
                branch=branch,
            )
        )

    def fail(
        self,
        kind: ErrorKind = ErrorKind.TRANSIENT,
        message: str = "boom",
        *,
        branch: str | None = None,
        **reported: Any,
    ) -> StepResult:
        """The command the item waits for (or the branch's) failed with ``kind``.

        ``reported`` sets what the failure carried: ``usage``, ``retry_after``.
        """
        return self.deliver(
            CommandFailed(
                state=self.item.state,
                visit=self.item.visit,
                attempt=self._attempt(branch),
                error_kind=kind,
                message=message,
                duration=0.5,
                branch=branch,
                **reported,
            )
        )

    def send(self, name: str, actor: str = "api", **data: Any) -> StepResult:
        """An external event ``name`` carrying ``data``."""
        return self.deliver(External(name=name, data=data, actor=actor))

    def timer(self, name: str, *, branch: str | None = None, advance: float = 1.0) -> StepResult:
        """Timer ``name`` of the current visit came due."""
        event = TimerFired(name=name, state=self.item.state, visit=self.item.visit, branch=branch)
        return self.deliver(event, advance=advance)

    def _attempt(self, branch: str | None) -> int:
        if branch is None:
            return self.item.attempt
        name = branch.partition(".")[0]  # a step of a sequence: `branch.step`
        return next(run.attempt for run in self.item.branches if run.name in (branch, name))


def hop(row: HistoryRecord) -> tuple[str | None, str, str, str]:
    """An audit row's move and cause: ``(from_state, to_state, event, event_kind)``."""
    return (row.from_state, row.to_state, row.event, row.event_kind)


def commands(result: StepResult) -> list[RunCommand]:
    """The RunCommand effects of a step."""
    return [e for e in result.effects if isinstance(e, RunCommand)]


def timers(result: StepResult) -> list[StartTimer]:
    """The StartTimer effects of a step."""
    return [e for e in result.effects if isinstance(e, StartTimer)]
