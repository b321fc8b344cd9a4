"""The typed workflow definition: what the YAML loader and the Python builder both produce.

Everything here is a frozen dataclass so that a loaded definition can be shared by every
worker task without copying, and so that the engine can treat it as plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from statewise.conditions import Condition

# Events with a meaning fixed by the engine; every other event name is external.
DONE_EVENT = "done"
ERROR_EVENT = "error"
# The timer that expires an item's buffered events, whatever state it is in (engine.buffer).
BUFFER_TIMER = "buffer_expiry"
DEFAULT_ESCALATION = "escalated"
# A state's `agent: NAME` becomes a command of this name, which the runner registers itself.
AGENT_COMMAND_PREFIX = "agent:"


def agent_command(agent: str) -> str:
    """The command name under which an agent runs."""
    return AGENT_COMMAND_PREFIX + agent


# A state's `webhook: {to: NAME}` becomes a command of this name, registered by the runner.
WEBHOOK_COMMAND_PREFIX = "webhook:"


def webhook_command(destination: str) -> str:
    """The command name under which a webhook to ``destination`` is sent."""
    return WEBHOOK_COMMAND_PREFIX + destination


# What a delivered webhook leaves in the context, so conditions on it are checked at load.
WEBHOOK_RESULT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "integer"},
        "idempotency_key": {"type": "string"},
        "response": {},
    },
    "required": ["status", "idempotency_key", "response"],
}


class StateKind(StrEnum):
    """What a state does when an item enters it."""

    INITIAL = "initial"
    NORMAL = "normal"
    WAITING = "waiting"
    PARALLEL = "parallel"
    HUMAN = "human"
    FINAL = "final"


class ErrorKind(StrEnum):
    """How a failed command is classified; retry policies and transitions route on it.

    ``permanent`` is a failure the command raised on purpose (``PermanentError``, or any
    ``CommandError``), a business outcome that escalates when no ``on: error`` takes it;
    ``command_error`` is an exception it did not mean to raise (a TypeError, a KeyError: a
    bug), and ``invalid_output`` a result it could not make usable: those two fail the item
    as defects when no ``on: error`` takes them.
    """

    TRANSIENT = "transient"
    INVALID_OUTPUT = "invalid_output"
    PERMANENT = "permanent"
    COMMAND_ERROR = "command_error"
    # A run cut short by what the item's budget had left: never retried, always sent to the
    # budget's ``on_exceeded`` state.
    BUDGET = "budget"


class JoinKind(StrEnum):
    """When a parallel state is complete."""

    ALL = "all"
    ANY = "any"
    N_OF = "n_of"


@dataclass(frozen=True, slots=True)
class Location:
    """Where something was written, so every problem can point at its line."""

    file: str = "<definition>"
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class Adjustment:
    """What one retry of an agent changes (an entry of its ``retry: {adjust: [...]}``).

    ``model`` replaces the agent's model, ``instructions`` is appended to its instructions,
    and ``settings`` (every other key: ``temperature``, ``max_tokens``) are laid over its own.
    """

    model: str | None = None
    instructions: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)


# A retry policy's `on_timeout`: where an item goes once its attempts ended in a timeout.
ON_TIMEOUT_PREVIOUS = "previous"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failed command is tried again.

    ``adjust`` (agents only) says what attempt 2, 3, ... change: attempt ``n`` uses entry
    ``n - 2``, and the attempts past the list keep the last entry. ``on_timeout: previous``
    sends an item whose last attempt timed out back to the state it came from, which it then
    enters again (bounded by that state's ``max_visits``), instead of firing ``error``.
    """

    attempts: int = 3
    backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 60.0
    jitter: float = 0.5
    retry_on: frozenset[ErrorKind] = frozenset({ErrorKind.TRANSIENT, ErrorKind.INVALID_OUTPUT})
    timeout: float | None = 300.0
    adjust: tuple[Adjustment, ...] = ()
    on_timeout: str | None = None

    def adjustment(self, attempt: int) -> Adjustment | None:
        """What attempt number ``attempt`` (1-based) changes; None for the first attempt."""
        if attempt < 2 or not self.adjust:
            return None
        return self.adjust[min(attempt - 2, len(self.adjust) - 1)]


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class Command:
    """Work done on entering a state; its result is kept in the context under ``result``.

    ``result_schema`` is the JSON Schema its result declares (``result_schema:``): validation
    checks conditions against it, and a result that does not fit is invalid output.
    """

    name: str
    result: str
    retry: RetryPolicy = DEFAULT_RETRY
    location: Location = field(default=Location(), compare=False)
    result_schema: Mapping[str, Any] | None = field(default=None, hash=False)

    @property
    def runs_agent(self) -> bool:
        """Whether this command runs a declared agent (a state's ``agent: NAME``)."""
        return self.name.startswith(AGENT_COMMAND_PREFIX)

    @property
    def sends_webhook(self) -> bool:
        """Whether this command sends a state's webhook (a state's ``webhook:``)."""
        return self.name.startswith(WEBHOOK_COMMAND_PREFIX)

    @property
    def built_in(self) -> bool:
        """Whether the runner registers this command itself (an agent's or a webhook's)."""
        return self.runs_agent or self.sends_webhook


