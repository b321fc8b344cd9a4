"""How an item moves: firing an event's transition, and entering a state.

The two entry points are ``fire`` (an event happened in the current state: take the first
transition on it whose guard holds, chosen by ``transitions``) and ``enter`` (go into this
state, whatever caused it: a transition, an escalation, an operator). Entering records the
move's audit row, drops what the state left was waiting on, and starts what the new state
does: its timers, then its task, its branches, its command, or, when it has nothing to do,
``fire(done)`` again at once. So one step may pass through several states, up to MAX_HOPS.
Everything here writes through the step's ``StepBuilder`` and stays pure.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from statewise.definition.model import (
    DONE_EVENT,
    ERROR_EVENT,
    Command,
    JoinKind,
    State,
    StateKind,
)
from statewise.engine import budget as budgets
from statewise.engine import buffer
from statewise.engine.branches import (
    fixed_branches,
    is_last_step,
    join_error,
    map_branches,
    result_keys,
    step_key,
    step_of,
)
from statewise.engine.builder import StepBuilder
from statewise.engine.defects import DEFECT_NOTE, ROUTABLE_DEFECTS, DefectKind, defect_kind
from statewise.engine.effects import (
    CancelCommands,
    CancelTimers,
    OpenTask,
    RunCommand,
    StartTimer,
    TaskClosing,
)
from statewise.engine.events import TASK_DUE_TIMER, TASK_REMINDER_TIMER
from statewise.engine.item import BranchRun, BranchStatus, ItemStatus
from statewise.engine.result import Hop
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

_STATUS_BY_KIND = {
    StateKind.FINAL: ItemStatus.DONE,
    StateKind.WAITING: ItemStatus.WAITING,
    StateKind.HUMAN: ItemStatus.WAITING,
}


def fire(builder: StepBuilder, event: str, hop: Hop, *, strict: bool = False) -> bool:
    """Take the first matching transition on ``event``; False when none matched.

    A ``done`` or ``error`` that matches nothing never stops the item silently: an unmatched
    ``done`` is a defect (the item fails), an unmatched ``error`` escalates or, when the
    error is itself a defect (an unusable result, an unexpected exception), fails the item.
    A guard that cannot be evaluated is a defect too, whatever ``on: error`` says, unless
    ``strict``: then its ConditionError is raised, for a sender's event that must be refused
    instead. Unmatched external and timer events are left to the caller.
    """
    state = builder.state
    guarded = any(t.when is not None for t in state.transitions if t.on == event)
    facts = guard_facts(builder, hop) if guarded else {}
    try:
        selection = select_transition(state, event, facts)
    except ConditionError as exc:
        if strict:
            raise
        fail_defect(builder, hop, DefectKind.CONDITION, str(exc))
        return True
    if selection is not None:
        enter(builder, selection.transition.target, hop, selection)
        return True
    if guarded and event in (ERROR_EVENT, DONE_EVENT):
        hop = replace(hop, rejected=false_guards(state, event, facts))
    if event == ERROR_EVENT:
        kind = defect_kind(hop.error)
        if kind in ROUTABLE_DEFECTS and kind is not None and hop.error is not None:
            fail_defect(builder, hop, kind, hop.error["message"])
        else:
            escalate(builder, hop)
        return True
    if event == DONE_EVENT:
        message = f"no transition from {state.name!r} matched event 'done'"
        fail_defect(builder, hop, DefectKind.NO_TRANSITION, message)
        return True
    return False


def guard_facts(builder: StepBuilder, hop: Hop) -> dict[str, JSON]:
    """What conditions may read at this point of the step, about the event ``hop`` carries."""
    return condition_facts(
        builder.definition, builder.item, builder.context, hop.event, hop.event_data, hop.error
    )


def enter(
    builder: StepBuilder,
    target: str,
    hop: Hop,
    selection: Selection | None = None,
    *,
    budget: bool = True,
    left: bool = False,
) -> None:
    """Move into ``target``, honouring its visit budget, and start what it does.

    ``selection`` is the transition that led here, for the audit row; ``budget`` False skips
    the visit budget: an operator asked for this move. ``left`` says the state being left
    has already dropped its work (a migration did so on the version that has the state).
    """
    hops = builder.count_hop()
    if hops > HARD_MAX_HOPS:
        raise ItemFailure(
            f"more than {HARD_MAX_HOPS} moves in one step: even the escalation state "
            f"{builder.definition.escalation!r} leads back into a loop; make it a final or "
            f"human state"
        )
    if hops > MAX_HOPS and target != builder.definition.escalation:
        loop_error = {"kind": "loop", "message": f"more than {MAX_HOPS} moves in one step"}
        target, hop = builder.definition.escalation, replace(hop, error=loop_error)
    if budget:
        target, hop = _within_budget(builder, target, hop)
    dwell = None
    came_from = None if hop.creates_item else builder.state_name
    if not hop.creates_item:
        if not left:
            _leave(builder, builder.state)
        dwell = builder.dwell()
    builder.record(hop, to_state=target, selection=selection, dwell=dwell)
    state = builder.definition.state(target)
    status = _STATUS_BY_KIND.get(state.kind, ItemStatus.ACTIVE)
    builder.arrive(state, status, 1 if _runs_command(state) else 0, came_from)
    _on_entry(builder, state)


def escalate(builder: StepBuilder, hop: Hop) -> None:
    """Send the item to the workflow's escalation state, saying why in the audit row."""
    note = hop.note or f"unhandled error; escalated to {builder.definition.escalation!r}"
    enter(builder, builder.definition.escalation, replace(hop, note=note))


