"""One workflow under test: a real SQLite store, a virtual clock, scripted agents, fake commands.

A :class:`WorkflowTest` drives the real runner, writer and task desk in-process on a SQLite
file, so what a test sees is what production does; only time, models and the commands the
test replaces are under the test's control. Every action (start, decide, send, advance) runs
the items until they settle: nothing running, nothing ready, no timer due at the virtual now;
and then checks the store's invariant, that every active item has work pending.

Its methods are synchronous, for plain pytest functions; each runs on the test's own event
loop, which the harness keeps for its whole life.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from statewise.actions.principal import Principal
from statewise.actions.tasks import TaskDesk
from statewise.contract import CommandContext, CommandRegistry
from statewise.definition.builder import Workflow
from statewise.definition.loader import load
from statewise.definition.model import Command, Definition, Role, agent_command
from statewise.engine.item import HistoryRecord, Item, ItemStatus
from statewise.errors import (
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from statewise.store import open_store
from statewise.store.base import Store, Task
from statewise.testing.clock import VirtualClock, span, stamp
from statewise.testing.scripts import FakeCommand, Reply, ScriptedAgent
from statewise.worker import Runner
from statewise.worker.registry import load_registry
from statewise.worker.webhooks import register_webhooks

JSON = Any
T = TypeVar("T")
_MISSING = object()
# Rounds of due timers at one moment before the items are taken for never settling.
_MAX_ROUNDS = 10_000


class WorkflowTest:
    """A workflow's items on a store of their own, moved by the test; see the module docstring.

    Args:
        workflow: The definition, a ``Workflow`` being built, or the path of its YAML file.
        db: The SQLite file to create.
        commands: The registry of the workflow's commands, or command modules to import
            (``tools.py``, ``teams.billing``), as ``statewise run --commands`` takes them.
        clock: The virtual clock (a fresh one starting at a fixed Monday 09:00 UTC by default).

    """

    def __init__(
        self,
        workflow: Definition | Workflow | str | Path,
        db: str | Path,
        commands: CommandRegistry | str | Path | Sequence[str | Path] | None = None,
        *,
        clock: VirtualClock | None = None,
    ) -> None:
        self.registry = _registry(commands)
        self.definition = _definition(workflow)
        self.clock = clock or VirtualClock()
        self.started_at = self.clock.now
        self._fakes: dict[str, FakeCommand] = {}
        self._agents = {
            name: ScriptedAgent(spec, self.registry)
            for name, spec in self.definition.agents.items()
        }
        self._loop = asyncio.Runner()
        try:
            self.store: Store = self._loop.run(_opened(db))
            file = str(workflow) if isinstance(workflow, str | Path) else "<built in Python>"
            self._run(self.store.save_workflow(self.definition, file, []))
        except BaseException:
            self._loop.close()
            raise

    # -- setting the scene ------------------------------------------------------------------

    def agent(self, name: str, *replies: Reply) -> None:
        """Script the replies of agent ``name``: one for every call, or one per call in turn.

        A reply is what the model would return (checked against the agent's ``output``), an
        exception to raise (``TransientError("rate limited")``), or a function of the
        ``CommandContext``. The last reply answers every call after the others are used.
        """
        if name not in self._agents:
            raise NotFoundError(
                f"workflow {self.definition.name!r} declares no agent {name!r} "
                f"(it declares: {', '.join(sorted(self._agents)) or 'none'})"
            )
        if not replies:
            raise ConfigurationError(f"give agent {name!r} at least one reply")
        self._agents[name].script(replies)

    def command(self, name: str, reply: Reply = None) -> None:
        """Replace the command ``name`` with ``reply``: a result, an exception, or a function.

        The workflow's own function for it (if registered) is not called while it is replaced.
        """
        if name not in _commands_of(self.definition):
            raise NotFoundError(
                f"workflow {self.definition.name!r} runs no command {name!r} "
                f"(it runs: {', '.join(sorted(_commands_of(self.definition))) or 'none'})"
            )
        self._fakes[name] = FakeCommand(name, reply)

    def calls(self, name: str) -> list[CommandContext]:
        """The contexts a faked command or a scripted agent was called with, in order."""
        if name in self._fakes:
            return list(self._fakes[name].calls.contexts)
        if name in self._agents:
            return list(self._agents[name].calls.contexts)
        raise NotFoundError(f"{name!r} is neither a faked command nor an agent of this workflow")

    # -- acting -----------------------------------------------------------------------------

    def start(self, key: str, data: Mapping[str, JSON] | None = None, actor: str = "test") -> Item:
        """Start an item with ``data`` and run it until it settles; returns the item then."""

        async def act(runner: Runner) -> None:
            report = await runner.start(self.definition, [(key, dict(data or {}))], actor)
            if report.rejected:
                raise InvalidInputError(f"item {key!r} was refused: {report.rejected[0]}")
            if report.existing:
                raise ConflictError(f"item {key!r} exists already; start another key")

        return self._act(key, act)

    def send(
        self, key: str, event: str, data: Mapping[str, JSON] | None = None, actor: str = "test"
    ) -> Item:
        """Send an external event to the item and run it until it settles."""

        async def act(runner: Runner) -> None:
            await runner.send(self.definition.name, key, event, dict(data or {}), actor)

        return self._act(key, act)

    def decide(
        self,
        key: str,
        outcome: str,
        data: Mapping[str, JSON] | None = None,
        *,
        comment: str = "",
        actor: str = "reviewer",
        role: Role | str | None = None,
        branch: str | None = None,
    ) -> Item:
        """Decide the item's open task as a person would through the API, then run it on.

        The decision passes the desk's checks (outcome, form, due time, role): a refused one
        raises ``TaskError`` and changes nothing. ``actor`` is the token's name (the audit
        trail says ``token:ACTOR``); ``role`` is its role, by default the one the task needs.
        In a parallel state whose branches are people's tasks, ``branch`` says whose.
        """

        async def act(runner: Runner) -> None:
            task = await self._open_task(key, branch)
            principal = Principal(actor, Role(role or task.role))
            desk = TaskDesk(runner, self._registry(), self.clock)
            await desk.decide(task.id, principal, outcome, comment, dict(data or {}))

        return self._act(key, act)

    def advance(
        self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0
    ) -> None:
        """Move the clock forward, firing every timer that comes due on the way, in time order.

        The clock stops at each due time in turn (a reminder at 24h before a due time at 72h)
        and the items run until they settle there, so whatever a timer starts is itself timed
        from the moment it fired.
        """
        delta = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
        if delta < 0 or not math.isfinite(delta):
            raise ValueError(f"advance moves time forward only, not by {delta!r} seconds")
        self._run(self._advance_to(self.clock.now + delta))

    def settle(self) -> None:
        """Run the items until nothing is running, ready or due now (every action does this)."""
        self._run(self._settle())

    # -- reading ----------------------------------------------------------------------------

    def item(self, key: str) -> Item:
        """The item as stored now."""
        return self._run(self.store.get_item(self.definition.name, key))

    def history(self, key: str) -> list[HistoryRecord]:
        """The item's audit trail, oldest row first."""
        return self._run(self.store.history(self.definition.name, key))

    def path(self, key: str) -> list[str]:
        """The states the item entered, in order; staying in a state (a retry) adds nothing."""
        return states_entered(self.history(key))

    def tasks(self, key: str | None = None) -> list[Task]:
        """The open human tasks, of one item or of all."""
        return self._run(self.store.tasks(workflow=self.definition.name, key=key, limit=10_000))

    def task(self, key: str, branch: str | None = None) -> Task:
        """The item's one open task (of ``branch``); an AssertionError says what it does instead."""
        return self._run(self._open_task(key, branch))

    # -- asserting --------------------------------------------------------------------------

    def assert_path(self, key: str, expected: Sequence[str]) -> None:
        """The item entered exactly the states ``expected``, in order."""
        actual = self.path(key)
        if actual != list(expected):
            raise AssertionError(
                f"item {key!r} went {' -> '.join(actual)}\n"
                f"       expected {' -> '.join(expected)}\n{self.explain(key)}"
            )

    def assert_state(self, key: str, state: str, status: ItemStatus | str | None = None) -> None:
        """The item is in ``state`` now (and has ``status``, when given)."""
        item = self.item(key)
        if item.state != state or (status is not None and item.status != ItemStatus(status)):
            wanted = state if status is None else f"{state} ({status})"
            raise AssertionError(
                f"item {key!r} is in {item.state} ({item.status}), expected {wanted}\n"
                f"{self.explain(key)}"
            )

    def assert_context(self, key: str, expected: Mapping[str, JSON]) -> None:
        """Each dotted context path in ``expected`` (``"review.outcome"``) holds its value."""
        context = self.item(key).context
        wrong = []
        for path, value in expected.items():
            found = _lookup(context, path)
            if found != value:
                shown = "missing" if found is _MISSING else repr(found)
                wrong.append(f"  {path}: {shown}, expected {value!r}")
        if wrong:
            raise AssertionError(
                f"item {key!r} context differs:\n" + "\n".join(wrong) + f"\n{self.explain(key)}"
            )

    def assert_audit(self, key: str, **fields: JSON) -> HistoryRecord:
        """The item's audit trail has a row with these fields (``event="task_due"``); returns it.

        The fields are those of :class:`~statewise.engine.item.HistoryRecord`: ``from_state``,
        ``to_state``, ``event``, ``event_kind``, ``actor``, ``condition``, ``note``, ...
        """
        history = self.history(key)
        for record in history:
            if all(getattr(record, name, _MISSING) == value for name, value in fields.items()):
                return record
        wanted = ", ".join(f"{name}={value!r}" for name, value in fields.items())
        raise AssertionError(f"item {key!r} has no audit row with {wanted}\n{self.explain(key)}")

    def explain(self, key: str) -> str:
        """The item's audit trail as lines to read: when, the hop, the event, why."""
        item = self.item(key)
        lines = [
            f"item {key!r} is in {item.state} ({item.status}) at {self._when(self.clock.now)}:"
        ]
        for record in self.history(key):
            hop = f"{record.from_state or '(start)'} -> {record.to_state}"
            why = f" [{record.condition}]" if record.condition else ""
            error = f" error: {record.error.get('message')}" if record.error else ""
            note = f" ({record.note})" if record.note and not error else ""
            lines.append(
                f"  {self._when(record.at):>10}  {hop}  on {record.event} by {record.actor}"
                f"{why}{note}{error}"
            )
        return "\n".join(lines)

    def __enter__(self) -> WorkflowTest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store and the event loop (the ``workflow_test`` fixture does it)."""
        try:
            self._run(self.store.close())
        finally:
            self._loop.close()

    # -- inside -----------------------------------------------------------------------------

    def _when(self, at: float) -> str:
        return span(at - self.started_at)

    def _run(self, awaitable: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(awaitable)

    def _registry(self) -> CommandRegistry:
        """The workflow's commands with the fakes in their place and the scripted agents."""
        combined = CommandRegistry()
        combined.merge(self.registry, skip=frozenset(self._fakes))
        for name, fake in self._fakes.items():
            combined.register(name, fake)
        for name, agent in self._agents.items():
            combined.register(agent_command(name), agent)
        register_webhooks(combined, [self.definition], self.store, skip=frozenset(self._fakes))
        return combined

    def _runner(self) -> Runner:
        missing = sorted(_commands_of(self.definition) - self._registry().names())
        if missing:
            raise ConfigurationError(
                f"command {missing[0]!r} is neither registered nor faked; pass the module that "
                f"registers it as `commands=`, or fake it with `flow.command({missing[0]!r}, ...)`"
            )
        return Runner(self.store, [self.definition], self._registry(), clock=self.clock)

    def _act(self, key: str, act: Callable[[Runner], Awaitable[None]]) -> Item:
        async def acted() -> Item:
            await act(self._runner())
            await self._settle()
            return await self.store.get_item(self.definition.name, key)

        return self._run(acted())

    async def _settle(self) -> None:
        """Run until nothing is running, ready or due at the virtual now.

        The runner never waits for a timer (time moves only when the test moves it), and it
        fires the timers due when it starts; one that a step of this run made due at once
        (``after: 0s``) is fired by the next round.
        """
        for _ in range(_MAX_ROUNDS):
            await self._runner().run(max_wait=-math.inf)
            for agent in self._agents.values():
                if agent.unscripted:
                    message, agent.unscripted = agent.unscripted[0], []
                    raise AssertionError(message)
            due = await self.store.next_timer_due()
            if due is None or due > self.clock.now:
                await self._check_invariant()
                return
        raise AssertionError(
            f"timers kept coming due at {stamp(self.clock.now)}: after {_MAX_ROUNDS} rounds the "
            f"items still had not settled"
        )

    async def _check_invariant(self) -> None:
        """Every active item has a pending command or timer, or waits: else it is stuck."""
        stuck = await self.store.stuck_items()
        if stuck:
            raise AssertionError(
                f"{len(stuck)} active item(s) hold no pending command or timer and will never "
                f"move (a defect in statewise, please report it): {stuck[0]}"
            )

    async def _advance_to(self, target: float) -> None:
        """Stop at each due time up to ``target`` in turn, settling the items there."""
        while True:
            due = await self.store.next_timer_due()
            if due is None or due > target:
                self.clock.move_to(target)
                await self._settle()
                return
            self.clock.move_to(max(due, self.clock.now))
            await self._settle()

    async def _open_task(self, key: str, branch: str | None = None) -> Task:
        tasks = await self.store.tasks(workflow=self.definition.name, key=key)
        if branch is not None:
            tasks = [task for task in tasks if task.branch == branch]
        if len(tasks) != 1:
            item = await self.store.get_item(self.definition.name, key)
            of = "" if branch is None else f" of branch {branch!r}"
            raise AssertionError(
                f"item {key!r} has {len(tasks)} open tasks{of}, expected one; it is in "
                f"{item.state} ({item.status})"
            )
        return tasks[0]