# The largest budget a workflow may set: past these a number is a typo, not a limit.
MAX_BUDGET_TOKENS = 10**12
MAX_BUDGET_COST = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Budget:
    """What one item may spend on model calls, and where it goes once that is spent.

    On the workflow it caps the item's total over its life; on a state that runs an agent,
    the item's spend in that state over all its visits. ``tokens`` counts input and output
    tokens; ``cost`` is USD of the calls with a known price. ``on_exceeded`` is the state the
    item is sent to instead of the next agent call (None: the workflow's escalation state).
    """

    tokens: int | None = None
    cost: float | None = None
    on_exceeded: str | None = None
    location: Location = field(default=Location(), compare=False)


@dataclass(frozen=True, slots=True)
class Transition:
    """``on`` event, if ``when`` holds (or as the ``else``), go to ``target``.

    ``after`` makes the transition a timer: it fires as event ``on`` once the item has been in
    the state that long.
    """

    target: str
    on: str = DONE_EVENT
    when: Condition | None = None
    is_else: bool = False
    after: float | None = None
    location: Location = field(default=Location(), compare=False)


@dataclass(frozen=True, slots=True)
class BranchStep:
    """One step of a parallel branch: a command (or agent) run, or a person's task.

    A task step opens ``task`` for a person when the branch reaches it; ``outcomes`` are the
    decisions they may make. Any decision completes the step: the joint decision after the
    join reads what each person chose.
    """

    name: str
    command: Command | None = None
    task: HumanTask | None = None
    outcomes: tuple[str, ...] = ()

    @property
    def result(self) -> str:
        """The context key the step's result lands under (by branch, then step)."""
        if self.task is not None:
            return self.task.result
        assert self.command is not None  # the loader and builder give every step one
        return self.command.result


@dataclass(frozen=True, slots=True)
class Branch:
    """One fixed branch of a parallel state: a command, a person's task, or a short sequence.

    A branch declared with ``command`` (or ``agent``) runs it, and ``task`` opens a task:
    either is a sequence of one step, and its result lands at ``context[result][branch]``.
    A branch declared with ``steps`` runs them in order; its result is a mapping by step
    name, ``context[result][branch][step]``, filled in as each step finishes, so a later
    step (or a reviewer) can read the earlier ones. The branch succeeds when its last step
    does and fails when any step fails.
    """

    name: str
    command: Command | None = None
    task: HumanTask | None = None
    outcomes: tuple[str, ...] = ()
    steps: tuple[BranchStep, ...] = ()
    sequence_result: str = ""

    @property
    def sequence(self) -> tuple[BranchStep, ...]:
        """The steps the branch runs, in order; a one-step branch is named after itself."""
        if self.steps:
            return self.steps
        return (BranchStep(self.name, self.command, self.task, self.outcomes),)

    @property
    def result(self) -> str:
        """The context key the branch's result lands under."""
        if self.steps:
            return self.sequence_result
        return self.sequence[0].result

    @property
    def commands(self) -> tuple[Command, ...]:
        """The commands the branch may run, in order."""
        return tuple(step.command for step in self.sequence if step.command is not None)

    @property
    def tasks(self) -> tuple[BranchStep, ...]:
        """The steps of the branch that open a person's task."""
        return tuple(step for step in self.sequence if step.task is not None)

    def task_key(self, step: str) -> str:
        """How a task of this branch is named on the task list: ``branch`` or ``branch.step``.

        Names are identifiers, so the dot cannot be part of either.
        """
        return f"{self.name}.{step}" if self.steps else self.name


