"""The step builder: one step's working copy of the item, and what the step has decided.

It is mutable on purpose but lives only inside one call of ``start`` or ``step``, so those
functions stay pure from the outside. It decides nothing: ``moves`` and the event handlers
do, and write through its named methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from statewise.definition.model import Definition, State
from statewise.engine import buffer
from statewise.engine.branches import command_name
from statewise.engine.budget import Spent
from statewise.engine.effects import (
    CloseTask,
    Effect,
    OpenTask,
    SaveConversation,
    SetContext,
    TaskClosing,
    set_path,
)
from statewise.engine.events import CommandFailed, CommandSucceeded
from statewise.engine.item import (
    BranchRun,
    BranchStatus,
    BufferedEvent,
    HistoryRecord,
    Item,
    ItemStatus,
)
from statewise.engine.result import Hop, Outcome, StepResult
from statewise.engine.transitions import Selection

JSON = Any

# The audit row of a late result nobody waited for: the only row a stopped item still gets.
RESULT_IGNORED = "result_ignored"


def _holds_object(context: Mapping[str, JSON], path: tuple[str, ...]) -> bool:
    """Whether ``path`` holds a non-empty object, the only value stored rows can lie below."""
    target: JSON = context
    for name in path:
        if not isinstance(target, dict):
            return False
        target = target.get(name)
    return isinstance(target, dict) and bool(target)


class StepBuilder:
    """One step's working copy of the item, and the patches, effects and audit rows so far.

    An accumulator: what to do is decided elsewhere (``moves`` enters states and fires
    transitions; ``parallel``, ``tasks`` and ``operations`` handle their events), and each
    change goes through a named method here, so every write to the working copy is findable.
    The fields a step changes are plain attributes, and the new ``Item`` is built once, in
    ``result``: copying the frozen item at every change cost more than the rest of the step.
    """

    def __init__(self, definition: Definition, item: Item, now: float) -> None:
        self.definition = definition
        self.original = item
        self.now = now
        self._state_name = item.state
        self._status = item.status
        self._entered_at = item.entered_at
        self._visits: Mapping[str, int] = item.visits
        self._attempt = item.attempt
        self._retrying = item.retrying
        self._branches: tuple[BranchRun, ...] = item.branches
        self._spent = item.spent
        self._buffer = item.buffer
        self._came_from = item.came_from
        self._context: dict[str, JSON] = dict(item.context)
        self._patches: list[SetContext] = []
        self._effects: list[Effect] = []
        self._history: list[HistoryRecord] = []
        self._moved = False
        self._hops = 0
        self._closed_tasks: set[str | None] = set()

    # What the step has made of the item so far.

    @property
    def state_name(self) -> str:
        """The name of the state the item is in at this point of the step."""
        return self._state_name

    @property
    def state(self) -> State:
        """The state the item is in at this point of the step."""
        return self.definition.state(self._state_name)

    @property
    def visit(self) -> int:
        """How many times the item has entered the state it is in now."""
        return self._visits.get(self._state_name, 0)

    @property
    def visits(self) -> Mapping[str, int]:
        """How many times the item has entered each state (absent: never)."""
        return self._visits

    @property
    def came_from(self) -> str | None:
        """The state the item entered its current state from (None: it started there)."""
        return self._came_from

    @property
    def branches(self) -> tuple[BranchRun, ...]:
        """The branches of the parallel state the item is in; empty elsewhere."""
        return self._branches

    @property
    def spent(self) -> Spent:
        """What the item has spent on models, this step's audit rows included."""
        return self._spent

    @property
    def status(self) -> ItemStatus:
        """The item's status at this point of the step."""
        return self._status

    @property
    def buffer(self) -> tuple[BufferedEvent, ...]:
        """The early events the item keeps (``buffer``), oldest first."""
        return self._buffer

    @property
    def seq(self) -> int:
        """The ``seq`` of the latest audit row, this step's included."""
        return self.original.seq + len(self._history)

    @property
    def context(self) -> Mapping[str, JSON]:
        """The item's context with this step's patches applied."""
        return self._context

    @property
    def item(self) -> Item:
        """The item as it stands at this point of the step (its context and seq excepted)."""
        return self._build(self.original.context, self.original.seq, self.original.updated_at)

    def _build(self, context: Mapping[str, JSON], seq: int, updated_at: float) -> Item:
        original = self.original
        return Item(
            key=original.key,
            workflow=original.workflow,
            version=original.version,
            state=self._state_name,
            status=self._status,
            entered_at=self._entered_at,
            context=context,
            visits=self._visits,
            attempt=self._attempt,
            retrying=self._retrying,
            branches=self._branches,
            seq=seq,
            created_at=original.created_at,
            updated_at=updated_at,
            spent=self._spent,
            buffer=self._buffer,
            came_from=self._came_from,
        )

    # Changes to the working copy.

    def set(self, path: tuple[str, ...], value: JSON) -> None:
        """Change the context, keeping the patch so the store writes only what changed."""
        self._patches.append(SetContext(path, value, _holds_object(self._context, path)))
        set_path(self._context, path, value)  # the builder's own copy; nested dicts are copied

    def count_hop(self) -> int:
        """Count one more move in this step; returns how many there have been."""
        self._hops += 1
        return self._hops

    def arrive(self, state: State, status: ItemStatus, attempt: int, came_from: str | None) -> None:
        """The item is now in ``state``, entered now from ``came_from``, waiting for ``attempt``.

        A new visit: no retry is pending and no branch runs yet (``attempt`` 0: none).
        """
        self._came_from = came_from
        visits = dict(self._visits)
        visits[state.name] = visits.get(state.name, 0) + 1
        self._state_name = state.name
        self._visits = visits
        self._entered_at = self.now
        self._attempt = attempt
        self._retrying = False
        self._branches = ()
        self._status = status
        self._moved = True

    def adopt(self, definition: Definition) -> None:
        """Read the rest of the step from ``definition``: a migration moves the item onto it."""
        self.definition = definition

    def dwell(self) -> float:
        """How long the item has been in its current state, as of this step."""
        return self.now - self._entered_at

    def stop(self, status: ItemStatus) -> None:
        """Stop the item where it stands (failed, paused, cancelled): no retry is pending."""
        self._status = status
        self._retrying = False
        self._moved = True

    def forget_work(self) -> None:
        """Forget the attempt and branches the item waited for: an operator dropped them."""
        self._attempt, self._retrying, self._branches = 0, False, ()

    def expect_attempt(self, attempt: int) -> None:
        """The item now waits for ``attempt`` of its state's command."""
        self._attempt = attempt
        self._retrying = False

    def await_retry(self) -> None:
        """The item's last attempt failed; it waits for the backoff timer of the next one."""
        self._retrying = True

    def set_branches(self, runs: tuple[BranchRun, ...]) -> None:
        """The branches a parallel state's visit runs, all pending."""
        self._branches = runs

    def update_branch(
        self,
        run: BranchRun,
        status: BranchStatus,
        attempt: int | None = None,
        step: int | None = None,
    ) -> BranchRun:
        """Give branch ``run`` a new status (attempt, step), built directly: no ``replace``."""
        changed = BranchRun(
            run.name,
            status,
            run.attempt if attempt is None else attempt,
            run.input,
            run.step if step is None else step,
        )
        self._branches = tuple(changed if r.name == run.name else r for r in self._branches)
        return changed

    def wait_for_people(self, waiting: bool) -> None:
        """In a parallel state: whether the item now waits only for people's tasks."""
        self._status = ItemStatus.WAITING if waiting else ItemStatus.ACTIVE

    # Effects for the shell.

    def keep(self, events: tuple[BufferedEvent, ...]) -> None:
        """Replace the early events the item keeps (``buffer`` adds, delivers, drops)."""
        self._buffer = events

    def has_emitted(self, kind: type[Effect]) -> bool:
        """Whether this step has asked for an effect of ``kind`` so far."""
        return any(isinstance(effect, kind) for effect in self._effects)

    def emit(self, *effects: Effect) -> None:
        """Ask the shell to perform ``effects`` when it commits the step."""
        self._effects.extend(effects)

    def open_task(self, task: OpenTask) -> None:
        """Open the task of the current state visit (a human state's entry, or a branch's)."""
        self._closed_tasks.discard(task.branch)
        self._effects.append(task)

    def close_task(
        self,
        status: TaskClosing,
        actor: str = "system",
        outcome: str | None = None,
        comment: str | None = None,
        data: JSON = None,
        branch: str | None = None,
    ) -> None:
        """Close the open task of the current state visit (or of its ``branch``), once."""
        if branch in self._closed_tasks:
            return
        self._closed_tasks.add(branch)
        self._effects.append(
            CloseTask(self._state_name, self.visit, status, actor, outcome, comment, data, branch)
        )

    def save_conversations(self, conversation: dict[str, str] | None) -> None:
        """Keep what an accepted attempt's agents said, in this step's transaction."""
        for agent, messages in (conversation or {}).items():
            self._effects.append(SaveConversation(agent, messages))

    # Audit rows, and the result.

    def ignore_result(self, event: CommandSucceeded | CommandFailed) -> StepResult:
        """A result nobody waits for any more: its state visit, branch or attempt is over.

        It changes nothing, but what it spent on models is still recorded (against the state
        that spent it), so a losing branch or a superseded attempt never hides its cost.
        """
        if not event.usage:
            return StepResult(self.original, Outcome.IGNORED)
        over = f"branch {event.branch!r}" if event.branch is not None else "attempt"
        hop = Hop(
            event=RESULT_IGNORED,
            kind="command",
            command=command_name(self.definition, event.state, event.branch),
            branch=event.branch,
            attempt=event.attempt,
            duration=event.duration,
            usage=event.usage,
            note=event.note or f"late result: its {over} was already over; usage recorded",
        )
        self.record(hop, to_state=self.state_name, from_state=event.state)
        return self.result()

    def record(
        self,
        hop: Hop,
        *,
        to_state: str | None = None,
        selection: Selection | None = None,
        from_state: str | None = None,
        dwell: float | None = None,
    ) -> None:
        """Append an audit row; ``seq`` numbers rows without gaps across steps.

        The row leaves ``from_state``, by default the current state (none when ``hop``
        creates the item); ``dwell`` is the time spent in the state it leaves.
        """
        origin = from_state if from_state is not None or hop.creates_item else self.state_name
        output = hop.output
        rejected = selection.rejected if selection is not None else hop.rejected
        if hop.usage:  # every model call is charged to the state that made it, once, here
            self._spent = self._spent.charged(origin or self.state_name, hop.usage)
        self._history.append(
            HistoryRecord(
                seq=self.original.seq + len(self._history) + 1,
                at=self.now,
                from_state=origin,
                to_state=to_state if to_state is not None else self.state_name,
                event=hop.event,
                event_kind=hop.kind,
                actor=hop.actor,
                transition=selection.index if selection else None,
                condition=selection.condition if selection else None,
                values=selection.values if selection else {},
                command=hop.command,
                branch=hop.branch,
                attempt=hop.attempt,
                duration=hop.duration,
                error=hop.error,
                note=hop.note,
                usage=hop.usage,
                dwell=dwell,
                decision=hop.decision,
                output=output,
                visit=self.visit if output is not None and origin is not None else None,
                rejected=list(rejected) if rejected else None,
                budget=hop.budget,
            )
        )

    def result(self) -> StepResult:
        """Freeze what the step decided, once the early events it keeps are settled."""
        buffer.settle(self)
        return StepResult(
            item=self._build(self._context, self.original.seq + len(self._history), self.now),
            outcome=Outcome.MOVED if self._moved else Outcome.STAYED,
            effects=tuple(self._effects),
            patches=tuple(self._patches),
            history=tuple(self._history),
        )