def fail_defect(builder: StepBuilder, hop: Hop, kind: DefectKind, message: str) -> None:
    """Fail the item where it stands: its workflow or a command is broken (``defects``).

    The audit row keeps what ``hop`` carried (the command, its attempt and cost) with the
    defect as its error; an error the hop was routing is named in the message. Pending work
    goes, as when an item is quarantined: nothing may move a failed item but an operator.
    """
    routed = hop.error
    if routed is not None and routed.get("kind") != kind:
        message = f"{message} (while routing {routed.get('kind')}: {routed.get('message')})"
    drop_pending_work(builder)
    builder.stop(ItemStatus.FAILED)
    note = f"{hop.note}; {DEFECT_NOTE}" if hop.note else DEFECT_NOTE
    error = {"kind": str(kind), "message": message}
    builder.record(replace(hop, error=error, note=note), to_state=builder.state_name)


def drop_pending_work(builder: StepBuilder) -> None:
    """Cancel the current visit's commands and timers and close its open task, if any."""
    builder.emit(CancelTimers(), CancelCommands())
    if builder.state.kind is StateKind.HUMAN:
        builder.close_task("cancelled")
    close_branch_tasks(builder, builder.state, "cancelled")


def exceed(builder: StepBuilder, broken: budgets.Exceeded, hop: Hop) -> None:
    """Send the item to the spent budget's ``on_exceeded`` state, saying which and how far.

    Not a failure: a business route, like an exhausted visit budget.
    """
    enter(builder, broken.target, replace(hop, event=budgets.BUDGET_EVENT, budget=broken.detail()))


def stop_cut_short(builder: StepBuilder, hop: Hop) -> None:
    """A run stopped at the tokens its item's budgets had left: it is never retried.

    The item goes to the ``on_exceeded`` state of the budget it spent (its usage included).
    """
    spent = builder.spent.charged(builder.state_name, hop.usage)
    broken = budgets.cut_short(builder.definition, builder.state, spent)
    note = "; ".join(n for n in (broken.note(cut_short=True), hop.note) if n)
    exceed(builder, broken, replace(hop, note=note))


def run_command(
    builder: StepBuilder,
    command: Command,
    attempt: int,
    branch: str | None = None,
    input: JSON = None,
) -> bool:
    """Ask the shell to run ``command``; the item remembers the attempt it waits for.

    An agent runs only within the item's budgets: with one already spent, the item goes to
    that budget's ``on_exceeded`` state instead and this returns False (the state was left,
    so a caller launching branches stops). Otherwise the run is told how many tokens are left.
    """
    allowance = None
    if command.runs_agent:
        broken = budgets.exceeded(builder.definition, builder.state, builder.spent)
        if broken is not None:
            hop = Hop(
                event=budgets.BUDGET_EVENT,
                kind="budget",
                command=command.name,
                branch=branch,
                attempt=attempt,
                note=f"{broken.note()}, instead of running {command.name!r}",
            )
            exceed(builder, broken, hop)
            return False
        allowance = budgets.tokens_left(builder.definition, builder.state, builder.spent)
    if branch is None:
        builder.expect_attempt(attempt)
    builder.emit(
        RunCommand(
            command=command.name,
            state=builder.state_name,
            visit=builder.visit,
            attempt=attempt,
            timeout=command.retry.timeout,
            branch=branch,
            input=input,
            tokens_left=allowance,
        )
    )
    return True