@dataclass(frozen=True, slots=True)
class Parallel:
    """Fan-out of a parallel state: fixed ``branches`` or one branch per element of ``over``."""

    branches: tuple[Branch, ...] = ()
    over: Condition | None = None
    map_command: Command | None = None
    concurrency: int | None = None
    join: JoinKind = JoinKind.ALL
    n_of: int | None = None

    def branch_task(self, key: str) -> tuple[Branch, int, BranchStep] | None:
        """The branch, step index and step of the task called ``key`` (``task_key``)."""
        name = key.partition(".")[0]
        branch = next((b for b in self.branches if b.name == name), None)
        if branch is None:
            return None
        for index, found in enumerate(branch.sequence):
            if found.task is not None and branch.task_key(found.name) == key:
                return branch, index, found
        return None


class Role(StrEnum):
    """What a token may do; each role may do everything the ones before it may."""

    VIEWER = "viewer"
    REVIEWER = "reviewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in the order viewer < reviewer < operator < admin."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """Whether a holder of this role may do what ``needed`` may."""
        return self.rank >= needed.rank


class Verdict(StrEnum):
    """What a reviewer's decision says about the agent stage it reviews."""

    AGREE = "agree"
    OVERRIDE = "override"
    NEITHER = "neither"


@dataclass(frozen=True, slots=True)
class Review:
    """A human task's ``reviews:``: the agent stage a person's decision grades, and how.

    ``state`` is the reviewed state, which runs an agent. An outcome listed in ``agree``
    confirms the agent's call, one in ``override`` reverses it, any other outcome is
    ``neither`` (it says nothing about the agent, e.g. "needs more information"). ``score``
    is the context path (``fraud_check.risk``) of the score that routed the item here; it is
    read when the task is decided, so agreement can be shown by score band and a later
    replay can ask which reviews a different threshold would have saved.
    """

    state: str
    agree: tuple[str, ...] = ()
    override: tuple[str, ...] = ()
    score: str | None = None

    def verdict(self, outcome: str) -> Verdict:
        """The verdict a decision with ``outcome`` gives the reviewed agent."""
        if outcome in self.agree:
            return Verdict.AGREE
        if outcome in self.override:
            return Verdict.OVERRIDE
        return Verdict.NEITHER


