"""The workflow file format: its YAML dialect and the pydantic models a document must fit.

These models are the edge of the definition package. They only check shape and types (and
say which key was meant when one is misspelled); everything about meaning, such as unknown
targets or unreachable states, is checked on the typed model by ``validation``.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from statewise.definition.durations import parse_duration
from statewise.definition.model import (
    DEFAULT_RETRY,
    AgentSpec,
    ErrorKind,
    JoinKind,
    Location,
    Preset,
    Role,
    StateKind,
)
from statewise.errors import Problem

Path = tuple[str | int, ...]
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
# A context path: a result key, then the names of the fields below it.
SCORE_PATH = re.compile(r"^[a-z_][a-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_BOOL_TAG = "tag:yaml.org,2002:bool"
# YAML 1.1 reads `on`, `yes` and `no` as booleans; `on:` is a key of this format, so only
# true/false are booleans here (as in YAML 1.2).
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


def _yaml_12_booleans(cls: type[yaml.SafeLoader] | type[yaml.SafeDumper]) -> None:
    cls.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
        for first, resolvers in cls.yaml_implicit_resolvers.items()
    }
    cls.add_implicit_resolver(_BOOL_TAG, _BOOL, list("tTfF"))


class YamlLoader(yaml.SafeLoader):
    """Safe YAML loading where only true/false are booleans."""


class YamlDumper(yaml.SafeDumper):
    """Safe YAML dumping that writes `on:` bare, matching :class:`YamlLoader`."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        """Indent list items under their key, as people write workflow files."""
        super().increase_indent(flow, False)


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Multi-line text (agent instructions, descriptions) as a literal block, as people write it."""
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_yaml_12_booleans(YamlLoader)
_yaml_12_booleans(YamlDumper)
YamlDumper.add_representer(str, _represent_text)


def dump_document(data: dict[str, Any]) -> str:
    """YAML text for a workflow document, keys in the order given."""
    return yaml.dump(data, Dumper=YamlDumper, sort_keys=False, allow_unicode=True, width=100)


@dataclass
class Locations:
    """Where each part of a document was written, keyed by its path from the root.

    ``entries`` holds the value's position for scalars and the key's position otherwise, so a
    problem with a whole state points at its name; ``keys`` holds where each mapping key is.
    """

    root: Location = field(default_factory=Location)
    entries: dict[Path, Location] = field(default_factory=dict)
    keys: dict[Path, Location] = field(default_factory=dict)

    def find(self, path: Path) -> Location:
        """The position of ``path``, or of its closest written ancestor when it is missing."""
        for end in range(len(path), 0, -1):
            found = self.entries.get(path[:end])
            if found is not None:
                return found
        return self.root

    def key(self, path: Path) -> Location:
        """The position of the key that ends ``path``, for problems with the key itself."""
        return self.keys.get(path) or self.find(path)


@dataclass
class Document:
    """Plain data of one workflow with its locations and the problems found while reading it."""

    data: Any
    locations: Locations
    source: str = ""
    problems: list[Problem] = field(default_factory=list)


def suggest(name: str, candidates: Collection[str]) -> str:
    """``; did you mean `x`?`` for the closest candidate, or nothing when none is close."""
    close = difflib.get_close_matches(name, sorted(candidates), n=1)
    return f"; did you mean `{close[0]}`?" if close else ""


