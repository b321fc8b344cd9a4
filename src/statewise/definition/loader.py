"""Load a workflow file into a :class:`Definition`, reporting every problem with its line.

Reading goes YAML nodes -> plain data with a path -> position map -> pydantic schema ->
typed model -> validation. The node tree is walked by hand because PyYAML's own construction
forgets positions and silently merges duplicate keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path as FilePath
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from statewise.conditions import Condition, ConditionSyntaxError, compile_condition
from statewise.definition.declared_types import Declarations
from statewise.definition.durations import parse_duration, timer_event
from statewise.definition.escalation import escalation_states
from statewise.definition.model import (
    DEFAULT_ESCALATION,
    DEFAULT_RETRY,
    DONE_EVENT,
    WEBHOOK_RESULT_SCHEMA,
    Adjustment,
    AgentSpec,
    AlertRule,
    Branch,
    BranchStep,
    Budget,
    Command,
    Definition,
    Destination,
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
    agent_command,
    webhook_command,
)
from statewise.definition.schema import (
    AgentSchema,
    AgentUseSchema,
    AlertSchema,
    BranchSchema,
    BudgetSchema,
    CommandSchema,
    Conversation,
    Document,
    Locations,
    Path,
    RetrySchema,
    ReviewSchema,
    StateSchema,
    StepSchema,
    TaskSchema,
    TransitionSchema,
    WorkflowSchema,
    YamlLoader,
    allowed_keys,
    suggest,
)
from statewise.definition.validation import validate
from statewise.errors import DefinitionError, Problem

_M = TypeVar("_M", bound=BaseModel)
# Stands for a value YAML could not construct; it is reported once and then left out.
_UNREADABLE = object()


def load(
    path: str | FilePath,
    *,
    commands: frozenset[str] | None = None,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> Definition:
    """Load the workflow file at ``path``.

    Args:
        path: A YAML workflow file.
        commands: Names of the registered commands; ``None`` skips the registration check.
        schemas: JSON Schemas of registered result and output models by name, for checking
            conditions against them (``CommandRegistry.schemas()``).

    Raises:
        DefinitionError: The file cannot be read or is invalid; ``problems`` lists every issue.

    """
    try:
        text = FilePath(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError(
            [Problem(f"cannot read the workflow file: {exc}", str(path))]
        ) from None
    return loads(text, file=str(path), commands=commands, schemas=schemas)


def loads(
    text: str,
    *,
    file: str = "<string>",
    commands: frozenset[str] | None = None,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> Definition:
    """Load a workflow from YAML ``text``; ``file`` is the name problems are reported under.

    Raises:
        DefinitionError: The text is invalid; ``problems`` lists every issue.

    """
    return definition_from_document(read_yaml(text, file), commands=commands, schemas=schemas)


def read_yaml(text: str, file: str) -> Document:
    """Parse ``text`` into plain data plus positions; YAML syntax errors raise at once."""
    try:
        loader = YamlLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character YAML refuses to read
        raise DefinitionError([_unreadable_character(exc, text, file)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            problem = "the file is empty; a workflow needs `workflow:` and `states:`"
            raise DefinitionError([Problem(problem, file, 1, 1)])
        reader = _NodeReader(loader, file)
        data = reader.plain(node, (), frozenset())
        data = None if data is _UNREADABLE else data
        return Document(data, reader.locations, source=text, problems=reader.problems)
    except yaml.MarkedYAMLError as exc:
        raise DefinitionError([_syntax_problem(exc, file)]) from None
    except RecursionError:  # PyYAML and the reader recurse once per level
        problem = "the file is nested too deeply to read; no workflow needs that many levels"
        raise DefinitionError([Problem(problem, file, 1, 1)]) from None
    finally:
        loader.dispose()


def _unreadable_character(exc: yaml.reader.ReaderError, text: str, file: str) -> Problem:
    """Where the character YAML cannot read is, and what to do about it."""
    line = text.count("\n", 0, exc.position) + 1
    column = exc.position - text.rfind("\n", 0, exc.position)
    message = (
        f"YAML cannot read character #x{exc.character:04x} ({exc.reason}); remove it or "
        f"write it as an escape inside a double-quoted string"
    )
    return Problem(message, file, line, column)


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    parts = [exc.context, exc.problem]
    message = "YAML syntax error: " + ", ".join(p for p in parts if p)
    if mark is None:
        return Problem(message, file)
    return Problem(message, file, mark.line + 1, mark.column + 1)


class _NodeReader:
    """Turns a YAML node tree into plain data, recording positions and duplicate keys."""

    def __init__(self, loader: YamlLoader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.problems: list[Problem] = []
        self.locations = Locations()

    def mark(self, node: yaml.Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def report(self, message: str, node: yaml.Node) -> None:
        where = self.mark(node)
        self.problems.append(Problem(message, where.file, where.line, where.column))

    def plain(self, node: yaml.Node, path: Path, ancestors: frozenset[int]) -> Any:
        if not path:
            self.locations.root = self.mark(node)
        if id(node) in ancestors:
            self.report("an alias refers to itself; workflow files cannot be recursive", node)
            return None
        inside = ancestors | {id(node)}
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, inside)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.locations.entries[(*path, index)] = self.mark(item)
                value = self.plain(item, (*path, index), inside)
                items.append(None if value is _UNREADABLE else value)
            return items
        try:
            return self.loader.construct_object(node)
        except (yaml.constructor.ConstructorError, ValueError) as exc:
            self.report(f"cannot read this value: {exc}", node)
            return _UNREADABLE

    def mapping(self, node: yaml.MappingNode, path: Path, ancestors: frozenset[int]) -> Any:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.report("keys must be plain names, not lists or mappings", key_node)
                continue
            key, where = key_node.value, self.mark(key_node)
            child = (*path, key)
            if child in self.locations.keys:
                first = self.locations.keys[child].line
                self.report(
                    f"{_noun(path)} `{key}` is defined twice (first at line {first}); "
                    f"rename or remove one",
                    key_node,
                )
                continue
            self.locations.keys[child] = where
            # Point at scalar values, but at the key of a mapping, list or empty value.
            scalar = isinstance(value_node, yaml.ScalarNode) and value_node.value != ""
            self.locations.entries[child] = self.mark(value_node) if scalar else where
            value = self.plain(value_node, child, ancestors)
            if value is not _UNREADABLE:  # already reported; the schema need not repeat it
                result[key] = value
        return result


def _noun(path: Path) -> str:
    if path == ("states",):
        return "state"
    if path == ("agents",):
        return "agent"
    if len(path) == 3 and path[0] == "states" and path[2] == "branches":
        return "branch"
    return "key"


def definition_from_document(
    document: Document,
    *,
    commands: frozenset[str] | None = None,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
) -> Definition:
    """Check a document against the schema, build the model and validate it.

    This is the one path from data to :class:`Definition`; the builder uses it too, so YAML
    and Python definitions get exactly the same checks.

    Raises:
        DefinitionError: With every problem found, ordered by position.

    """
    problems = list(document.problems)
    locations = document.locations
    top = _parse(WorkflowSchema, document.data, (), locations, problems)
    raw_states = document.data.get("states") if isinstance(document.data, dict) else None
    parsed = _parse_each(StateSchema, raw_states, "states", locations, problems)
    raw_agents = document.data.get("agents") if isinstance(document.data, dict) else None
    agents = _parse_each(AgentSchema, raw_agents, "agents", locations, problems)
    if top is None:
        raise DefinitionError(_ordered(problems))
    unparsed = frozenset(top.states) - parsed.keys()
    converter = _Converter(locations, problems)
    # An agent that failed to parse (already reported) still counts as declared.
    unread = {name: AgentSpec(name, "") for name in top.agents or () if name not in agents}
    converter.agents = {
        **{name: converter.agent(name, schema) for name, schema in agents.items()},
        **unread,
    }
    definition = converter.definition(top, parsed, unparsed, document.source)
    declared = Declarations(
        inputs=None if top.input is None else tuple(top.input),
        commands=commands,
        schemas=schemas,
    )
    problems += validate(definition, declared, locate=locations.find, unparsed=unparsed)
    if problems:
        raise DefinitionError(_ordered(problems))
    return definition


def _parse_each(
    model: type[_M], raw: Any, key: str, locations: Locations, problems: list[Problem]
) -> dict[str, _M]:
    """Parse each entry of the mapping ``raw`` on its own, keeping those that fit ``model``."""
    parsed: dict[str, _M] = {}
    for name, entry in raw.items() if isinstance(raw, dict) else ():
        schema = _parse(model, entry, (key, name), locations, problems)
        if schema is not None:
            parsed[name] = schema
    return parsed


def _ordered(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file, p.line, p.column))


def _parse(
    model: type[_M], data: Any, prefix: Path, locations: Locations, problems: list[Problem]
) -> _M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_schema_problem(model, e, prefix, locations) for e in exc.errors())
        return None


def _schema_problem(
    model: type[BaseModel], error: ErrorDetails, prefix: Path, locations: Locations
) -> Problem:
    """Turn one pydantic error into a Problem at the node it is about."""
    loc = tuple(error["loc"])
    path = (*prefix, *(part for part in loc if part != "[key]"))
    keys = [part for part in path if isinstance(part, str)]
    key = keys[-1] if keys else "workflow file"
    kind = error["type"]
    where = locations.find(path)
    if kind == "extra_forbidden":
        allowed = allowed_keys(model, loc[:-1])
        hint = suggest(key, allowed) or f"; expected one of: {', '.join(allowed)}"
        message = f"unknown key `{key}`{hint}"
        where = locations.key(path)
    elif loc[-1:] == ("[key]",):
        message = _error_text(error, key)
        where = locations.key(path)
    else:
        message = _error_text(error, key)
    return Problem(message, where.file, where.line, where.column)


# The commonest wrong types, in statewise's words by pydantic's stable error type codes; any
# other problem quotes pydantic's message.
_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
}


def _error_text(error: ErrorDetails, key: str) -> str:
    kind = error["type"]
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "missing":
        return f"`{key}` is required"
    if kind in ("model_type", "dict_type"):
        return f"`{key}` must be a mapping of settings, not `{error['input']!r}`"
    if kind == "enum":
        choices = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        return (
            f"`{key}` must be one of {', '.join(choices)}, not `{error['input']}`"
            f"{suggest(str(error['input']), choices)}"
        )
    expected = _EXPECTED.get(kind)
    if expected is not None:
        return f"`{key}` must be {expected}, not `{error['input']!r}`"
    message = error["msg"]
    return f"`{key}`: {message[0].lower()}{message[1:]}, not `{error['input']!r}`"


@dataclass
class _Converter:
    """Builds model objects from checked schema objects; conditions compile here."""

    locations: Locations
    problems: list[Problem]
    agents: dict[str, AgentSpec] = field(default_factory=dict)

    def definition(
        self,
        top: WorkflowSchema,
        parsed: dict[str, StateSchema],
        unparsed: frozenset[str],
        source: str,
    ) -> Definition:
        states = {name: self.state(name, schema) for name, schema in parsed.items()}
        escalation = top.escalation or DEFAULT_ESCALATION
        if escalation == DEFAULT_ESCALATION and escalation not in top.states:
            # A state the workflow declares under an added name stays; validation says so.
            states.update({n: s for n, s in escalation_states().items() if n not in top.states})
        initial = next((s.name for s in states.values() if s.kind is StateKind.INITIAL), "")
        return Definition(
            name=top.workflow,
            version=top.version,
            states=states,
            initial=initial,
            escalation=escalation,
            description=top.description,
            source=source,
            location=self.locations.root,
            agents=self.agents,
            alerts=tuple(self.alert(a, ("alerts", i)) for i, a in enumerate(top.alerts)),
            destinations={
                name: Destination(
                    name,
                    d.url,
                    d.url_env,
                    d.secret_env,
                    d.preset,
                    self.locations.find(("destinations", name)),
                )
                for name, d in (top.destinations or {}).items()
            },
            events=None
            if top.events is None
            else {
                name: EventSpec(
                    name,
                    e.description,
                    e.data,
                    None if e.buffer is None else e.buffer.ttl,
                    self.locations.find(("events", name)),
                    e.label,
                    e.style or "",
                )
                for name, e in top.events.items()
            },
            retention=None
            if top.retention is None
            else Retention(
                top.retention.outputs, top.retention.history, self.locations.find(("retention",))
            ),
            budget=self.budget(top.budget, ("budget",)),
            migrations=dict(top.migrations),
            inputs=None if top.input is None else tuple(top.input),
        )

    def agent(self, name: str, schema: AgentSchema) -> AgentSpec:
        return AgentSpec(
            name=name,
            instructions=schema.instructions,
            model=schema.model,
            input=schema.input,
            output=schema.output,
            tools=tuple(schema.tools),
            conversation=schema.conversation is Conversation.PER_ITEM,
            max_tool_rounds=schema.max_tool_rounds,
            retry=DEFAULT_RETRY if schema.retry is None else _retry(schema.retry),
            examples={
                field: {value: tuple(texts) for value, texts in values.items()}
                for field, values in schema.examples.items()
            },
            knowledge=tuple(KnowledgeDoc(doc.title, doc.text) for doc in schema.knowledge),
            settings=schema.settings,
            location=self.locations.find(("agents", name)),
        )

    def state(self, name: str, schema: StateSchema) -> State:
        path = ("states", name)
        command = None
        if schema.command is not None:
            command = self.command(schema.command, name, (*path, "command"))
        if schema.agent is not None and command is not None:
            self.report(
                f"state `{name}` has both `command` and `agent`; an agent runs as the state's "
                f"command, so keep one",
                (*path, "agent"),
            )
        elif schema.agent is not None:
            command = self.agent_use(schema.agent, name, (*path, "agent"))
        webhook = None
        if schema.webhook is not None:
            webhook, command = self.webhook(schema, command, name, path)
        elif schema.retry is not None:
            self.report(
                f"state `{name}` has `retry:` but no `webhook:`; a command's or an agent's "
                f"retry goes under its own key (`command: {{name: ..., retry: ...}}`)",
                (*path, "retry"),
            )
        return State(
            name=name,
            kind=schema.kind,
            command=command,
            transitions=tuple(
                self.transition(t, (*path, "transitions", i))
                for i, t in enumerate(schema.transitions)
            ),
            max_visits=schema.max_visits,
            on_exhausted=schema.on_exhausted,
            parallel=self.parallel(name, schema),
            task=None if schema.task is None else _task(name, schema.task),
            description=schema.description,
            location=self.locations.find(path),
            budget=self.budget(schema.budget, (*path, "budget")),
            webhook=webhook,
        )

    def webhook(
        self, schema: StateSchema, command: Command | None, name: str, path: Path
    ) -> tuple[Webhook | None, Command | None]:
        """The state's webhook and the built-in command that sends it."""
        assert schema.webhook is not None
        if command is not None:
            self.report(
                f"state `{name}` has `webhook` and a command or agent; a webhook runs as the "
                f"state's command, so keep one",
                (*path, "webhook"),
            )
            return None, command
        hook = schema.webhook
        where = self.locations.find((*path, "webhook"))
        retry = DEFAULT_RETRY if schema.retry is None else _retry(schema.retry)
        sent = Command(
            webhook_command(hook.to), hook.result or name, retry, where, WEBHOOK_RESULT_SCHEMA
        )
        return Webhook(hook.to, hook.payload, where), sent

    def alert(self, schema: AlertSchema, path: Path) -> AlertRule:
        return AlertRule(
            state=schema.state or "",
            max_age=schema.max_age,
            max_items=schema.max_items,
            failure_rate=schema.failure_rate,
            window=schema.window,
            min_attempts=schema.min_attempts,
            stuck=schema.stuck,
            on_enter=schema.on_enter,
            notify=None if schema.notify is None else tuple(schema.notify),
            location=self.locations.find(path),
        )

    def budget(self, schema: BudgetSchema | None, path: Path) -> Budget | None:
        if schema is None:
            return None
        return Budget(schema.tokens, schema.cost, schema.on_exceeded, self.locations.find(path))

    def command(self, schema: CommandSchema, default_result: str, path: Path) -> Command:
        if schema.agent is not None:
            use = AgentUseSchema(name=schema.agent, result=schema.result, retry=schema.retry)
            return self.agent_use(use, default_result, path)
        retry = DEFAULT_RETRY if schema.retry is None else _retry(schema.retry)
        location = self.locations.find(path)
        result = schema.result or default_result
        return Command(schema.name or "", result, retry, location, schema.result_schema)

    def agent_use(self, schema: AgentUseSchema, default_result: str, path: Path) -> Command:
        """The command that runs an agent; without its own retry it keeps the agent's."""
        if schema.retry is not None:
            retry = _retry(schema.retry)
        else:
            agent = self.agents.get(schema.name)
            retry = DEFAULT_RETRY if agent is None else agent.retry
        location = self.locations.find(path)
        return Command(agent_command(schema.name), schema.result or default_result, retry, location)

    def transition(self, schema: TransitionSchema, path: Path) -> Transition:
        if schema.after is None:
            after, on = None, schema.on or DONE_EVENT
        else:
            after, on = parse_duration(schema.after), schema.on or timer_event(schema.after)
        when = None if schema.when is None else self.condition(schema.when, (*path, "when"))
        return Transition(
            target=schema.to,
            on=on,
            when=when,
            is_else=schema.else_,
            after=after,
            location=self.locations.find(path),
        )

    def parallel(self, name: str, schema: StateSchema) -> Parallel | None:
        settings = (schema.map, schema.branches, schema.concurrency, schema.join)
        if all(setting is None for setting in settings):
            return None
        path = ("states", name)
        branches = tuple(
            self.branch(name, branch, body, (*path, "branches", branch))
            for branch, body in (schema.branches or {}).items()
        )
        over = map_command = None
        if schema.map is not None:
            over = self.condition(schema.map.over, (*path, "map", "over"))
            map_command = self.command(schema.map.command, name, (*path, "map", "command"))
        join = schema.join
        return Parallel(
            branches=branches,
            over=over,
            map_command=map_command,
            concurrency=schema.concurrency,
            join=JoinKind.ALL if join is None else join.kind,
            n_of=None if join is None else join.n_of,
        )

    def branch(self, state: str, name: str, schema: BranchSchema, path: Path) -> Branch:
        """A branch: a command, a person's task, or steps; results default to the state."""
        if schema.steps is not None:
            result = schema.result or state
            steps = tuple(
                self.step(state, result, step, (*path, "steps", index))
                for index, step in enumerate(schema.steps)
            )
            return Branch(name, steps=steps, sequence_result=result)
        if schema.task is not None:
            outcomes = tuple(schema.outcomes or ())
            return Branch(name, task=_task(state, schema.task), outcomes=outcomes)
        return Branch(name, self.command(schema.as_command(), state, path))

    def step(self, state: str, result: str, schema: StepSchema, path: Path) -> BranchStep:
        """One step of a sequence; its result goes into the branch's mapping by step."""
        if schema.task is not None:
            task = replace(_task(state, schema.task), result=result)
            return BranchStep(schema.step, task=task, outcomes=tuple(schema.outcomes or ()))
        if schema.agent is not None:
            command = self.agent_use(schema.agent, state, (*path, "agent"))
        else:
            assert schema.command is not None  # the schema requires one of the three
            command = self.command(schema.command, state, (*path, "command"))
        return BranchStep(schema.step, command=replace(command, result=result))

    def condition(self, source: str, path: Path) -> Condition:
        """Compile ``source``; on failure report it and keep a stand-in so checks continue."""
        try:
            return compile_condition(source)
        except ConditionSyntaxError as exc:
            self.report(f"condition `{source}` does not compile: {exc}", path)
            return Condition(source=source, variables=(), program=None)

    def report(self, message: str, path: Path) -> None:
        where = self.locations.find(path)
        self.problems.append(Problem(message, where.file, where.line, where.column))


def _task(state: str, schema: TaskSchema) -> HumanTask:
    return HumanTask(
        queue=schema.queue,
        result=schema.result or state,
        role=schema.role,
        title=schema.title,
        form=schema.form,
        due=schema.due,
        remind=schema.remind,
        escalate_to=schema.escalate_to,
        claim=schema.claim,
        reviews=None if schema.reviews is None else _review(schema.reviews),
        show=tuple(schema.show),
    )


def _review(schema: ReviewSchema) -> Review:
    return Review(
        state=schema.state,
        agree=tuple(schema.agree),
        override=tuple(schema.override),
        score=schema.score,
    )


def _retry(schema: RetrySchema) -> RetryPolicy:
    return RetryPolicy(
        attempts=schema.attempts,
        backoff=schema.backoff,
        multiplier=schema.multiplier,
        max_backoff=schema.max_backoff,
        jitter=schema.jitter,
        retry_on=frozenset(schema.retry_on),
        timeout=schema.timeout,
        adjust=tuple(
            Adjustment(entry.model, entry.instructions, dict(entry.model_extra or {}))
            for entry in schema.adjust
        ),
        on_timeout=schema.on_timeout,
    )