async def _opened(db: str | Path) -> Store:
    """Open the store on the harness's own loop, which every later call runs on."""
    return open_store(db)


def states_entered(history: Sequence[HistoryRecord]) -> list[str]:
    """The states an audit trail went through, in order; staying in a state (a retry) adds nothing.

    What a test means by an item's path, shown whole when an assertion on it fails.
    """
    states: list[str] = []
    for record in history:
        if not states or states[-1] != record.to_state:
            states.append(record.to_state)
    return states


def _definition(workflow: Definition | Workflow | str | Path) -> Definition:
    if isinstance(workflow, Definition):
        return workflow
    if isinstance(workflow, Workflow):
        return workflow.build()
    return load(workflow)


def _registry(
    commands: CommandRegistry | str | Path | Sequence[str | Path] | None,
) -> CommandRegistry:
    if commands is None:
        return CommandRegistry()
    if isinstance(commands, CommandRegistry):
        return commands
    specs = [commands] if isinstance(commands, str | Path) else list(commands)
    return load_registry(str(spec) for spec in specs)


def _commands_of(definition: Definition) -> frozenset[str]:
    """The commands the workflow runs, agents (the harness scripts those) and webhooks apart."""
    commands: list[Command] = []
    for state in definition.states.values():
        if state.command is not None:
            commands.append(state.command)
        if state.parallel is not None:
            commands += [c for branch in state.parallel.branches for c in branch.commands]
            if state.parallel.map_command is not None:
                commands.append(state.parallel.map_command)
    return frozenset(c.name for c in commands if not c.built_in)


def _lookup(context: Mapping[str, JSON], path: str) -> JSON:
    found: JSON = context
    for part in path.split("."):
        if not isinstance(found, Mapping) or part not in found:
            return _MISSING
        found = found[part]
    return found
