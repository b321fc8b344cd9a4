"""The reviewer's desk: the inbox of human tasks, claims, and decisions checked against forms.

A decision passes three gates before it moves the item: the person may work on the task (role
and queue), the form data fits the task's form, and, in the commit's own transaction, the task
is still open and nobody else holds an unexpired claim on it. Failing any gate is a TaskError
that says why, and changes nothing.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ValidationError

from statewise.actions.principal import Principal
from statewise.contract import CommandRegistry
from statewise.definition.data_schema import schema_problems
from statewise.definition.model import BranchStep, EventSpec, HumanTask, State
from statewise.engine.events import TaskDecided
from statewise.engine.item import Item
from statewise.errors import InvalidEventError, NotFoundError, TaskError
from statewise.inputs import check_row_id
from statewise.store.base import QueueCount, Task, TaskGuard, TaskPage, TaskQuery, TaskStatus
from statewise.worker.writer import ItemWriter

JSON = Any

# An outcome whose first word is one of these undoes or refuses work: its button is styled as
# destructive even without ``style: danger`` on the event.
DESTRUCTIVE_WORDS = frozenset(
    {"reject", "cancel", "deny", "decline", "abort", "discard", "refuse", "delete"}
)


@dataclass(frozen=True, slots=True)
class OutcomeChoice:
    """One button of a task's form: the event it fires, its text, and whether it destroys."""

    event: str
    label: str
    description: str
    danger: bool


def outcome_choice(event: str, spec: EventSpec | None) -> OutcomeChoice:
    """How a decision's outcome is offered to a person.

    The button says the event's ``label``, else its name in words (``request_revision``:
    "Request revision"); the event's ``description`` explains it. It is destructive when the
    event says ``style: danger`` or its first word is in ``DESTRUCTIVE_WORDS``.
    """
    label = (spec.label if spec else "") or event.replace("_", " ").capitalize()
    danger = bool(spec and spec.style == "danger")
    return OutcomeChoice(
        event,
        label,
        spec.description if spec else "",
        danger or event.split("_", 1)[0] in DESTRUCTIVE_WORDS,
    )