@dataclass(frozen=True, slots=True)
class HumanTask:
    """The task a ``kind: human`` state opens for a person on every visit.

    The outcomes are the state's external transition events (``on: approve``): deciding the
    task with an outcome fires it, with the decision (outcome, comment, form data, who) kept
    in the context under ``result``. ``form`` is a JSON Schema the form data must satisfy, or
    the name of a pydantic model registered with ``@registry.output_model()``. ``due`` and
    ``remind`` are seconds after the task opens: at ``remind`` the task is marked reminded, at
    ``due`` it expires and the item goes to ``escalate_to`` (the workflow's escalation state
    when None). ``claim`` is how long a reviewer's claim on the task lasts. ``reviews`` says
    which agent stage the decision grades (see :class:`Review`). ``show`` names the context
    paths (``inquiry.text``) the task page shows as the task's subject, in order.
    """

    queue: str
    result: str
    role: Role = Role.REVIEWER
    title: str = ""
    form: Mapping[str, Any] | str | None = field(default=None, hash=False)
    due: float | None = None
    remind: float | None = None
    escalate_to: str | None = None
    claim: float = 1800.0
    reviews: Review | None = None
    show: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An external event declared under ``events:``: what it means and what data it carries.

    ``data`` is a JSON Schema of an object; an event whose data does not fit it is refused
    before any condition reads it, so bad data can never move (or escalate) an item.
    ``buffer_ttl`` (seconds) makes the event wait, for that long at most, on an item whose
    state does not accept it yet, instead of being refused (``engine.buffer``). ``label`` is
    the short text of the button deciding a task with it; ``style: danger`` marks it as a
    destructive outcome (see ``actions.tasks.outcome_choices``).
    """

    name: str
    description: str = ""
    data: Mapping[str, Any] | None = field(default=None, hash=False)
    buffer_ttl: float | None = None
    location: Location = field(default=Location(), compare=False)
    label: str = ""
    style: str = ""


DEFAULT_ALERT_WINDOW = 900.0
"""Seconds a ``failure_rate`` or ``on_enter`` rule looks back over, unless it sets ``window``."""
DEFAULT_MIN_ATTEMPTS = 10
"""Attempts a ``failure_rate`` rule needs in its window before a rate means anything."""


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One entry of ``alerts:``: what is watched in a state, and who is told when it fires.

    Exactly one kind per rule: a backlog (``max_age`` and/or ``max_items``), a
    ``failure_rate`` (failed attempts over attempts in ``window``, once ``min_attempts`` were
    made), ``stuck`` (an item breaking the store's invariant; ``state`` empty: any state) or
    ``on_enter`` (an item entered ``state`` within ``window``: an escalation reached someone).
    ``notify`` names the workflow's ``destinations`` told (None: all of them).
    """

    state: str = ""
    max_age: float | None = None
    max_items: int | None = None
    failure_rate: float | None = None
    window: float | None = None
    min_attempts: int | None = None
    stuck: bool = False
    on_enter: bool = False
    notify: tuple[str, ...] | None = None
    location: Location = field(default=Location(), compare=False)

    @property
    def lookback(self) -> float:
        """The window a rate or entry rule reads the audit trail over, in seconds."""
        return DEFAULT_ALERT_WINDOW if self.window is None else self.window


class Preset(StrEnum):
    """The body a destination receives: signed statewise JSON, or a chat message."""

    JSON = "json"
    CHAT = "chat"


@dataclass(frozen=True, slots=True)
class Destination:
    """A webhook alerts are delivered to, declared under ``destinations:``.

    The URL is given as ``url`` or read from the environment variable ``url_env`` (a chat
    webhook's URL is itself a secret); the HMAC secret only ever through ``secret_env``.
    """

    name: str
    url: str | None = None
    url_env: str | None = None
    secret_env: str | None = None
    preset: Preset = Preset.JSON
    location: Location = field(default=Location(), compare=False)