def _check_name(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(
            f"`{value}` is not a valid name; use lower-case letters, digits and `_`, "
            f"not starting with a digit, so that conditions can refer to it"
        )
    return value


def _check_duration_text(value: object) -> object:
    parse_duration(value)  # type: ignore[arg-type]  # parse_duration rejects other types itself
    return value


def _optional_duration(value: object) -> float | None:
    return None if value is None else parse_duration(value)  # type: ignore[arg-type]


def _name_shorthand(value: object) -> object:
    return {"name": value} if isinstance(value, str) else value


def _output(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        raise ValueError("`output` names no output model; give its registered name")
    if value is not None and not isinstance(value, dict | str):
        raise ValueError(
            f"`output` must be the JSON Schema of an object, like "
            f"`{{type: object, properties: {{...}}}}`, or the name of a registered output "
            f"model, not `{value!r}`"
        )
    return value


def _join_shorthand(value: object) -> object:
    if isinstance(value, str):
        if value not in (JoinKind.ALL, JoinKind.ANY):
            raise ValueError(f"join `{value}` is unknown; write `all`, `any` or `{{n_of: 2}}`")
        return {"kind": value}
    if isinstance(value, dict) and "kind" not in value:
        return {**value, "kind": JoinKind.N_OF}
    raise ValueError("join must be `all`, `any` or `{n_of: N}`")


Name = Annotated[str, AfterValidator(_check_name)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
OptionalDuration = Annotated[float | None, BeforeValidator(_optional_duration)]
# Kept as written: a timer's default event name is derived from the text.
DurationText = Annotated[str | int | float, BeforeValidator(_check_duration_text)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


NonEmpty = Annotated[str, Field(min_length=1)]


class AdjustSchema(BaseModel):
    """One entry of an agent's ``retry: {adjust: [...]}``; every other key is a model setting."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: NonEmpty | None = None
    instructions: NonEmpty | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.model is None and self.instructions is None and not self.model_extra:
            raise ValueError(
                "an `adjust` entry changes nothing; give a `model`, `instructions` or a model "
                "setting such as `temperature: 0`"
            )
        return self


class RetrySchema(_Schema):
    """``retry:`` of a command; omitted keys keep the :class:`RetryPolicy` defaults."""

    attempts: int = DEFAULT_RETRY.attempts
    backoff: Duration = DEFAULT_RETRY.backoff
    multiplier: float = DEFAULT_RETRY.multiplier
    max_backoff: Duration = DEFAULT_RETRY.max_backoff
    jitter: float = DEFAULT_RETRY.jitter
    retry_on: list[Annotated[ErrorKind, Strict(False)]] = Field(
        default_factory=lambda: sorted(DEFAULT_RETRY.retry_on)
    )
    timeout: OptionalDuration = DEFAULT_RETRY.timeout
    # Agents only: what each retry changes (validation refuses it on a plain command).
    adjust: list[AdjustSchema] = Field(default_factory=list)
    on_timeout: Literal["previous"] | None = None


class CommandSchema(_Schema):
    """A command in its long form; a bare string is shorthand for ``{name: ...}``.

    ``{agent: NAME}`` runs a declared agent instead; its retry defaults to the agent's.
    """

    name: NonEmpty | None = None
    agent: NonEmpty | None = None
    result: Name | None = None
    retry: RetrySchema | None = None
    # The JSON Schema (of an object) the command's result must fit.
    result_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _name_or_agent(self) -> Self:
        if self.name is None and self.agent is None:
            raise ValueError("`name` is required (or `agent: NAME` to run an agent)")
        if self.name is not None and self.agent is not None:
            raise ValueError("give a command `name` or an `agent`, not both")
        if self.agent is not None and self.result_schema is not None:
            raise ValueError(
                "an agent's result is described by its `output:`; remove `result_schema`"
            )
        return self


CommandField = Annotated[CommandSchema, BeforeValidator(_name_shorthand)]


class TransitionSchema(_Schema):
    """One entry of ``transitions:``."""

    to: Name
    on: Name | None = None
    when: str | None = None
    else_: bool = Field(default=False, alias="else")
    after: DurationText | None = None


class MapSchema(_Schema):
    """``map:`` of a parallel state: one branch per element of the list ``over`` gives."""

    over: str
    command: CommandField


class JoinSchema(_Schema):
    """``join:`` after shorthand expansion: ``all``, ``any`` or ``{n_of: N}``."""

    kind: Annotated[JoinKind, Strict(False)]
    n_of: int | None = None


class AgentUseSchema(_Schema):
    """A state's ``agent:``; a bare string is shorthand for ``{name: ...}``.

    Without ``retry`` the agent's own retry policy applies.
    """

    name: NonEmpty
    result: Name | None = None
    retry: RetrySchema | None = None


def _check_score_path(value: str) -> str:
    if not SCORE_PATH.match(value):
        raise ValueError(
            f"`score` must be a context path such as `fraud_check.risk` (names joined by "
            f"dots), not `{value}`"
        )
    return value


def _check_show_path(value: str) -> str:
    if not SCORE_PATH.match(value):
        raise ValueError(
            f"`show` lists context paths such as `inquiry.text` (names joined by dots), "
            f"not `{value}`"
        )
    return value


def _check_payload_path(value: str) -> str:
    if not SCORE_PATH.match(value):
        raise ValueError(
            f"`payload` must be a context path such as `copy` or `publish.record` (names "
            f"joined by dots), not `{value}`"
        )
    return value


class WebhookSchema(_Schema):
    """A state's ``webhook:``: which destination is told, and the context value it is sent."""

    to: Name
    payload: Annotated[str, AfterValidator(_check_payload_path)]
    result: Name | None = None


class ReviewSchema(_Schema):
    """``reviews:`` of a task: the agent state its decision grades, and how outcomes map.

    Outcomes in ``agree`` confirm the agent's call, those in ``override`` reverse it; any
    other outcome counts as neither. ``score`` is the context path of the score that routed
    the item to the task, read when it is decided.
    """

    state: Name
    agree: list[Name] = Field(default_factory=list)
    override: list[Name] = Field(default_factory=list)
    score: Annotated[str, AfterValidator(_check_score_path)] | None = None

    @model_validator(mode="after")
    def _outcomes(self) -> Self:
        if not self.agree and not self.override:
            raise ValueError(
                "`reviews` needs the outcomes that agree with the agent (`agree: [...]`) or "
                "override it (`override: [...]`)"
            )
        both = sorted(set(self.agree) & set(self.override))
        if both:
            raise ValueError(
                f"outcome `{both[0]}` is under both `agree` and `override`; keep it in one"
            )
        return self


class TaskSchema(_Schema):
    """``task:`` of a ``kind: human`` state: who decides, with what form, by when."""

    queue: Name
    role: Annotated[Role, Strict(False)] = Role.REVIEWER
    title: str = ""
    form: Annotated[dict[str, Any] | str | None, BeforeValidator(_output)] = None
    due: OptionalDuration = None
    remind: OptionalDuration = None
    escalate_to: Name | None = None
    result: Name | None = None
    claim: Duration = 1800.0
    reviews: ReviewSchema | None = None
    show: list[Annotated[str, AfterValidator(_check_show_path)]] = []

    @model_validator(mode="after")
    def _sane_times(self) -> Self:
        if self.role is Role.VIEWER:
            raise ValueError("`role: viewer` cannot decide tasks; use reviewer, operator or admin")
        for name, value in (("due", self.due), ("remind", self.remind), ("claim", self.claim)):
            if value is not None and value <= 0:
                raise ValueError(f"`{name}` must be a positive duration")
        if self.due is not None and self.remind is not None and self.remind >= self.due:
            raise ValueError("`remind` must come before `due`")
        return self


def _check_outcomes(task: TaskSchema | None, outcomes: list[str] | None, what: str) -> None:
    """A person's task in a branch needs the outcomes they may choose; nothing else does."""
    if task is None and outcomes is not None:
        raise ValueError(f"`outcomes` belong to a `task`; {what} has none")
    if task is not None and not outcomes:
        raise ValueError(
            f"{what} opens a `task` but offers no `outcomes`; list the decisions a person "
            f"can make, like `outcomes: [approve, reject]`"
        )
    if task is not None and outcomes and len(set(outcomes)) != len(outcomes):
        raise ValueError(f"{what} lists an outcome twice in `outcomes`")


class StepSchema(_Schema):
    """One entry of a branch's ``steps:``: a named command, agent run or person's task."""

    step: Name
    command: CommandField | None = None
    agent: Annotated[AgentUseSchema, BeforeValidator(_name_shorthand)] | None = None
    task: TaskSchema | None = None
    outcomes: list[Name] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [k for k in ("command", "agent", "task") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"step `{self.step}` needs exactly one of `command`, `agent` or `task`"
                + (f", not {' and '.join(f'`{k}`' for k in given)}" if given else "")
            )
        _check_outcomes(self.task, self.outcomes, f"step `{self.step}`")
        return self


# A sequence is for a few steps; past this, it is a workflow of its own.
MAX_BRANCH_STEPS = 10


class BranchSchema(_Schema):
    """One branch of a parallel state; a bare string is shorthand for ``{name: ...}``.

    Three forms: a command in its long form (``name`` or ``agent``, ``result``, ``retry``,
    ``result_schema``), a person's ``task`` with its ``outcomes``, or ``steps`` run in order
    (with ``result`` naming where the mapping by step lands).
    """

    name: NonEmpty | None = None
    agent: NonEmpty | None = None
    result: Name | None = None
    retry: RetrySchema | None = None
    result_schema: dict[str, Any] | None = None
    task: TaskSchema | None = None
    outcomes: list[Name] | None = None
    steps: list[StepSchema] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        runs = [k for k in ("name", "agent") if getattr(self, k) is not None]
        extra = runs + [k for k in ("retry", "result_schema") if getattr(self, k) is not None]
        if self.steps is not None:
            if extra or self.task is not None or self.outcomes is not None:
                kept = [*extra, *(["task"] if self.task is not None else [])]
                named = ", ".join(f"`{k}`" for k in kept) or "`outcomes`"
                raise ValueError(
                    f"a branch with `steps` runs them in order; move {named} into a step"
                )
            if not self.steps:
                raise ValueError("`steps` is empty; give the steps the branch runs in order")
            if len(self.steps) > MAX_BRANCH_STEPS:
                raise ValueError(
                    f"a branch runs at most {MAX_BRANCH_STEPS} steps (this one has "
                    f"{len(self.steps)}); make the longer work a workflow state of its own"
                )
            names = [s.step for s in self.steps]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"step `{twice[0]}` is named twice in `steps`")
            return self
        if self.task is not None:
            if extra or self.result is not None:
                raise ValueError(
                    "a branch with a `task` is decided by a person: drop "
                    + ", ".join(f"`{k}`" for k in [*extra, *(["result"] * bool(self.result))])
                    + " (the decision's key is `task.result`)"
                )
            _check_outcomes(self.task, self.outcomes, "the branch")
            return self
        _check_outcomes(None, self.outcomes, "the branch")
        if not runs:
            raise ValueError(
                "`name` is required (or `agent: NAME` to run an agent, `task:` for a person, "
                "`steps:` for a sequence)"
            )
        if len(runs) == 2:
            raise ValueError("give a command `name` or an `agent`, not both")
        if self.agent is not None and self.result_schema is not None:
            raise ValueError(
                "an agent's result is described by its `output:`; remove `result_schema`"
            )
        return self

    def command_fields(self) -> dict[str, Any]:
        """The branch's command in its long form (the first form)."""
        fields = ("name", "agent", "result", "retry", "result_schema")
        return {k: getattr(self, k) for k in fields if getattr(self, k) is not None}

    def as_command(self) -> CommandSchema:
        """The branch's command, for a branch of the first form."""
        return CommandSchema.model_construct(**self.command_fields())


BranchField = Annotated[BranchSchema, BeforeValidator(_name_shorthand)]


class AlertSchema(_Schema):
    """One entry of ``alerts:``: a state and what is watched there (one kind per rule)."""

    state: Name | None = None
    max_age: OptionalDuration = None
    max_items: int | None = None
    failure_rate: float | None = None
    window: OptionalDuration = None
    min_attempts: int | None = None
    stuck: bool = False
    on_enter: bool = False
    notify: list[Name] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [
            name
            for name, present in (
                ("max_age/max_items", self.max_age is not None or self.max_items is not None),
                ("failure_rate", self.failure_rate is not None),
                ("stuck", self.stuck),
                ("on_enter", self.on_enter),
            )
            if present
        ]
        if not kinds:
            raise ValueError(
                "an alert needs one of `max_age`/`max_items` (a backlog), `failure_rate`, "
                "`stuck: true` or `on_enter: true`"
            )
        if len(kinds) > 1:
            raise ValueError(f"an alert watches one thing; split {' and '.join(kinds)} in two")
        if self.state is None and not self.stuck:
            raise ValueError("this alert needs `state` (only `stuck` may watch every state)")
        self._sane_numbers()
        return self

    def _sane_numbers(self) -> None:
        if (self.max_age is not None and self.max_age <= 0) or (
            self.max_items is not None and self.max_items <= 0
        ):
            raise ValueError("alert thresholds must be positive")
        if self.failure_rate is not None and not 0 < self.failure_rate <= 1:
            raise ValueError(
                f"`failure_rate` is a fraction of attempts above 0 and at most 1 (0.2 is 20%), "
                f"not {self.failure_rate:g}"
            )
        if self.window is not None and (self.failure_rate is None and not self.on_enter):
            raise ValueError("`window` applies to `failure_rate` and `on_enter` alerts only")
        if self.window is not None and self.window <= 0:
            raise ValueError("`window` must be a positive duration such as 15m")
        if self.min_attempts is not None and self.failure_rate is None:
            raise ValueError("`min_attempts` applies to `failure_rate` alerts only")
        if self.min_attempts is not None and self.min_attempts < 1:
            raise ValueError("`min_attempts` must be at least 1")


def _no_secret_inline(value: object) -> object:
    if isinstance(value, dict) and "secret" in value:
        raise ValueError(
            "a destination's secret never goes into the workflow file: put it in an "
            "environment variable and name that with `secret_env`"
        )
    return value


class DestinationSchema(_Schema):
    """One entry of ``destinations:``: a webhook, its URL (or variable), its secret variable."""

    url: str | None = None
    url_env: str | None = None
    secret_env: str | None = None
    preset: Annotated[Preset, Strict(False)] = Preset.JSON

    @model_validator(mode="after")
    def _reachable(self) -> Self:
        if (self.url is None) == (self.url_env is None):
            raise ValueError(
                "a destination needs exactly one of `url` or `url_env` (the name of an "
                "environment variable holding the URL)"
            )
        if self.url is not None and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", self.url):
            raise ValueError(f"`url` must be an http:// or https:// address, not `{self.url}`")
        for key, name in (("url_env", self.url_env), ("secret_env", self.secret_env)):
            if name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"`{key}` must name an environment variable, not `{name}`")
        if self.preset is Preset.JSON and self.secret_env is None:
            raise ValueError(
                "a `json` destination is signed: name the environment variable holding its "
                "HMAC secret with `secret_env`"
            )
        return self


class RetentionSchema(_Schema):
    """``retention:`` of a workflow: how long a finished item keeps outputs and history."""

    outputs: OptionalDuration = None
    history: OptionalDuration = None

    @field_validator("outputs", "history")
    @classmethod
    def _positive(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(
                f"`{info.field_name}` must be a positive duration such as 30d or 365d, "
                f"not {value:g} seconds"
            )
        return value

    @model_validator(mode="after")
    def _outputs_go_first(self) -> Self:
        if self.outputs is None and self.history is None:
            raise ValueError("`retention` needs `outputs`, `history` or both, e.g. `outputs: 30d`")
        if self.outputs is not None and self.history is not None and self.history < self.outputs:
            raise ValueError(
                "`history` is kept for less time than `outputs`, but pruning an item's history "
                "drops its outputs with it; make `history` at least as long as `outputs`"
            )
        return self


class BudgetSchema(_Schema):
    """``budget:`` of the workflow or of an agent state: ``{tokens: N, cost: X, on_exceeded}``.

    Only the shape is checked here; the ranges and the state ``on_exceeded`` names are
    checked by ``validation``, so the builder's definitions get the same messages.
    """

    tokens: int | None = None
    cost: float | None = None
    on_exceeded: Name | None = None

    @model_validator(mode="after")
    def _a_limit(self) -> Self:
        if self.tokens is None and self.cost is None:
            raise ValueError("a budget needs `tokens`, `cost` or both, like `{tokens: 20000}`")
        return self


class StateSchema(_Schema):
    """One state under ``states:``."""

    kind: Annotated[StateKind, Strict(False)] = StateKind.NORMAL
    description: str = ""
    command: CommandField | None = None
    agent: Annotated[AgentUseSchema, BeforeValidator(_name_shorthand)] | None = None
    transitions: list[TransitionSchema] = Field(default_factory=list)
    max_visits: int | None = None
    on_exhausted: Name | None = None
    map: MapSchema | None = None
    branches: dict[Name, BranchField] | None = None
    concurrency: int | None = None
    join: Annotated[JoinSchema, BeforeValidator(_join_shorthand)] | None = None
    task: TaskSchema | None = None
    budget: BudgetSchema | None = None
    webhook: WebhookSchema | None = None
    # The retry policy of the state's webhook (a command or agent has its own `retry:`).
    retry: RetrySchema | None = None


class Conversation(StrEnum):
    """Whether an agent keeps its conversation with each item."""

    PER_ITEM = "per_item"
    NONE = "none"


class KnowledgeSchema(_Schema):
    """One document under an agent's ``knowledge:``."""

    title: str
    text: str


_AGENT_DEFAULTS = AgentSpec(name="", instructions="")


class AgentSchema(_Schema):
    """One agent under ``agents:``; ``instructions`` and ``input`` are Jinja2 templates."""

    model: NonEmpty | None = None
    instructions: str
    input: str | None = None
    # A JSON Schema inline, or the name of a pydantic model registered as an output model.
    output: Annotated[dict[str, Any] | str | None, BeforeValidator(_output)] = None
    tools: list[NonEmpty] = Field(default_factory=list)
    conversation: Annotated[Conversation, Strict(False)] = Conversation.NONE
    max_tool_rounds: int = _AGENT_DEFAULTS.max_tool_rounds
    retry: RetrySchema | None = None
    examples: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    knowledge: list[KnowledgeSchema] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)


def _description_shorthand(value: object) -> object:
    return {"description": value} if isinstance(value, str) else value


def _buffer_needs_ttl(value: object) -> object:
    if value is True:
        raise ValueError("`buffer` needs a time-to-live: write `buffer: {ttl: 24h}`")
    return value


class BufferSchema(_Schema):
    """``buffer:`` of an event: keep it when it arrives early, for ``ttl`` at most."""

    ttl: Duration

    @field_validator("ttl")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(
                f"`ttl` must be a positive duration such as 24h, not {value:g} seconds"
            )
        return value


class EventSchema(_Schema):
    """One event under ``events:``; a bare string is shorthand for ``{description: ...}``.

    ``data`` is the JSON Schema (of an object) the event's data must fit; ``buffer`` keeps
    the event when it reaches an item before a state that accepts it.
    """

    description: str = ""
    data: dict[str, Any] | None = None
    buffer: Annotated[BufferSchema, BeforeValidator(_buffer_needs_ttl)] | None = None
    label: str = ""
    style: Literal["danger"] | None = None


class WorkflowSchema(_Schema):
    """The top of a workflow file; each state is checked on its own against StateSchema.

    Checking states (and agents) one by one lets a typo in one state leave the others usable
    for the checks that only need them.
    """

    workflow: Name
    version: int = 1
    description: str = ""
    escalation: Name | None = None
    input: list[Name] | None = None
    events: dict[Name, Annotated[EventSchema, BeforeValidator(_description_shorthand)]] | None = (
        None
    )
    agents: dict[Name, Any] | None = None
    alerts: list[AlertSchema] = Field(default_factory=list)
    destinations: (
        dict[Name, Annotated[DestinationSchema, BeforeValidator(_no_secret_inline)]] | None
    ) = None
    retention: RetentionSchema | None = None
    budget: BudgetSchema | None = None
    migrations: dict[Name, Name] = Field(default_factory=dict)
    states: dict[Name, Any]


def allowed_keys(model: type[BaseModel], loc: Path) -> list[str]:
    """The keys the mapping at ``loc`` (relative to ``model``) may hold, for "did you mean"."""
    current: object = model
    for part in loc:
        current = _child(_unwrap(current), part)
    target = _unwrap(current)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return [info.alias or name for name, info in target.model_fields.items()]
    return []


def _unwrap(annotation: object) -> object:
    """Strip Annotated and Optional so that only the container or model is left."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return _unwrap(options[0]) if options else None
    return annotation


def _child(annotation: object, part: str | int) -> object:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin = get_origin(annotation)
    if origin is list:
        return get_args(annotation)[0]
    if origin is dict:
        return get_args(annotation)[1]
    return None
