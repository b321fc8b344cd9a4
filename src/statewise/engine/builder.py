"""The step builder: accumulates one step's patches, effects and audit rows.

It is mutable on purpose but lives only inside one call of ``start`` or ``step``, so those
functions stay pure from the outside.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from statewise.definition.model import (
    DONE_EVENT,
    ERROR_EVENT,
    Command,
    Definition,
    State,
    StateKind,
)
from statewise.engine import buffer
from statewise.engine.budget import BUDGET_EVENT, Exceeded, cut_short, exceeded, tokens_left
from statewise.engine.defects import DEFECT_NOTE, ROUTABLE_DEFECTS, DefectKind, defect_kind
from statewise.engine.effects import (
    CancelCommands,
    CancelTimers,
    CloseTask,
    Effect,
    OpenTask,
    RunCommand,
    SaveConversation,
    SetContext,
    StartTimer,
    TaskClosing,
    set_path,
)
from statewise.engine.events import (
    RETRY_TIMER,
    TASK_DUE_TIMER,
    TASK_REMINDER_TIMER,
    CommandFailed,
    CommandSucceeded,
)
from statewise.engine.item import BranchRun, BufferedEvent, HistoryRecord, Item, ItemStatus
from statewise.engine.parallel import fan_out
from statewise.engine.result import Hop, Outcome, StepResult
from statewise.engine.retry import backoff_delay
from statewise.engine.transitions import (
    Selection,
    condition_facts,
    false_guards,
    select_transition,
)
from statewise.errors import ConditionError, ItemFailure

JSON = Any

# A step that hops through more states than this is looping without a budget; it escalates.
MAX_HOPS = 100
# Past this many, even the escalation state loops (it neither waits nor ends, and leads back
# into the cycle): nothing in the definition can stop the item, so it is quarantined.
HARD_MAX_HOPS = MAX_HOPS + MAX_HOPS // 2
# The audit row of a late result nobody waited for: the only row a stopped item still gets.
RESULT_IGNORED = "result_ignored"


def _command_name(definition: Definition, state: str, branch: str | None) -> str | None:
    """The command a (state, branch) runs, if the definition still has it."""
    found = definition.states.get(state)
    if found is None:
        return None
    if branch is None:
        return found.command.name if found.command else None
    parallel = found.parallel
    if parallel is None:
        return None
    if parallel.map_command is not None:
        return parallel.map_command.name
    return next((b.command.name for b in parallel.branches if b.name == branch), None)


def _runs_command(state: State) -> bool:
    """Whether entering ``state`` starts its command (attempt 1) right away."""
    return state.command is not None and state.kind in (StateKind.NORMAL, StateKind.INITIAL)


def _holds_object(context: Mapping[str, JSON], path: tuple[str, ...]) -> bool:
    """Whether ``path`` holds a non-empty object, the only value stored rows can lie below."""
    target: JSON = context
    for name in path:
        if not isinstance(target, dict):
            return False
        target = target.get(name)
    return isinstance(target, dict) and bool(target)


_STATUS_BY_KIND = {
    StateKind.FINAL: ItemStatus.DONE,
    StateKind.WAITING: ItemStatus.WAITING,
    StateKind.HUMAN: ItemStatus.WAITING,
}


class StepBuilder:
    """One step's evolving item and everything it has decided so far.

    The fields a step changes are plain attributes, and the new ``Item`` is built once, in
    ``result``: copying the frozen item at every change cost more than the rest of the step.
    """

    def __init__(self, definition: Definition, item: Item, now: float) -> None:
        self.definition = definition
        self.original = item
        self.now = now
        self.state_name = item.state
        self.status = item.status
        self.entered_at = item.entered_at
        self.visits: Mapping[str, int] = item.visits
        self.attempt = item.attempt
        self.retrying = item.retrying
        self.branches: tuple[BranchRun, ...] = item.branches
        self.spent = item.spent
        self.buffer: tuple[BufferedEvent, ...] = item.buffer
        self.context: dict[str, JSON] = dict(item.context)
        self.patches: list[SetContext] = []
        self.effects: list[Effect] = []
        self.history: list[HistoryRecord] = []
        self.moved = False
        self.hops = 0
        self.task_closed = False

    @property
    def state(self) -> State:
        """The state the item is in at this point of the step."""
        return self.definition.state(self.state_name)

    @property
    def visit(self) -> int:
        """How many times the item has entered the state it is in now."""
        return self.visits.get(self.state_name, 0)

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
            state=self.state_name,
            status=self.status,
            entered_at=self.entered_at,
            context=context,
            visits=self.visits,
            attempt=self.attempt,
            retrying=self.retrying,
            branches=self.branches,
            seq=seq,
            created_at=original.created_at,
            updated_at=updated_at,
            spent=self.spent,
            buffer=self.buffer,
        )

    def set(self, path: tuple[str, ...], value: JSON) -> None:
        """Change the context, keeping the patch so the store writes only what changed."""
        self.patches.append(SetContext(path, value, _holds_object(self.context, path)))
        set_path(self.context, path, value)  # the builder's own copy; nested dicts are copied

    def facts(self, hop: Hop) -> dict[str, JSON]:
        """What conditions may read right now."""
        return condition_facts(
            self.definition, self.item, self.context, hop.event, hop.event_data, hop.error
        )

    def fire(self, event: str, hop: Hop, *, strict: bool = False) -> bool:
        """Take the first matching transition on ``event``; False when none matched.

        A ``done`` or ``error`` that matches nothing never stops the item silently: an
        unmatched ``done`` is a defect (the item fails), an unmatched ``error`` escalates or,
        when the error is itself a defect (an unusable result, an unexpected exception),
        fails the item. A guard that cannot be evaluated is a defect too, whatever ``on:
        error`` says, unless ``strict``: then its ConditionError is raised, for a sender's
        event that must be refused instead. Unmatched external and timer events are left to
        the caller.
        """
        state = self.state
        guarded = any(t.when is not None for t in state.transitions if t.on == event)
        facts = self.facts(hop) if guarded else {}
        try:
            selection = select_transition(state, event, facts)
        except ConditionError as exc:
            if strict:
                raise
            self.fail_defect(hop, DefectKind.CONDITION, str(exc))
            return True
        if selection is not None:
            self.enter(selection.transition.target, hop, selection)
            return True
        if guarded and event in (ERROR_EVENT, DONE_EVENT):
            hop = replace(hop, rejected=false_guards(state, event, facts))
        if event == ERROR_EVENT:
            kind = defect_kind(hop.error)
            if kind in ROUTABLE_DEFECTS and kind is not None and hop.error is not None:
                self.fail_defect(hop, kind, hop.error["message"])
            else:
                self.escalate(hop)
            return True
        if event == DONE_EVENT:
            message = f"no transition from {state.name!r} matched event 'done'"
            self.fail_defect(hop, DefectKind.NO_TRANSITION, message)
            return True
        return False

    def escalate(self, hop: Hop) -> None:
        """Send the item to the workflow's escalation state, saying why in the audit row."""
        note = hop.note or f"unhandled error; escalated to {self.definition.escalation!r}"
        self.enter(self.definition.escalation, replace(hop, note=note))

    def fail_defect(self, hop: Hop, kind: DefectKind, message: str) -> None:
        """Fail the item where it stands: its workflow or a command is broken (``defects``).

        The audit row keeps what ``hop`` carried (the command, its attempt and cost) with the
        defect as its error; an error the hop was routing is named in the message. Pending
        work goes, as when an item is quarantined: nothing may move a failed item but an
        operator.
        """
        routed = hop.error
        if routed is not None and routed.get("kind") != kind:
            message = f"{message} (while routing {routed.get('kind')}: {routed.get('message')})"
        self.effects.extend((CancelTimers(), CancelCommands()))
        if self.state.kind is StateKind.HUMAN:
            self.close_task("cancelled")
        self.status = ItemStatus.FAILED
        self.retrying = False
        self.moved = True
        note = f"{hop.note}; {DEFECT_NOTE}" if hop.note else DEFECT_NOTE
        error = {"kind": str(kind), "message": message}
        self.record(replace(hop, error=error, note=note), to_state=self.state_name)

    def enter(
        self, target: str, hop: Hop, selection: Selection | None = None, budget: bool = True
    ) -> None:
        """Move into ``target``, honouring its visit budget, and start what it does.

        ``budget`` False skips the visit budget: an operator asked for this move.
        """
        self.hops += 1
        if self.hops > HARD_MAX_HOPS:
            raise ItemFailure(
                f"more than {HARD_MAX_HOPS} moves in one step: even the escalation state "
                f"{self.definition.escalation!r} leads back into a loop; make it a final or "
                f"human state"
            )
        if self.hops > MAX_HOPS and target != self.definition.escalation:
            loop_error = {"kind": "loop", "message": f"more than {MAX_HOPS} moves in one step"}
            target, hop = self.definition.escalation, replace(hop, error=loop_error)
        if budget:
            target, hop = self._within_budget(target, hop)
        origin = None if hop.origin is None else self.state_name
        if origin is not None:
            self._leave(self.state)
        dwell = None if origin is None else self.now - self.entered_at
        self.record(hop, to_state=target, selection=selection, from_state=origin, dwell=dwell)
        visits = dict(self.visits)
        visits[target] = visits.get(target, 0) + 1
        state = self.definition.state(target)
        self.state_name = target
        self.visits = visits
        self.entered_at = self.now
        self.attempt = 1 if _runs_command(state) else 0
        self.retrying = False
        self.branches = ()
        self.status = _STATUS_BY_KIND.get(state.kind, ItemStatus.ACTIVE)
        self.moved = True
        self._on_entry(state)

    def _within_budget(self, target: str, hop: Hop) -> tuple[str, Hop]:
        seen: set[str] = set()
        state = self.definition.state(target)
        while state.max_visits is not None and self.visits.get(target, 0) >= state.max_visits:
            if target in seen:
                target, hop = (
                    self.definition.escalation,
                    replace(hop, note=f"{hop.note}; fallbacks loop"),
                )
                break
            seen.add(target)
            note = f"visit budget of {target!r} ({state.max_visits}) exhausted"
            target = state.on_exhausted or self.definition.escalation
            hop = replace(hop, note=note)
            state = self.definition.state(target)
        return target, hop

    def _leave(self, state: State) -> None:
        """Drop what the state being left was waiting on: its timers, its open task."""
        task = state.task
        if any(t.after is not None for t in state.transitions) or (
            task is not None and (task.due is not None or task.remind is not None)
        ):
            self.effects.append(CancelTimers())
        if state.kind is StateKind.HUMAN:
            self.close_task("cancelled")

    def close_task(
        self,
        status: TaskClosing,
        actor: str = "system",
        outcome: str | None = None,
        comment: str | None = None,
        data: JSON = None,
    ) -> None:
        """Close the open task of the current state visit, once."""
        if self.task_closed:
            return
        self.task_closed = True
        self.effects.append(
            CloseTask(self.state_name, self.visit, status, actor, outcome, comment, data)
        )

    def _on_entry(self, state: State) -> None:
        if buffer.deliver_on_entry(self, state):
            return
        visit = self.visit
        for transition in state.transitions:
            if transition.after is not None:
                self.effects.append(
                    StartTimer(transition.on, self.now + transition.after, state.name, visit)
                )
        if state.kind is StateKind.HUMAN:
            self._open_task(state)
        elif state.kind is StateKind.PARALLEL:
            fan_out(self, state)
        elif _runs_command(state):
            assert state.command is not None
            self.run_command(state.command, 1)
        elif state.kind in (StateKind.NORMAL, StateKind.INITIAL):
            self.fire(DONE_EVENT, Hop(event=DONE_EVENT, kind="automatic"))

    def _open_task(self, state: State) -> None:
        """A person's task for this visit, with timers for its reminder and due time."""
        task = state.task
        assert task is not None  # validation: every human state has a task
        self.task_closed = False
        due_at = None if task.due is None else self.now + task.due
        remind_at = None if task.remind is None else self.now + task.remind
        self.effects.append(
            OpenTask(state.name, self.visit, task.queue, task.role.value, due_at, remind_at)
        )
        for name, at in ((TASK_REMINDER_TIMER, remind_at), (TASK_DUE_TIMER, due_at)):
            if at is not None:
                self.effects.append(StartTimer(name, at, state.name, self.visit))

    def run_command(
        self, command: Command, attempt: int, branch: str | None = None, input: JSON = None
    ) -> bool:
        """Ask the shell to run ``command``; the item remembers the attempt it waits for.

        An agent runs only within the item's budgets: with one already spent, the item goes
        to that budget's ``on_exceeded`` state instead and this returns False (the state was
        left, so a caller launching branches stops). Otherwise the run is told how many
        tokens are left.
        """
        allowance = None
        if command.runs_agent:
            broken = exceeded(self.definition, self.state, self.spent)
            if broken is not None:
                hop = Hop(
                    event=BUDGET_EVENT,
                    kind="budget",
                    command=command.name,
                    branch=branch,
                    attempt=attempt,
                    note=f"{broken.note()}, instead of running {command.name!r}",
                )
                self.exceed(broken, hop)
                return False
            allowance = tokens_left(self.definition, self.state, self.spent)
        if branch is None:
            self.attempt = attempt
            self.retrying = False
        self.effects.append(
            RunCommand(
                command=command.name,
                state=self.state_name,
                visit=self.visit,
                attempt=attempt,
                timeout=command.retry.timeout,
                branch=branch,
                input=input,
                tokens_left=allowance,
            )
        )
        return True

    def exceed(self, broken: Exceeded, hop: Hop) -> None:
        """Send the item to the spent budget's ``on_exceeded`` state, saying which and how far.

        Not a failure: a business route, like an exhausted visit budget.
        """
        self.enter(broken.target, replace(hop, event=BUDGET_EVENT, budget=broken.detail()))

    def cut_short(self, hop: Hop) -> None:
        """A run stopped at the tokens its item's budgets had left: it is never retried.

        The item goes to the ``on_exceeded`` state of the budget it spent (its usage included).
        """
        spent = self.spent.charged(self.state_name, hop.usage)
        broken = cut_short(self.definition, self.state, spent)
        note = "; ".join(n for n in (broken.note(cut_short=True), hop.note) if n)
        self.exceed(broken, replace(hop, note=note))

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
            command=_command_name(self.definition, event.state, event.branch),
            branch=event.branch,
            attempt=event.attempt,
            duration=event.duration,
            usage=event.usage,
            note=event.note or f"late result: its {over} was already over; usage recorded",
        )
        self.record(hop, to_state=self.state_name, from_state=event.state)
        return self.result()

    def save_conversations(self, conversation: dict[str, str] | None) -> None:
        """Keep what an accepted attempt's agents said, in this step's transaction."""
        for agent, messages in (conversation or {}).items():
            self.effects.append(SaveConversation(agent, messages))

    def schedule_retry(self, command: Command, attempt: int, hop: Hop) -> None:
        """Record the failed attempt and start a durable backoff timer for the next one."""
        identity = f"{self.original.key}:{self.state_name}:{self.visit}:{hop.branch}"
        delay = max(backoff_delay(command.retry, attempt, identity), hop.retry_after or 0.0)
        if hop.branch is None:
            self.retrying = True
        self.effects.append(
            StartTimer(RETRY_TIMER, self.now + delay, self.state_name, self.visit, hop.branch)
        )
        self.record(
            replace(hop, event="failed", note=f"attempt {attempt} failed; retry in {delay:.2f}s"),
            to_state=self.state_name,
        )

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

        ``dwell`` is the time spent in the state this row leaves.
        """
        origin = from_state if from_state is not None or hop.origin is None else self.state_name
        output = hop.output
        rejected = selection.rejected if selection is not None else hop.rejected
        if hop.usage:  # every model call is charged to the state that made it, once, here
            self.spent = self.spent.charged(origin or self.state_name, hop.usage)
        self.history.append(
            HistoryRecord(
                seq=self.original.seq + len(self.history) + 1,
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
        """Freeze what the step decided."""
        buffer.settle(self)
        return StepResult(
            item=self._build(self.context, self.original.seq + len(self.history), self.now),
            outcome=Outcome.MOVED if self.moved else Outcome.STAYED,
            effects=tuple(self.effects),
            patches=tuple(self.patches),
            history=tuple(self.history),
        )
