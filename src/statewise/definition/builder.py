r"""Define workflows in Python, and write any definition back out as YAML.

The builder assembles the same document a YAML file holds and hands it to the loader's
``definition_from_document``, so both routes share one set of checks and one conversion.
Each part remembers the line of Python that declared it, which is where problems point.

::

    wf = Workflow("orders", escalation="manual_review")
    wf.initial("received", command="validate_order").to("fraud")
    wf.state("fraud", command=cmd("fraud_score", result="fraud", retry=Retry(attempts=5))) \
        .to("manual_review", when="fraud.risk > 0.8").otherwise("done")
    wf.waiting("manual_review").on("approve", "done").after("48h", "done")
    wf.final("done")
    definition = wf.build()

Agents are declared once and run by name, as a state's command or as a parallel branch::

    wf.agent("classifier", instructions="Classify {{ item.key }}.", output=schema)
    wf.initial("classify", agent="classifier").to("billing", when="classify.category == 'x'")
    wf.parallel("translate", branches={"fr": use_agent("translator", result="fr")})
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, Required, Self, TypedDict, Unpack

from statewise.definition.agent_rules import agent_of
from statewise.definition.durations import format_duration, parse_duration, timer_event
from statewise.definition.escalation import added_by_statewise
from statewise.definition.loader import definition_from_document
from statewise.definition.model import (
    DEFAULT_ESCALATION,
    DEFAULT_RETRY,
    DONE_EVENT,
    ERROR_EVENT,
    Adjustment,
    AgentSpec,
    AlertRule,
    Branch,
    BranchStep,
    Budget,
    Command,
    Definition,
    Destination,
    ErrorKind,
    EventSpec,
    HumanTask,
    JoinKind,
    KnowledgeDoc,
    Location,
    Parallel,
    Retention,
    RetryPolicy,
    Review,
    State,
    StateKind,
    Transition,
    Webhook,
)
from statewise.definition.schema import Document, Locations, Path, dump_document
from statewise.errors import Problem

_DURATION_FIELDS = ("backoff", "max_backoff", "timeout")


class EventData(TypedDict, total=False):
    """A declared event in its long form: its meaning, data schema, buffer and button.

    ``buffer`` says how long it is kept when it arrives early: ``{"ttl": "24h"}``; ``label``
    and ``style`` (``"danger"``) are how a task's outcome button shows it.
    """

    description: str
    data: Mapping[str, Any]
    buffer: Mapping[str, str | float]
    label: str
    style: str


class Retry(TypedDict, total=False):
    """Retry settings of a command; any key left out keeps the RetryPolicy default."""

    attempts: int
    backoff: str | float
    multiplier: float
    max_backoff: str | float
    jitter: float
    retry_on: Sequence[ErrorKind]
    timeout: str | float | None
    # An agent's per-retry changes: ``[{"temperature": 0.2}, {"model": "openai:gpt-4.1"}]``.
    adjust: Sequence[Mapping[str, Any]]
    # ``"previous"``: a last attempt that timed out sends the item back where it came from.
    on_timeout: str


class Reviews(TypedDict, total=False):
    """A task's ``reviews``: the agent state its decision grades and how outcomes map.

    ``agree`` lists the outcomes that confirm the agent's call, ``override`` those that
    reverse it; ``score`` is the context path of the score that routed the item to review.
    """

    state: Required[str]
    agree: Sequence[str]
    override: Sequence[str]
    score: str


class RetentionPolicy(TypedDict, total=False):
    """How long finished items keep their outputs and their history (``30d``, ``365d``)."""

    outputs: str | float
    history: str | float


class BudgetLimits(TypedDict, total=False):
    """What an item may spend on models: ``tokens``, ``cost`` (USD), and where it goes then.

    Without ``on_exceeded`` a spent item goes to the workflow's escalation state.
    """

    tokens: int
    cost: float
    on_exceeded: str


class Alert(TypedDict, total=False):
    """An alert rule; one kind each (see README "Alerts").

    A backlog (``max_age`` and/or ``max_items``), a ``failure_rate`` over ``window`` with
    ``min_attempts``, ``stuck`` items (``state`` optional) or ``on_enter`` (an item entered
    ``state`` within ``window``). ``notify`` names destinations (default: all).
    """

    state: str
    max_age: str | float
    max_items: int
    failure_rate: float
    window: str | float
    min_attempts: int
    stuck: bool
    on_enter: bool
    notify: list[str]


class AlertDestination(TypedDict, total=False):
    """A webhook: ``url`` or ``url_env``, ``secret_env`` (HMAC), ``preset`` json or chat."""

    url: str
    url_env: str
    secret_env: str
    preset: str


class StateOptions(TypedDict, total=False):
    """Settings any state may have besides its kind, command and transitions.

    ``budget`` caps what an item may spend in a state that runs an agent, over all visits.
    """

    description: str
    max_visits: int
    on_exhausted: str
    budget: BudgetLimits


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command as the builder takes it; ``result`` defaults to the state's name.

    With ``agent`` set, ``name`` is a declared agent that runs as the command.
    """

    name: str
    result: str | None = None
    retry: Retry | None = None
    agent: bool = False
    result_schema: Mapping[str, Any] | None = None