def settle_join(builder: StepBuilder, state: State, failure: Hop | None = None) -> bool:
    """Fire ``done`` once the join is met, ``error`` once it never can be; True if it fired.

    When the branch ``failure`` that made the join impossible failed with a defect (an
    unusable result, an unexpected exception), the ``error`` carries that defect's kind, so
    an unhandled one fails the item instead of escalating it.
    """
    parallel = state.parallel
    assert parallel is not None
    runs = builder.branches
    succeeded = sum(r.status is BranchStatus.SUCCEEDED for r in runs)
    failed = [r.name for r in runs if r.status is BranchStatus.FAILED]
    needed = {
        JoinKind.ALL: len(runs),
        JoinKind.ANY: min(1, len(runs)),
        JoinKind.N_OF: parallel.n_of or len(runs),
    }[parallel.join]
    if succeeded >= needed:
        _cancel_waiting(builder, state, f"join {parallel.join} of {state.name!r} was met")
        fire(
            builder,
            DONE_EVENT,
            Hop(event=DONE_EVENT, kind="join", note=f"join {parallel.join} met"),
        )
        return True
    if len(runs) - len(failed) < needed:
        message = f"join {parallel.join} cannot be met; failed branches: {failed}"
        error = join_error(message, failure)
        _cancel_waiting(builder, state, f"join {parallel.join} of {state.name!r} cannot be met")
        fire(builder, ERROR_EVENT, Hop(event=ERROR_EVENT, kind="parallel", error=error))
        return True
    return False


def launch_pending(builder: StepBuilder, state: State) -> None:
    """Start pending branches while the state's concurrency limit allows."""
    parallel = state.parallel
    assert parallel is not None
    runs = builder.branches
    running = sum(r.status in _BUSY for r in runs)
    limit = parallel.concurrency or len(runs)
    for run in runs:
        if running >= limit:
            break
        if run.status is BranchStatus.PENDING:
            if not start_step(builder, state, run, 0):
                return  # a spent budget sent the item elsewhere
            running += 1


# A branch in one of these holds a slot of the state's concurrency.
_BUSY = (BranchStatus.RUNNING, BranchStatus.RETRYING, BranchStatus.WAITING)


def start_step(builder: StepBuilder, state: State, run: BranchRun, index: int) -> bool:
    """Start step ``index`` of branch ``run``: run its command, or open its task.

    False when a spent budget sent the item elsewhere instead.
    """
    step = step_of(state, run, index)
    key = step_key(state, run, index)
    if step.task is None:
        assert step.command is not None  # a step runs a command or opens a task
        builder.update_branch(run, BranchStatus.RUNNING, 1, index)
        return run_command(builder, step.command, 1, branch=key, input=run.input)
    builder.update_branch(run, BranchStatus.WAITING, 0, index)
    task = step.task
    now, visit = builder.now, builder.visit
    due_at = None if task.due is None else now + task.due
    remind_at = None if task.remind is None else now + task.remind
    builder.open_task(
        OpenTask(state.name, visit, task.queue, task.role.value, due_at, remind_at, key)
    )
    for name, at in ((TASK_REMINDER_TIMER, remind_at), (TASK_DUE_TIMER, due_at)):
        if at is not None:
            builder.emit(StartTimer(name, at, state.name, visit, key))
    return True


def finish_step(builder: StepBuilder, state: State, run: BranchRun) -> None:
    """The step ``run`` is at is done: start the next one, or the branch succeeded."""
    if not is_last_step(state, run):
        start_step(builder, state, run, run.step + 1)
        return
    builder.update_branch(run, BranchStatus.SUCCEEDED)
    if not settle_join(builder, state):
        launch_pending(builder, state)


def note_waiting(builder: StepBuilder) -> None:
    """In a parallel state, the item waits when its branches wait only for people.

    Its status says so: an item with no command running and no timer but a retry's or a
    task's is waiting on people, not stuck.
    """
    if builder.state.kind is not StateKind.PARALLEL or builder.status not in _MOVING:
        return
    runs = builder.branches
    busy = any(r.status in (BranchStatus.RUNNING, BranchStatus.RETRYING) for r in runs)
    builder.wait_for_people(not busy and any(r.status is BranchStatus.WAITING for r in runs))


_MOVING = (ItemStatus.ACTIVE, ItemStatus.WAITING)


def close_branch_tasks(
    builder: StepBuilder, state: State, status: TaskClosing, why: str | None = None
) -> list[str]:
    """Close the open tasks of ``state``'s branches; the keys of those closed."""
    if state.kind is not StateKind.PARALLEL:
        return []
    keys = [step_key(state, r) for r in builder.branches if r.status is BranchStatus.WAITING]
    for key in keys:
        builder.close_task(status, comment=why, branch=key)
    return keys


