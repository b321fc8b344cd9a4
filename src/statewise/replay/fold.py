"""One item's recorded inputs folded through ``start()``/``step()`` of a new definition.

The fold starts the item with its recorded data, then answers what each step asks for, and
only with what was recorded:

- a command run: the result (or failure) recorded for the same state, visit ordinal, branch
  and attempt;
- an open task: the decision recorded for the same state and visit;
- a transition timer, a task's due time or reminder: fired if it fired for the same state and
  visit; a retry's backoff: always fired (the engine's own, not an input);
- an external event: each recorded one, once, when the item stands in a state that takes it;
- an operator's action: where the item stands in the state the operator acted in.

Of the inputs that can be delivered, the one recorded first goes first, so parallel branches
and events interleave as they did. The fold ends when the item ends, when it waits with
nothing recorded to give it, or when it asks for a command result that was never recorded:
then it *needs* that result, and nothing is guessed. It calls no command and no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from statewise.definition.model import (
    AGENT_COMMAND_PREFIX,
    DEFAULT_RETRY,
    DONE_EVENT,
    ERROR_EVENT,
    AgentSpec,
    Definition,
)
from statewise.engine.budget import usage_spend
from statewise.engine.effects import (
    CancelCommands,
    CancelTimers,
    CloseTask,
    OpenTask,
    RunCommand,
    StartTimer,
)
from statewise.engine.events import RETRY_TIMER, CommandSucceeded, External, TimerFired
from statewise.engine.item import BranchStatus, HistoryRecord, Item, ItemStatus
from statewise.engine.result import StepResult
from statewise.engine.step import new_item, start, step
from statewise.errors import InvalidEventError, ItemFailure
from statewise.replay.record import Inputs, Operated, Recorded, ResultKey, TaskKey

_ENDED = (ItemStatus.DONE, ItemStatus.FAILED, ItemStatus.CANCELLED)
# A fold that steps more often than this per recorded input is looping on timers it fires.
_STEPS_PER_INPUT = 4


@dataclass(frozen=True, slots=True)
class Need:
    """The command result a new path asked for that the record does not hold."""

    state: str
    command: str
    visit: int
    branch: str | None
    attempt: int
    why: str = "no result was ever recorded for it"

    def describe(self) -> str:
        """``command 'score' in state 'check' (visit 2, attempt 1): no result was ...``."""
        branch = f", branch {self.branch!r}" if self.branch is not None else ""
        return (
            f"command {self.command!r} in state {self.state!r} (visit {self.visit}{branch}, "
            f"attempt {self.attempt}): {self.why}"
        )


@dataclass(frozen=True, slots=True)
class Folded:
    """Where the new definition takes one item on its recorded inputs.

    ``history`` is the audit trail the new path would have written; ``tasks`` the (state,
    visit, queue) of every task it opens; ``refused`` the recorded events its path refused;
    ``stopped`` says why the fold ended early: an item the engine would quarantine, or one
    the new definition fails (its defect's kind and message).
    """

    item: Item
    history: tuple[HistoryRecord, ...]
    tasks: tuple[tuple[str, int, str], ...]
    need: Need | None = None
    refused: tuple[str, ...] = ()
    stopped: str | None = None


class _Pending:
    """What the item waits for after its last step: commands, timers, its open task."""

    def __init__(self) -> None:
        self.commands: dict[ResultKey, RunCommand] = {}
        self.timers: dict[tuple[str, str, int, str | None], StartTimer] = {}
        self.tasks: set[TaskKey] = set()
        self.opened: list[tuple[str, int, str]] = []

    def apply(self, result: StepResult) -> None:
        for effect in result.effects:
            match effect:
                case RunCommand():
                    key = (effect.state, effect.visit, effect.branch, effect.attempt)
                    self.commands[key] = effect
                case StartTimer():
                    key_t = (effect.name, effect.state, effect.visit, effect.branch)
                    self.timers[key_t] = effect
                case CancelTimers():
                    self.timers.clear()
                case CancelCommands():
                    self.commands.clear()
                case OpenTask():
                    self.tasks.add((effect.state, effect.visit, effect.branch))
                    self.opened.append((effect.state, effect.visit, effect.queue))
                case CloseTask():
                    self.tasks.discard((effect.state, effect.visit, effect.branch))
        item = result.item
        # A command is answered once; what belongs to a visit that is over is never asked again.
        here = (item.state, item.visit)
        self.commands = {
            k: c
            for k, c in self.commands.items()
            if (c.state, c.visit) == here and _awaited(item, c)
        }
        self.timers = {k: t for k, t in self.timers.items() if (t.state, t.visit) == here}


def _awaited(item: Item, command: RunCommand) -> bool:
    """Whether the item still waits for this attempt (of its command, or of one branch).

    A step of a sequence branch runs as ``branch.step``; a fold meets each step in order, so
    the branch's running attempt is that step's.
    """
    if command.branch is None:
        return command.attempt == item.attempt and not item.retrying
    return any(
        command.branch in (run.name, f"{run.name}.{command.branch.partition('.')[2]}")
        and run.attempt == command.attempt
        and run.status is BranchStatus.RUNNING
        for run in item.branches
    )


def fold(definition: Definition, inputs: Inputs, changed: frozenset[str] = frozenset()) -> Folded:
    """Replay one item's recorded inputs through ``definition``; pure.

    ``changed`` names the commands whose recorded results cannot stand in for a new run: the
    agents the new definition tells, equips or asks differently.
    """
    pending = _Pending()
    try:
        result = start(definition, inputs.key, inputs.data, inputs.started_at, inputs.actor)
    except ItemFailure as exc:
        item = new_item(definition, inputs.key, inputs.started_at)
        return Folded(replace(item, status=ItemStatus.FAILED), (), (), stopped=str(exc))
    history = list(result.history)
    pending.apply(result)
    item = result.item
    used: set[int] = set()
    refused: list[str] = []
    budget = _STEPS_PER_INPUT * (_count(inputs) + 1) + 100
    for _ in range(budget):  # an ended item may still take an operator's recorded redrive
        chosen = _next_input(definition, inputs, item, pending, used, changed)
        if chosen is None:
            break
        used.add(chosen.seq)
        if isinstance(chosen.event, TimerFired):
            event = chosen.event
            pending.timers.pop((event.name, event.state, event.visit, event.branch), None)
        try:
            result = step(definition, item, chosen.event, chosen.at)
        except InvalidEventError as exc:
            refused.append(str(exc))
            continue
        except ItemFailure as exc:
            return Folded(item, tuple(history), tuple(pending.opened), stopped=str(exc))
        history.extend(result.history)
        pending.apply(result)
        item = result.item
    else:
        stopped = f"the replay took more than {budget} steps; it was stopped there"
        return Folded(item, tuple(history), tuple(pending.opened), stopped=stopped)
    need = None if item.status in _ENDED else _need(inputs, pending, changed)
    return Folded(
        item, tuple(history), tuple(pending.opened), need, tuple(refused), _failure(item, history)
    )


def _failure(item: Item, history: Sequence[HistoryRecord]) -> str | None:
    """Why the fold failed the item (``kind: message`` of its last error row), or None.

    A new definition's defect (a condition that cannot be evaluated on the record, an
    unmatched ``done``) fails items; the report must name it, not count it as an outcome.
    """
    if item.status is not ItemStatus.FAILED:
        return None
    error = next((row.error for row in reversed(history) if row.error is not None), None)
    if error is None:
        return "failed"
    return f"{error.get('kind', 'failed')}: {error.get('message', '')}"


def changed_agents(old: Definition, new: Definition) -> frozenset[str]:
    """The agent commands whose recorded results ``new`` cannot reuse from ``old``'s items.

    An agent counts as changed when what it is told or given differs: its model,
    instructions, input, output, tools, conversation, examples, knowledge or settings. Its
    retry policy is not part of what it answers, and a plain command's code cannot be seen
    here: its recorded results are reused as long as it keeps its name.
    """
    return frozenset(
        AGENT_COMMAND_PREFIX + name
        for name, spec in new.agents.items()
        if name in old.agents and _told(old.agents[name]) != _told(spec)
    )


def _told(spec: AgentSpec) -> AgentSpec:
    return replace(spec, retry=DEFAULT_RETRY)


def _count(inputs: Inputs) -> int:
    return (
        len(inputs.results)
        + len(inputs.retries)
        + len(inputs.decisions)
        + len(inputs.timers)
        + len(inputs.events)
        + len(inputs.operations)
    )


def _next_input(
    definition: Definition,
    inputs: Inputs,
    item: Item,
    pending: _Pending,
    used: set[int],
    changed: frozenset[str],
) -> Recorded | None:
    """The earliest-recorded input the item can take now, or None when it can take none."""
    candidates: list[Recorded] = []
    for key, command in pending.commands.items():
        found = inputs.results.get(key)
        if found is not None and found.seq not in used and not _unusable(found, command, changed):
            candidates.append(found)
    for timer in pending.timers.values():
        if timer.name == RETRY_TIMER:
            candidates.append(_retry(inputs, item, timer))
        else:
            fired = inputs.timers.get((timer.name, timer.state, timer.visit, timer.branch))
            if fired is not None and fired.seq not in used:
                candidates.append(fired)
    for task in pending.tasks:
        decided = inputs.decisions.get(task)
        if decided is not None and decided.seq not in used:
            candidates.append(decided)
    takes = _takes(definition, item)
    candidates.extend(
        e
        for e in inputs.events
        if e.seq not in used and isinstance(e.event, External) and e.event.name in takes
    )
    candidates.extend(
        _as_recorded(o) for o in inputs.operations if o.seq not in used and o.state == item.state
    )
    return min(candidates, key=lambda r: r.seq, default=None)


def _retry(inputs: Inputs, item: Item, timer: StartTimer) -> Recorded:
    """A retry's backoff timer, placed where the record placed it, else before anything.

    A retry the record never made (the new definition retries more) still fires: its
    attempt then asks for a result, which is where a need shows.
    """
    attempt = item.attempt
    if timer.branch is not None:
        attempt = next((r.attempt for r in item.branches if r.name == timer.branch), 0)
    found = inputs.retries.get((timer.state, timer.visit, timer.branch, attempt + 1))
    if found is not None:
        return found
    fired = TimerFired(RETRY_TIMER, timer.state, timer.visit, timer.branch)
    return Recorded(-1 - attempt, timer.due_at, fired)


def _takes(definition: Definition, item: Item) -> frozenset[str]:
    """The external events the item's state has transitions for (a task state takes none)."""
    state = definition.states.get(item.state)
    if state is None or state.task is not None or item.status in _ENDED:
        return frozenset()
    internal = (DONE_EVENT, ERROR_EVENT)
    return frozenset(t.on for t in state.transitions if t.after is None and t.on not in internal)