def cmd(
    name: str,
    *,
    result: str | None = None,
    retry: Retry | None = None,
    result_schema: Mapping[str, Any] | None = None,
) -> CommandSpec:
    """A command with its result key, retry policy or ``result_schema`` (a JSON Schema)."""
    return CommandSpec(name, result, retry, result_schema=result_schema)


def use_agent(name: str, *, result: str | None = None, retry: Retry | None = None) -> CommandSpec:
    """Run the agent ``name`` as a command (e.g. a parallel branch); ``retry`` overrides its own."""
    return CommandSpec(name, result, retry, agent=True)


CommandLike = str | CommandSpec
AgentLike = str | CommandSpec


class StateBuilder:
    """Adds transitions to one state; every method returns the builder to allow chaining."""

    def __init__(self, locations: Locations, name: str, data: dict[str, Any]) -> None:
        self._locations = locations
        self._name = name
        self._data = data

    def to(self, target: str, *, when: str | None = None, on: str | None = None) -> Self:
        """Go to ``target`` on ``on`` (default ``done``), if the CEL condition ``when`` holds."""
        return self._add({"on": on, "when": when, "to": target})

    def otherwise(self, target: str, *, on: str | None = None) -> Self:
        """Go to ``target`` when no earlier transition for the same event matched."""
        return self._add({"on": on, "else": True, "to": target})

    def on(self, event: str, target: str, *, when: str | None = None) -> Self:
        """Go to ``target`` when the external ``event`` arrives (and ``when`` holds)."""
        return self._add({"on": event, "when": when, "to": target})

    def on_error(self, target: str) -> Self:
        """Go to ``target`` when the state's command fails after its retries."""
        return self._add({"on": ERROR_EVENT, "to": target})

    def after(self, duration: str | float, target: str, *, on: str | None = None) -> Self:
        """Go to ``target`` once an item has been here for ``duration`` (``48h``, ``90``)."""
        return self._add({"on": on, "after": duration, "to": target})

    def _add(self, transition: dict[str, Any]) -> Self:
        transitions: list[dict[str, Any]] = self._data.setdefault("transitions", [])
        path = ("states", self._name, "transitions", len(transitions))
        self._locations.entries[path] = _call_site()
        transitions.append({k: v for k, v in transition.items() if v is not None})
        return self