def _cancel_waiting(builder: StepBuilder, state: State, why: str) -> None:
    """The join is settled: the tasks still open are cancelled, each with its audit row."""
    reason = f"cancelled: {why} without it"
    for key in close_branch_tasks(builder, state, "cancelled", reason):
        builder.record(Hop(event="task_cancelled", kind="task", branch=key, note=reason))


def _within_budget(builder: StepBuilder, target: str, hop: Hop) -> tuple[str, Hop]:
    """Where a move to ``target`` really goes once visit budgets are spent, and why."""
    escalation = builder.definition.escalation
    seen: set[str] = set()
    state = builder.definition.state(target)
    while state.max_visits is not None and builder.visits.get(target, 0) >= state.max_visits:
        if target in seen:
            target, hop = escalation, replace(hop, note=f"{hop.note}; fallbacks loop")
            break
        seen.add(target)
        note = f"visit budget of {target!r} ({state.max_visits}) exhausted"
        target = state.on_exhausted or escalation
        hop = replace(hop, note=note)
        state = builder.definition.state(target)
    return target, hop


def _leave(builder: StepBuilder, state: State) -> None:
    """Drop what the state being left was waiting on: its timers, its open task."""
    if any(t.after is not None for t in state.transitions) or _has_task_timers(state):
        builder.emit(CancelTimers())
    if state.kind is StateKind.HUMAN:
        builder.close_task("cancelled")
    close_branch_tasks(builder, state, "cancelled")


def _has_task_timers(state: State) -> bool:
    """Whether a task of ``state`` (its own, or a branch's) has a reminder or due time."""
    tasks = [state.task] if state.task is not None else []
    for branch in state.parallel.branches if state.parallel is not None else ():
        tasks += [step.task for step in branch.tasks if step.task is not None]
    return any(task.due is not None or task.remind is not None for task in tasks)


def _on_entry(builder: StepBuilder, state: State) -> None:
    """Start what ``state`` does, now that the item is in it.

    An early event the item kept and ``state`` takes fires first (``buffer``): the item
    leaves at once, and nothing of this state starts.
    """
    delivery = buffer.deliver_on_entry(builder, state)
    if delivery is not None:
        enter(builder, delivery.target, delivery.hop, delivery.selection)
        return
    visit = builder.visit
    for transition in state.transitions:
        if transition.after is not None:
            builder.emit(
                StartTimer(transition.on, builder.now + transition.after, state.name, visit)
            )
    if state.kind is StateKind.HUMAN:
        _open_task(builder, state)
    elif state.kind is StateKind.PARALLEL:
        _fan_out(builder, state)
    elif _runs_command(state):
        assert state.command is not None
        run_command(builder, state.command, 1)
    elif state.kind in (StateKind.NORMAL, StateKind.INITIAL):
        fire(builder, DONE_EVENT, Hop(event=DONE_EVENT, kind="automatic"))


def _runs_command(state: State) -> bool:
    """Whether entering ``state`` starts its command (attempt 1) right away."""
    return state.command is not None and state.kind in (StateKind.NORMAL, StateKind.INITIAL)


def _open_task(builder: StepBuilder, state: State) -> None:
    """A person's task for this visit, with timers for its reminder and due time."""
    task = state.task
    assert task is not None  # validation: every human state has a task
    now, visit = builder.now, builder.visit
    due_at = None if task.due is None else now + task.due
    remind_at = None if task.remind is None else now + task.remind
    builder.open_task(OpenTask(state.name, visit, task.queue, task.role.value, due_at, remind_at))
    for name, at in ((TASK_REMINDER_TIMER, remind_at), (TASK_DUE_TIMER, due_at)):
        if at is not None:
            builder.emit(StartTimer(name, at, state.name, visit))


def _fan_out(builder: StepBuilder, state: State) -> None:
    """Create the state's branches, clear their result keys, and launch the first ones."""
    parallel = state.parallel
    assert parallel is not None, "validated at load: parallel states declare branches"
    if parallel.over is not None:
        hop = Hop(event="enter", kind="parallel")
        try:
            elements = parallel.over.evaluate(guard_facts(builder, hop))
        except ConditionError as exc:
            fail_defect(builder, hop, DefectKind.CONDITION, str(exc))
            return
        if not isinstance(elements, list):
            found = type(elements).__name__
            message = f"map over `{parallel.over.source}` gave {found}, not a list"
            fail_defect(builder, hop, DefectKind.CONDITION, message)
            return
        runs = map_branches(elements)
    else:
        runs = fixed_branches(parallel)
    for result_key in result_keys(parallel):
        builder.set((result_key,), {})
    builder.set_branches(runs)
    if not settle_join(builder, state):
        launch_pending(builder, state)
    note_waiting(builder)