def _as_recorded(operated: Operated) -> Recorded:
    return Recorded(operated.seq, operated.at, operated.event)


def _unusable(recorded: Recorded, command: RunCommand, changed: frozenset[str]) -> str | None:
    """Why a recorded run cannot stand in for this one (None: it can).

    It must be the same command, one the new definition has not changed. And an agent's run
    is told the tokens its item's budgets leave; one recorded under a looser budget that used
    more would have been cut short there, with an outcome nobody recorded.
    """
    if recorded.command is not None and recorded.command != command.command:
        return f"the recorded result there is {recorded.command!r}'s, a command it no longer runs"
    if command.command in changed:
        return (
            f"{command.command!r} is told or equipped differently now (its agent's model, "
            f"instructions, input, output, tools, examples or knowledge changed), so its "
            f"recorded results do not stand for it"
        )
    if command.tokens_left is None or not isinstance(recorded.event, CommandSucceeded):
        return None
    spend = usage_spend(recorded.event.usage)
    if spend is None or spend.tokens <= command.tokens_left:
        return None
    return (
        f"its recorded run used {spend.tokens} tokens, more than the {command.tokens_left} the "
        f"new budget leaves it, so it would have been cut short"
    )


def _need(inputs: Inputs, pending: _Pending, changed: frozenset[str]) -> Need | None:
    """The first command the item waits for; None when it waits on a person, event or timer."""
    if not pending.commands:
        return None
    key, command = min(pending.commands.items(), key=lambda kc: (kc[0][2] or "", kc[0][3]))
    recorded = inputs.results.get(key)
    why = None if recorded is None else _unusable(recorded, command, changed)
    need = Need(command.state, command.command, command.visit, command.branch, command.attempt)
    return need if why is None else replace(need, why=why)