class Workflow:
    """A workflow being defined in Python; ``build`` checks it exactly like a YAML file."""

    def __init__(
        self,
        name: str,
        *,
        version: int = 1,
        description: str = "",
        escalation: str | None = None,
        events: Mapping[str, str | EventData] | None = None,
        inputs: Sequence[str] | None = None,
        retention: RetentionPolicy | None = None,
        budget: BudgetLimits | None = None,
        alerts: Sequence[Alert] = (),
        destinations: Mapping[str, AlertDestination] | None = None,
    ) -> None:
        """Start a workflow.

        Args:
            name: The workflow's name.
            version: Its version; items keep running on the version they started with.
            description: Free text for people.
            escalation: Where business escalations go (retries spent, a command's refusal,
                a visit budget used up, an overdue task); by default a human state
                `escalated` with a task in queue `escalations` is added.
            events: Declared external events, name -> description or
                ``{"description": ..., "data": JSON Schema, "buffer": {"ttl": "24h"}}``;
                enables event checks, and an event whose data does not fit its ``data``
                schema is refused; one with ``buffer`` is kept when it arrives early.
            inputs: Context keys the start data provides; enables the condition variable check.
            retention: How long finished items keep their outputs and history,
                ``{"outputs": "30d", "history": "365d"}``; by default for ever.
            budget: What each item may spend on model calls over its life
                (``{"tokens": 20000, "cost": 0.5, "on_exceeded": "review"}``).
            alerts: Bottleneck alerts per state, e.g.
                ``[{"state": "human_review", "max_age": "4h"}, {"state": "enrich",
                "max_items": 500}]``.
            destinations: Where alerts are delivered, name -> ``{"url_env": "LEAD_HOOK",
                "preset": "chat"}`` or ``{"url": ..., "secret_env": "HOOK_SECRET"}``.

        """
        self._locations = Locations(root=_call_site())
        self._problems: list[Problem] = []
        self._states: dict[str, Any] = {}
        self._agents: dict[str, Any] = {}
        self._data: dict[str, Any] = {"workflow": name, "version": version}
        optional = {
            "description": description or None,
            "escalation": escalation,
            "input": None if inputs is None else list(inputs),
            "events": None if events is None else _plain(events),
            "retention": None if retention is None else dict(retention),
            "budget": None if budget is None else dict(budget),
            "alerts": [dict(alert) for alert in alerts] or None,
            "destinations": None if destinations is None else _plain(destinations),
        }
        self._data.update({k: v for k, v in optional.items() if v is not None})
        self._data["states"] = self._states

    def agent(
        self,
        name: str,
        *,
        instructions: str,
        model: str | None = None,
        input: str | None = None,
        output: Mapping[str, Any] | str | None = None,
        tools: Sequence[str] = (),
        conversation: bool = False,
        max_tool_rounds: int = 3,
        retry: Retry | None = None,
        examples: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        knowledge: Sequence[KnowledgeDoc | Mapping[str, str]] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> str:
        """Declare an AI agent that states run with ``agent=name``; returns ``name``.

        Args:
            name: How states refer to the agent.
            instructions: The system prompt, a Jinja2 template over the item's context.
            model: ``openai:gpt-4.1-mini``, ``anthropic:...``, ``ollama:...`` or ``local``;
                ``None`` decides at run time.
            input: The user message, a Jinja2 template (default: the context as JSON).
            output: The structured reply: its JSON Schema (an object with ``properties``),
                or the name of a pydantic model registered with
                ``@registry.output_model()``.
            tools: Names of registered tools the agent may call.
            conversation: Keep one conversation per item across visits.
            max_tool_rounds: How many rounds of tool calls one run may make.
            retry: Retry policy of the agent's runs; a state may override it.
            examples: Reference texts per output field and value, for the local model.
            knowledge: Documents (``KnowledgeDoc`` or ``{title, text}``) to answer from.
            settings: Model settings such as ``temperature``.

        """
        where = _call_site()
        path: Path = ("agents", name)
        if name in self._agents:
            first = self._locations.entries[path].line
            message = f"agent `{name}` is defined twice (first at line {first}); rename one"
            self._problems.append(Problem(message, where.file, where.line, where.column))
            return name
        data = {
            "model": model,
            "instructions": instructions,
            "input": input,
            "output": _plain(output),
            "tools": list(tools) or None,
            "conversation": "per_item" if conversation else None,
            "max_tool_rounds": None if max_tool_rounds == _TOOL_ROUNDS else max_tool_rounds,
            "retry": _plain(retry),
            "examples": None if examples is None else _examples_data(examples),
            "knowledge": None if knowledge is None else [_knowledge_data(d) for d in knowledge],
            "settings": None if settings is None else _plain(settings),
        }
        if not self._agents:  # keep `agents:` above `states:` in the document
            del self._data["states"]
            self._data["agents"] = self._agents
            self._data["states"] = self._states
        self._agents[name] = {k: v for k, v in data.items() if v is not None}
        self._locations.entries[path] = where
        return name

    def initial(
        self,
        name: str,
        *,
        command: CommandLike | None = None,
        agent: AgentLike | None = None,
        **options: Unpack[StateOptions],
    ) -> StateBuilder:
        """The state every item starts in; it runs ``command`` or the agent ``agent``."""
        body = {"command": command, "agent": _agent_use(agent)}
        return self._state(name, StateKind.INITIAL, body, options)

    def state(
        self,
        name: str,
        *,
        command: CommandLike | None = None,
        agent: AgentLike | None = None,
        **options: Unpack[StateOptions],
    ) -> StateBuilder:
        """A normal state, which runs ``command`` or the agent ``agent`` and then moves on.

        ``agent`` is a declared agent's name, or ``cmd(name, result=..., retry=...)`` for
        another result key or retry policy.
        """
        body = {"command": command, "agent": _agent_use(agent)}
        return self._state(name, StateKind.NORMAL, body, options)

    def webhook(
        self,
        name: str,
        *,
        to: str,
        payload: str,
        result: str | None = None,
        retry: Retry | None = None,
        **options: Unpack[StateOptions],
    ) -> StateBuilder:
        """A state that POSTs the context value at ``payload`` to destination ``to``.

        The webhook is signed and carries an idempotency key; ``retry`` is its retry policy,
        and the receiver's answer lands in the context under ``result`` (default: ``name``).
        """
        hook = {"to": to, "payload": payload, "result": result}
        body = {"webhook": {k: v for k, v in hook.items() if v is not None}, "retry": retry}
        return self._state(name, StateKind.NORMAL, body, options)

    def waiting(self, name: str, **options: Unpack[StateOptions]) -> StateBuilder:
        """A state where items wait for an external event or a timer."""
        return self._state(name, StateKind.WAITING, {}, options)

    def human(
        self,
        name: str,
        *,
        queue: str,
        role: str | None = None,
        title: str | None = None,
        form: Mapping[str, Any] | str | None = None,
        due: str | float | None = None,
        remind: str | float | None = None,
        escalate_to: str | None = None,
        claim: str | float | None = None,
        result: str | None = None,
        reviews: Reviews | None = None,
        show: Sequence[str] | None = None,
        **options: Unpack[StateOptions],
    ) -> StateBuilder:
        """A state where a person decides a task; its outcomes are the ``on(...)`` events.

        Args:
            name: The state's name; the decision lands in the context under it (or ``result``).
            queue: The queue reviewers see the task in.
            role: Who may decide it: ``reviewer`` (default), ``operator`` or ``admin``.
            title: What the task asks, for the inbox.
            form: The JSON Schema the decision's form data must fit, or a registered model's name.
            due: When the task expires (``72h``) and the item goes to ``escalate_to``.
            remind: When the task is marked reminded, before ``due``.
            escalate_to: Where an expired task sends the item (default: the escalation state).
            claim: How long a reviewer's claim holds (default 30m).
            result: The context key of the decision, if not the state's name.
            reviews: The agent state the decision grades, e.g.
                ``{"state": "fraud_check", "agree": ["reject"], "override": ["approve"]}``.
            show: Context paths the task page shows as the task's subject
                (``["inquiry.text", "customer.tier"]``).

        """
        task = {
            "queue": queue,
            "role": role,
            "title": title,
            "form": _plain(form),
            "due": due,
            "remind": remind,
            "escalate_to": escalate_to,
            "result": result,
            "claim": claim,
            "reviews": _plain(reviews),
            "show": None if show is None else list(show),
        }
        body = {"task": {k: v for k, v in task.items() if v is not None}}
        return self._state(name, StateKind.HUMAN, body, options)

    def final(self, name: str, **options: Unpack[StateOptions]) -> StateBuilder:
        """A state where items are done for good."""
        return self._state(name, StateKind.FINAL, {}, options)

    def parallel(
        self,
        name: str,
        *,
        over: str | None = None,
        command: CommandLike | None = None,
        branches: Mapping[str, CommandLike | Mapping[str, Any]] | None = None,
        concurrency: int | None = None,
        join: Literal["all", "any"] | int = "all",
        **options: Unpack[StateOptions],
    ) -> StateBuilder:
        """A fan-out: ``command`` once per element of the list ``over``, or fixed ``branches``.

        A branch is a command, or as YAML writes it, a person's task
        (``{"task": {"queue": "legal"}, "outcomes": ["approve", "reject"]}``) or a sequence
        (``{"steps": [{"step": "scan", "command": "scan"}, ...]}``). ``join`` is ``all``,
        ``any`` or the number of branches that must succeed.
        """
        fan_out: dict[str, Any] = {}
        if over is not None or command is not None:
            written = (("over", over), ("command", command))
            fan_out["map"] = {key: value for key, value in written if value is not None}
        if branches is not None:
            fan_out["branches"] = dict(branches)
        fan_out["concurrency"] = concurrency
        fan_out["join"] = None if join == "all" else _join_data(join)
        return self._state(name, StateKind.PARALLEL, fan_out, options)

    def _state(
        self, name: str, kind: StateKind, body: dict[str, Any], options: StateOptions
    ) -> StateBuilder:
        where = _call_site()
        data = {
            "kind": None if kind is StateKind.NORMAL else str(kind),
            "description": options.get("description"),
            **_plain(body),
            "max_visits": options.get("max_visits"),
            "on_exhausted": options.get("on_exhausted"),
            "budget": _plain(options.get("budget")),
        }
        data = {k: v for k, v in data.items() if v is not None}
        path: Path = ("states", name)
        if name in self._states:
            first = self._locations.entries[path].line
            message = f"state `{name}` is defined twice (first at line {first}); rename one"
            self._problems.append(Problem(message, where.file, where.line, where.column))
            return StateBuilder(Locations(), name, data)
        self._states[name] = data
        self._locations.entries[path] = where
        return StateBuilder(self._locations, name, data)

    def _document(self) -> Document:
        """The workflow as the plain data a YAML file would hold, with declaration sites."""
        return Document(
            self._data, self._locations, source=self.to_yaml(), problems=list(self._problems)
        )

    def build(self, *, commands: frozenset[str] | None = None) -> Definition:
        """Check the workflow and return its definition.

        Raises:
            DefinitionError: With every problem, located at the Python line that caused it.

        """
        return definition_from_document(self._document(), commands=commands)

    def to_yaml(self) -> str:
        """The workflow as a YAML file that ``loads`` reads back to an equal definition."""
        return dump_document(self._data)


def _call_site() -> Location:
    """The first caller outside this module, so problems point at the user's own line."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return Location(frame.f_code.co_filename, frame.f_lineno, 0)


_TOOL_ROUNDS = AgentSpec(name="", instructions="").max_tool_rounds


def _agent_use(agent: AgentLike | None) -> str | dict[str, Any] | None:
    """A state's ``agent:`` as the YAML document spells it."""
    if not isinstance(agent, CommandSpec):
        return agent
    data = {"name": agent.name, "result": agent.result, "retry": _plain(agent.retry)}
    return {k: v for k, v in data.items() if v is not None}


def _examples_data(
    examples: Mapping[str, Mapping[str, Sequence[str]]],
) -> dict[str, dict[str, list[str]]]:
    return {
        field: {
            value: [texts] if isinstance(texts, str) else list(texts)
            for value, texts in values.items()
        }
        for field, values in examples.items()
    }


def _knowledge_data(doc: KnowledgeDoc | Mapping[str, str]) -> dict[str, str]:
    if isinstance(doc, KnowledgeDoc):
        return {"title": doc.title, "text": doc.text}
    return dict(doc)


def _join_data(join: str | int) -> str | dict[str, int]:
    return {"n_of": join} if isinstance(join, int) else join


def _plain(value: Any) -> Any:
    """Commands and enums as the YAML document spells them."""
    if isinstance(value, CommandSpec):
        key = "agent" if value.agent else "name"
        data = {key: value.name, "result": value.result, "retry": _plain(value.retry)}
        data["result_schema"] = _plain(value.result_schema)
        return {k: v for k, v in data.items() if v is not None}
    if isinstance(value, ErrorKind):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_yaml(definition: Definition, *, inputs: Sequence[str] | None = None) -> str:
    """YAML for any definition that ``loads`` reads back to an equal definition.

    ``inputs`` are written as the file's declaration (default: the definition's own). The
    escalation states statewise added itself are left out, as they will be added again.
    """
    data: dict[str, Any] = {"workflow": definition.name, "version": definition.version}
    if definition.description:
        data["description"] = definition.description
    if definition.escalation != DEFAULT_ESCALATION:
        data["escalation"] = definition.escalation
    declared = definition.inputs if inputs is None else inputs
    if declared is not None:
        data["input"] = list(declared)
    if definition.events is not None:
        data["events"] = {name: _event_data(e) for name, e in definition.events.items()}
    if definition.retention is not None:
        data["retention"] = _retention_data(definition.retention)
    if definition.budget is not None:
        data["budget"] = _budget_data(definition.budget)
    if definition.alerts:
        data["alerts"] = [_alert_data(alert) for alert in definition.alerts]
    if definition.destinations:
        data["destinations"] = {
            name: _destination_data(d) for name, d in definition.destinations.items()
        }
    if definition.agents:
        data["agents"] = {name: _agent_data(a) for name, a in definition.agents.items()}
    if definition.migrations:
        data["migrations"] = dict(definition.migrations)
    data["states"] = {
        state.name: _state_data(state, definition.agents)
        for state in definition.states.values()
        if not added_by_statewise(state)
    }
    return dump_document(data)


def _event_data(event: EventSpec) -> str | dict[str, Any]:
    """An event in its short form (its description) unless it declares more than that."""
    if event.data is None and event.buffer_ttl is None and not event.label and not event.style:
        return event.description
    data: dict[str, Any] = {"description": event.description} if event.description else {}
    if event.label:
        data["label"] = event.label
    if event.style:
        data["style"] = event.style
    if event.data is not None:
        data["data"] = _plain(event.data)
    if event.buffer_ttl is not None:
        data["buffer"] = {"ttl": format_duration(event.buffer_ttl)}
    return data


def _retention_data(retention: Retention) -> dict[str, str]:
    ages = {"outputs": retention.outputs, "history": retention.history}
    return {name: format_duration(age) for name, age in ages.items() if age is not None}


def _alert_data(alert: AlertRule) -> dict[str, Any]:
    data: dict[str, Any] = {"state": alert.state} if alert.state else {}
    durations = {"max_age": alert.max_age, "window": alert.window}
    numbers = {
        "max_items": alert.max_items,
        "failure_rate": alert.failure_rate,
        "min_attempts": alert.min_attempts,
    }
    data.update({k: format_duration(v) for k, v in durations.items() if v is not None})
    data.update({k: v for k, v in numbers.items() if v is not None})
    data.update({k: True for k, v in (("stuck", alert.stuck), ("on_enter", alert.on_enter)) if v})
    if alert.notify is not None:
        data["notify"] = list(alert.notify)
    return data


def _destination_data(destination: Destination) -> dict[str, Any]:
    keys = {
        "url": destination.url,
        "url_env": destination.url_env,
        "secret_env": destination.secret_env,
    }
    return {**{k: v for k, v in keys.items() if v is not None}, "preset": destination.preset.value}


def _agent_data(agent: AgentSpec) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if agent.model is not None:
        data["model"] = agent.model
    data["instructions"] = agent.instructions
    if agent.input is not None:
        data["input"] = agent.input
    if agent.output is not None:
        data["output"] = _plain(agent.output)
    if agent.tools:
        data["tools"] = list(agent.tools)
    if agent.conversation:
        data["conversation"] = "per_item"
    if agent.max_tool_rounds != _TOOL_ROUNDS:
        data["max_tool_rounds"] = agent.max_tool_rounds
    if agent.retry != DEFAULT_RETRY:
        data["retry"] = _retry_data(agent.retry)
    if agent.examples:
        data["examples"] = _examples_data(agent.examples)
    if agent.knowledge:
        data["knowledge"] = [_knowledge_data(doc) for doc in agent.knowledge]
    if agent.settings:
        data["settings"] = _plain(agent.settings)
    return data


def _state_data(state: State, agents: Mapping[str, AgentSpec]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if state.kind is not StateKind.NORMAL:
        data["kind"] = str(state.kind)
    if state.description:
        data["description"] = state.description
    if state.webhook is not None and state.command is not None:
        data.update(_webhook_data(state.webhook, state.command, state.name))
    elif state.command is not None:
        key = "command" if agent_of(state.command) is None else "agent"
        data[key] = _command_data(state.command, state.name, agents, own=True)
    if state.parallel is not None:
        data.update(_parallel_data(state.parallel, state.name, agents))
    if state.task is not None:
        data["task"] = _task_data(state.task, state.name)
    if state.max_visits is not None:
        data["max_visits"] = state.max_visits
    if state.on_exhausted is not None:
        data["on_exhausted"] = state.on_exhausted
    if state.budget is not None:
        data["budget"] = _budget_data(state.budget)
    if state.transitions:
        data["transitions"] = [_transition_data(t) for t in state.transitions]
    return data


_TASK_DEFAULTS = HumanTask(queue="", result="")


def _task_data(task: HumanTask, state: str) -> dict[str, Any]:
    """A human task as YAML spells it: the settings that differ from the defaults."""
    data: dict[str, Any] = {"queue": task.queue}
    if task.role is not _TASK_DEFAULTS.role:
        data["role"] = task.role.value
    if task.title:
        data["title"] = task.title
    if task.form is not None:
        data["form"] = _plain(task.form)
    for key, seconds in (("remind", task.remind), ("due", task.due)):
        if seconds is not None:
            data[key] = format_duration(seconds)
    if task.escalate_to is not None:
        data["escalate_to"] = task.escalate_to
    if task.result != state:
        data["result"] = task.result
    if task.claim != _TASK_DEFAULTS.claim:
        data["claim"] = format_duration(task.claim)
    if task.reviews is not None:
        data["reviews"] = _review_data(task.reviews)
    if task.show:
        data["show"] = list(task.show)
    return data


def _review_data(review: Review) -> dict[str, Any]:
    written = {
        "state": review.state,
        "agree": list(review.agree) or None,
        "override": list(review.override) or None,
        "score": review.score,
    }
    return {k: v for k, v in written.items() if v is not None}


def _budget_data(budget: Budget) -> dict[str, Any]:
    """A budget's limits and target as YAML spells them, the unset ones left out."""
    written = {"tokens": budget.tokens, "cost": budget.cost, "on_exceeded": budget.on_exceeded}
    return {key: value for key, value in written.items() if value is not None}


def _retry_data(policy: RetryPolicy) -> dict[str, Any]:
    """The settings of ``policy`` that differ from the default, as YAML spells them."""
    retry: dict[str, Any] = {}
    for spec in fields(policy):
        value = getattr(policy, spec.name)
        if value == getattr(DEFAULT_RETRY, spec.name):
            continue
        if spec.name in _DURATION_FIELDS and value is not None:
            value = format_duration(value)
        elif spec.name == "retry_on":
            value = sorted(str(kind) for kind in value)
        elif spec.name == "adjust":
            value = [_adjustment_data(entry) for entry in value]
        retry[spec.name] = value
    return retry


def _adjustment_data(adjustment: Adjustment) -> dict[str, Any]:
    """One ``adjust`` entry as YAML spells it: the model, its settings, then instructions."""
    data: dict[str, Any] = {} if adjustment.model is None else {"model": adjustment.model}
    data.update(_plain(adjustment.settings))
    if adjustment.instructions is not None:
        data["instructions"] = adjustment.instructions
    return data


def _webhook_data(webhook: Webhook, command: Command, state: str) -> dict[str, Any]:
    """A state's ``webhook:``, and its ``retry:`` when that is not the default."""
    hook = {"to": webhook.to, "payload": webhook.payload}
    if command.result != state:
        hook["result"] = command.result
    data: dict[str, Any] = {"webhook": hook}
    if command.retry != DEFAULT_RETRY:
        data["retry"] = _retry_data(command.retry)
    return data


def _command_data(
    command: Command, default_result: str, agents: Mapping[str, AgentSpec], *, own: bool = False
) -> str | dict[str, Any]:
    """A command in its shortest form; ``own`` is a state's own command (``agent: NAME``).

    A command that runs an agent without a retry of its own inherits the agent's, so its
    retry is written only when it differs from that, even when it is the default.
    """
    agent = agent_of(command)
    spec = None if agent is None else agents.get(agent)
    inherited = DEFAULT_RETRY if spec is None else spec.retry
    retry = _retry_data(command.retry) if command.retry != inherited else None
    plain = retry is None and command.result_schema is None
    if command.result == default_result and plain and (agent is None or own):
        return command.name if agent is None else agent
    if agent is None:
        data: dict[str, Any] = {"name": command.name}
    else:
        data = {"name" if own else "agent": agent}
    if command.result != default_result:
        data["result"] = command.result
    if retry is not None:
        data["retry"] = retry
    if command.result_schema is not None:
        data["result_schema"] = _plain(command.result_schema)
    return data


def _branch_data(
    branch: Branch, state: str, agents: Mapping[str, AgentSpec]
) -> str | dict[str, Any]:
    """A branch as YAML spells it: a command, a task with its outcomes, or its steps."""
    if branch.command is not None:
        return _command_data(branch.command, state, agents)
    if branch.task is not None:
        return {"task": _task_data(branch.task, state), "outcomes": list(branch.outcomes)}
    data: dict[str, Any] = {"steps": [_step_data(s, branch.result, agents) for s in branch.steps]}
    if branch.result != state:
        data["result"] = branch.result
    return data


def _step_data(step: BranchStep, result: str, agents: Mapping[str, AgentSpec]) -> dict[str, Any]:
    """One step of a sequence: its name, then its command, agent or task."""
    if step.task is not None:
        task = _task_data(step.task, result)
        return {"step": step.name, "task": task, "outcomes": list(step.outcomes)}
    assert step.command is not None  # a step runs a command or opens a task
    agent = agent_of(step.command)
    written = _command_data(step.command, result, agents, own=agent is not None)
    return {"step": step.name, "agent" if agent is not None else "command": written}


def _parallel_data(
    fan_out: Parallel, state: str, agents: Mapping[str, AgentSpec]
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if fan_out.over is not None and fan_out.map_command is not None:
        data["map"] = {
            "over": fan_out.over.source,
            "command": _command_data(fan_out.map_command, state, agents),
        }
    if fan_out.branches:
        data["branches"] = {b.name: _branch_data(b, state, agents) for b in fan_out.branches}
    if fan_out.concurrency is not None:
        data["concurrency"] = fan_out.concurrency
    if fan_out.join is JoinKind.ANY:
        data["join"] = "any"
    elif fan_out.join is JoinKind.N_OF:
        data["join"] = {"n_of": fan_out.n_of}
    return data


def _transition_data(transition: Transition) -> dict[str, Any]:
    data: dict[str, Any] = {}
    after = transition.after
    if after is None:
        if transition.on != DONE_EVENT:
            data["on"] = transition.on
    else:
        text = _timer_text(transition.on, after)
        if text is None:
            text = format_duration(after)
            data["on"] = transition.on
        data["after"] = text
    if transition.when is not None:
        data["when"] = transition.when.source
    if transition.is_else:
        data["else"] = True
    data["to"] = transition.target
    return data


def _timer_text(event: str, after: float) -> str | None:
    """The duration text an event name was derived from, if ``event`` is the default one."""
    prefix = timer_event("")
    if not event.startswith(prefix):
        return None
    text = event.removeprefix(prefix)
    try:
        return text if parse_duration(text) == after else None
    except ValueError:
        return None