@dataclass(frozen=True, slots=True)
class Webhook:
    """A state's ``webhook:``: POST the value at context path ``payload`` to destination ``to``.

    It runs as the state's command (``webhook_command(to)``), through the durable outbox like
    any other, so it is leased, fenced and retried by the state's ``retry:``; the receiver
    de-duplicates retries by the ``Idempotency-Key`` header, the same for every attempt of one
    visit (``statewise.worker.webhooks``).
    """

    to: str
    payload: str
    location: Location = field(default=Location(), compare=False)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a finished item keeps its record: seconds after it finished, None for ever.

    After ``outputs`` its steps' outputs, their large payloads and its agents' conversations
    are dropped; after ``history`` its audit rows too, leaving one row that says when and how
    many. The item itself (its key, final state and context) is never dropped, so starting
    the same key again stays a no-op. Finished means done or cancelled: a failed item waits
    for an operator and keeps everything.
    """

    outputs: float | None = None
    history: float | None = None
    location: Location = field(default=Location(), compare=False)


@dataclass(frozen=True, slots=True)
class State:
    """A stage of the process and its ordered transitions (first match wins)."""

    name: str
    kind: StateKind = StateKind.NORMAL
    command: Command | None = None
    transitions: tuple[Transition, ...] = ()
    max_visits: int | None = None
    on_exhausted: str | None = None
    parallel: Parallel | None = None
    task: HumanTask | None = None
    description: str = ""
    location: Location = field(default=Location(), compare=False)
    budget: Budget | None = None
    webhook: Webhook | None = None

    @property
    def outcomes(self) -> tuple[str, ...]:
        """The outcomes a person may decide a human task with: the external events here."""
        return tuple(
            dict.fromkeys(
                t.on
                for t in self.transitions
                if t.after is None and t.on not in (DONE_EVENT, ERROR_EVENT)
            )
        )

    @property
    def is_final(self) -> bool:
        """Whether an item here is done for good."""
        return self.kind is StateKind.FINAL

    @property
    def waits(self) -> bool:
        """Whether an item here waits for an external event, a person or a timer."""
        return self.kind in (StateKind.WAITING, StateKind.HUMAN)


@dataclass(frozen=True, slots=True)
class KnowledgeDoc:
    """A document an agent may answer from.

    The local model retrieves passages from it; hosted models get it quoted in their
    instructions (or wherever a template places ``knowledge``).
    """

    title: str
    text: str


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """An AI agent declared by name: which model, what it is told, what it must return.

    ``instructions`` and ``input`` are Jinja2 templates over the item's context: the first is
    the system prompt, the second the user message (default: the context as JSON). ``output``
    is the structured reply: a JSON Schema it must satisfy inline (a mapping), or the name of
    a pydantic model registered with ``@registry.output_model()`` (a string, resolved when the
    agents are registered), or None for free text. ``examples`` give the local model reference
    texts per output field and value (``{"category": {"billing": [...]}}``); ``knowledge`` is
    what it may retrieve answers from.
    """

    name: str
    instructions: str
    model: str | None = None
    input: str | None = None
    output: Mapping[str, Any] | str | None = field(default=None, hash=False)
    tools: tuple[str, ...] = ()
    conversation: bool = False
    max_tool_rounds: int = 3
    retry: RetryPolicy = DEFAULT_RETRY
    examples: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict, hash=False)
    knowledge: tuple[KnowledgeDoc, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)
    location: Location = field(default=Location(), compare=False)


@dataclass(frozen=True, slots=True)
class Definition:
    """A named, versioned workflow: the single table the engine, diagrams and validation share."""

    name: str
    version: int
    states: dict[str, State]
    initial: str
    escalation: str = DEFAULT_ESCALATION
    description: str = ""
    source: str = field(default="", compare=False, repr=False)
    location: Location = field(default=Location(), compare=False)
    agents: dict[str, AgentSpec] = field(default_factory=dict)
    alerts: tuple[AlertRule, ...] = ()
    destinations: dict[str, Destination] = field(default_factory=dict)
    # The declared external events; None when the workflow declares none (nothing to check).
    events: dict[str, EventSpec] | None = None
    retention: Retention | None = None
    budget: Budget | None = None
    # Where items of earlier versions go when migrated onto this one: old state to new state
    # (a state of the same name needs no entry).
    migrations: dict[str, str] = field(default_factory=dict)
    # The context keys an item's start data must hold (``input:``); None: not declared.
    inputs: tuple[str, ...] | None = None

    @property
    def ref(self) -> str:
        """``name@version``, the way items and history refer to a definition."""
        return f"{self.name}@{self.version}"

    def state(self, name: str) -> State:
        """Look up a state that validation guarantees exists."""
        return self.states[name]

    def external_events(self) -> frozenset[str]:
        """Every event name some transition accepts that is not produced by the engine itself."""
        return frozenset(
            t.on
            for s in self.states.values()
            for t in s.transitions
            if t.after is None and t.on not in (DONE_EVENT, ERROR_EVENT)
        )