class TaskDesk:
    """Human tasks of the definitions one writer holds, for the people who decide them."""

    def __init__(
        self,
        writer: ItemWriter,
        registry: CommandRegistry | None = None,
        clock: Callable[[], float] | None = None,
        skipped: Mapping[str, str] | None = None,
    ) -> None:
        self.writer = writer
        self.store = writer.store
        self.registry = registry or CommandRegistry()
        self.clock = clock or writer.clock
        self.skipped = skipped or {}

    def state_of(self, task: Task) -> State:
        """The human state a task belongs to, in the version its item runs on.

        A task of a version this process does not hold (skipped at start, say for a missing
        module) is a TaskError that says why: another process may decide it, and one such
        task must never break an inbox.
        """
        try:
            definition = self.writer.definition(task.workflow, task.version)
        except NotFoundError:
            ref = f"{task.workflow}@{task.version}"
            why = self.skipped.get(ref, "this process was not started with it")
            raise TaskError(
                f"task {task.id} is not loadable here: {ref} was skipped ({why}); "
                f"decide it where that version is loaded; nothing changed"
            ) from None
        state = definition.states.get(task.state)
        if task.branch is not None:
            found = None if state is None else _branch_step(state, task.branch)
            if found is None:
                raise TaskError(
                    f"task {task.id}: {definition.ref} has no branch task {task.branch!r} in "
                    f"state {task.state!r} any more"
                )
        elif state is None or state.task is None:
            raise TaskError(
                f"task {task.id}: {definition.ref} has no human state {task.state!r} any more"
            )
        assert state is not None
        return state

    def step(self, task: Task) -> BranchStep | None:
        """The branch step whose task ``task`` is; None for a human state's own task."""
        if task.branch is None:
            return None
        return _branch_step(self.state_of(task), task.branch)

    def spec(self, task: Task) -> HumanTask:
        """The task as the definition declares it (queue, form, due time)."""
        step = self.step(task)
        spec = self.state_of(task).task if step is None else step.task
        assert spec is not None  # state_of refuses states without one
        return spec

    def unloadable(self, task: Task) -> str | None:
        """Why this process cannot show or decide the task, or None when it can."""
        try:
            self.state_of(task)
        except TaskError as exc:
            return str(exc)
        return None

    def title(self, task: Task) -> str:
        """What the task asks, for lists and pages."""
        state, spec = self.state_of(task), self.spec(task)
        if task.branch is not None:
            return spec.title or f"{state.description or state.name} ({task.branch})"
        return spec.title or state.description or state.name

    def outcomes(self, task: Task) -> tuple[str, ...]:
        """The outcomes a decision may choose from."""
        step = self.step(task)
        return self.state_of(task).outcomes if step is None else step.outcomes

    def outcome_choices(self, task: Task) -> list[OutcomeChoice]:
        """The outcomes as buttons: labelled and explained by the workflow's ``events:``."""
        events = self.writer.definition(task.workflow, task.version).events or {}
        return [outcome_choice(name, events.get(name)) for name in self.outcomes(task)]

    def form(self, task: Task) -> dict[str, JSON]:
        """The JSON Schema the decision's form data must fit (``{}``: no form)."""
        form = self.spec(task).form
        if form is None:
            return {}
        if isinstance(form, str):
            return self._form_model(form).model_json_schema()
        return dict(form)

    async def inbox(
        self,
        principal: Principal,
        queue: str | None = None,
        status: TaskStatus | None = TaskStatus.OPEN,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Task]:
        """Tasks in the queues the principal's token admits, oldest first."""
        if queue is not None:
            if not principal.may_see_queue(queue):
                return []
            return await self.store.tasks(status=status, queue=queue, limit=limit, offset=offset)
        if not principal.queues:
            return await self.store.tasks(status=status, limit=limit, offset=offset)
        found: list[Task] = []
        for name in principal.queues:
            found += await self.store.tasks(status=status, queue=name, limit=limit + offset)
        found.sort(key=lambda task: (task.created_at, task.id))
        return found[offset : offset + limit]

    async def task_page(self, principal: Principal, query: TaskQuery) -> TaskPage:
        """One page of the open tasks in the principal's queues, as ``query`` filters them."""
        visible = principal.queues or None
        return await self.store.task_page(
            replace(query, queues=visible, actor=principal.actor, now=self.clock())
        )

    async def queue_counts(self, principal: Principal) -> list[QueueCount]:
        """Open and overdue tasks in each queue the principal may see."""
        return await self.store.queue_counts(principal.queues or None, self.clock())

    async def claim(self, task_id: int, principal: Principal) -> Task:
        """Claim a task for as long as its definition says claims last."""
        task = await self._workable(task_id, principal)
        now = self.clock()
        until = now + self.spec(task).claim
        return await self.store.claim_task(task.id, principal.actor, now, until)

    async def release(self, task_id: int, principal: Principal) -> Task:
        """Give a claimed task back to the queue."""
        task = await self._workable(task_id, principal)
        return await self.store.release_task(task.id, principal.actor, self.clock())

    async def decide(
        self,
        task_id: int,
        principal: Principal,
        outcome: str,
        comment: str = "",
        data: Mapping[str, JSON] | None = None,
    ) -> Item:
        """Decide a task and move its item on; TaskError says why when it cannot be.

        Form data that breaks the input rules is refused (InvalidInputError) before the
        task is even read.
        """
        form_data = dict(data or {})
        self.writer.input_limits.check_document(form_data, f"the form data of task {task_id}")
        task = await self._workable(task_id, principal)
        now = self.clock()
        self._check_open(task, principal, now)
        outcomes = self.outcomes(task)
        if outcome not in outcomes:
            close = difflib.get_close_matches(outcome, outcomes, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TaskError(
                f"task {task.id} has no outcome {outcome!r} (choose from: "
                f"{', '.join(outcomes)}){hint}; nothing changed"
            )
        checked = self.check_form(task, form_data)
        event = TaskDecided(
            task.state, task.visit, outcome, principal.actor, comment, checked, task.id, task.branch
        )
        try:
            return await self.writer.apply(
                task.workflow,
                task.key,
                event,
                f"the decision of task {task.id}",
                TaskGuard(task.id, principal.actor, now),
            )
        except InvalidEventError as exc:
            raise TaskError(f"task {task.id} cannot be decided: {exc}") from exc

    def check_form(self, task: Task, data: dict[str, JSON]) -> dict[str, JSON]:
        """The form data, validated against the task's form; TaskError lists every problem."""
        form = self.spec(task).form
        if form is None:
            return data
        if isinstance(form, str):
            try:
                return self._form_model(form).model_validate(data).model_dump(mode="json")
            except ValidationError as exc:
                problems = [
                    f"{'.'.join(str(p) for p in error['loc']) or 'form'}: {error['msg']}"
                    for error in exc.errors()
                ]
                raise TaskError(_form_error(task, problems)) from None
        problems = schema_problems(form, data, root="form")
        if problems:
            raise TaskError(_form_error(task, problems))
        return data

    def _form_model(self, name: str) -> type[BaseModel]:
        try:
            return self.registry.get_output_model(name)
        except Exception as exc:
            raise TaskError(f"the form model {name!r} is not registered here: {exc}") from None

    async def _workable(self, task_id: int, principal: Principal) -> Task:
        task = await self.store.get_task(check_row_id(task_id, "task"))
        if not principal.may_see_queue(task.queue):
            raise TaskError(
                f"task {task.id} is in queue {task.queue!r}, which your token does not include"
            )
        if not principal.may_work_on(task):
            raise TaskError(
                f"task {task.id} needs role {task.role!r}; your token's role is "
                f"{principal.role.value!r}"
            )
        return task

    def _check_open(self, task: Task, principal: Principal, now: float) -> None:
        if task.status is not TaskStatus.OPEN:
            by = f" by {task.decided_by}" if task.decided_by else ""
            why = task.why_closed()
            raise TaskError(
                f"task {task.id} is already {task.status.value}{by}{why}; nothing changed"
            )
        if task.due_at is not None and task.due_at <= now:
            raise TaskError(
                f"task {task.id} was due at {_clock(task.due_at)} and has expired; "
                f"nothing changed (the item escalates)"
            )
        other = task.claimed_by_other(principal.actor, now)
        if other is not None:
            raise TaskError(
                f"task {task.id} is claimed by {other} until {_clock(task.claim_until or now)}; "
                f"nothing changed"
            )


def _branch_step(state: State, key: str) -> BranchStep | None:
    """The step of ``state``'s branches whose task is called ``key``, if there is one."""
    found = None if state.parallel is None else state.parallel.branch_task(key)
    return None if found is None else found[2]


def _form_error(task: Task, problems: list[str]) -> str:
    return f"the form data of task {task.id} does not fit its form: {'; '.join(problems)}"


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
