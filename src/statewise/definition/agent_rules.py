"""Checks of a definition's agents and of the states that run them.

A state's ``agent: NAME`` is an ordinary :class:`Command` named ``agent_command(NAME)``, so the
general rules in ``validation`` (results, retries, reserved names) apply to it unchanged; the
rules here check what only agents have: that the agent is declared, that its output schema
describes an object (and is valid JSON Schema, when ``jsonschema`` is installed) or names a
registered output model, that its templates compile, and that its tools are registered.

An output model is a Python class, known only by name here: its fields are checked when the
agents are registered, so the ``examples`` of such an agent are not checked against them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from statewise.definition.model import (
    AGENT_COMMAND_PREFIX,
    AgentSpec,
    Command,
    Definition,
    HumanTask,
    State,
)
from statewise.definition.rule_context import RuleContext
from statewise.definition.schema import Path, suggest


def agent_of(command: Command) -> str | None:
    """The agent ``command`` runs, or ``None`` for an ordinary command."""
    if command.name.startswith(AGENT_COMMAND_PREFIX):
        return command.name.removeprefix(AGENT_COMMAND_PREFIX)
    return None


def state_commands(state: State) -> Iterator[tuple[Path, Command]]:
    """Each command of ``state`` with the path of its key below the state.

    A state's own agent is written under ``agent:``, its own command under ``command:``.
    """
    if state.command is not None:
        key = "command" if agent_of(state.command) is None else "agent"
        yield (("webhook",) if state.webhook is not None else (key,)), state.command
    if state.parallel is not None:
        for branch in state.parallel.branches:
            if branch.command is not None:
                yield ("branches", branch.name), branch.command
            for index, step in enumerate(branch.steps):
                if step.command is not None:
                    key = "command" if agent_of(step.command) is None else "agent"
                    yield ("branches", branch.name, "steps", index, key), step.command
        if state.parallel.map_command is not None:
            yield ("map", "command"), state.parallel.map_command


def state_tasks(state: State) -> Iterator[tuple[Path, HumanTask]]:
    """Each person's task of ``state`` with the path of its key below the state.

    A human state's own ``task:``, and the task of every branch or branch step that opens one.
    """
    if state.task is not None:
        yield ("task",), state.task
    for branch in state.parallel.branches if state.parallel is not None else ():
        if branch.task is not None:
            yield ("branches", branch.name, "task"), branch.task
        for index, step in enumerate(branch.steps):
            if step.task is not None:
                yield ("branches", branch.name, "steps", index, "task"), step.task


def inherits_retry(definition: Definition, command: Command) -> bool:
    """Whether ``command`` runs a declared agent with that agent's own retry policy."""
    agent = agent_of(command)
    spec = None if agent is None else definition.agents.get(agent)
    return spec is not None and spec.retry == command.retry


def _check_agent_references(c: RuleContext) -> None:
    declared = c.definition.agents
    for state in c.definition.states.values():
        for path, command in state_commands(state):
            agent = agent_of(command)
            if agent is None or agent in declared:
                continue
            hint = suggest(agent, declared) or (
                f" (declared: {', '.join(sorted(declared))})" if declared else ""
            )
            where = (*path, "name") if path == ("agent",) else (*path, "agent")
            c.report(
                f"agent `{agent}` is not declared under `agents:`{hint}",
                ("states", state.name, *where),
            )


def _check_outputs(c: RuleContext) -> None:
    for agent in c.definition.agents.values():
        path: Path = ("agents", agent.name, "output")
        if isinstance(agent.output, str):
            _check_output_model(c, agent.name, agent.output, path)
        elif agent.output is not None and _check_output(c, agent.name, agent.output, path):
            _check_json_schema(c, agent.name, agent.output, path)


def _check_output_model(c: RuleContext, agent: str, name: str, path: Path) -> None:
    """An output given by name must be registered (checked only when the names are known)."""
    registered = c.registered
    if registered is None or name in registered:
        return
    c.report(
        f"output model `{name}` of agent `{agent}` is not registered{suggest(name, registered)} "
        f"(register a pydantic model with `@registry.output_model()`, or give a JSON Schema)",
        path,
    )


def _check_output(c: RuleContext, agent: str, output: object, path: Path) -> bool:
    """Check the shape statewise needs; whether no problem was found."""
    if not isinstance(output, Mapping):
        c.report(
            f"`output` of agent `{agent}` must be the JSON Schema of an object, like "
            f"`{{type: object, properties: {{...}}}}`",
            path,
        )
        return False
    fine = True
    if output.get("type") != "object":
        fine = False
        got = f"`type: {output['type']}`" if "type" in output else "no `type`"
        c.report(
            f"`output` of agent `{agent}` must be an object schema with `type: object` "
            f"(it has {got}); structured replies are objects of named fields",
            (*path, "type"),
        )
    properties = output.get("properties")
    if not isinstance(properties, Mapping):
        c.report(
            f"`output` of agent `{agent}` needs `properties:`, a mapping from each field to "
            f"its schema (e.g. `category: {{type: string}}`)",
            (*path, "properties"),
        )
        return False
    for name, schema in properties.items():
        if not isinstance(schema, Mapping):
            fine = False
            c.report(
                f"field `{name}` in the `output` of agent `{agent}` must be a schema mapping "
                f"like `{{type: string}}`, not `{schema!r}`",
                (*path, "properties", name),
            )
    required = output.get("required", [])
    for index, name in enumerate(required if isinstance(required, list) else ()):
        if name not in properties:
            fine = False
            c.report(
                f"required field `{name}` is not among the `properties` of agent "
                f"`{agent}`'s output{suggest(str(name), properties)}",
                (*path, "required", index),
            )
    return fine


def _check_json_schema(c: RuleContext, agent: str, output: Mapping[str, Any], path: Path) -> None:
    """Check ``output`` against its dialect's metaschema (Draft 2020-12 unless ``$schema``).

    This is ``check_schema`` reporting every problem rather than the first. It needs
    ``jsonschema``, part of the `ai` extra; without it the definition still loads, and the
    runner (which needs the extra) refuses an invalid schema when it checks a reply.
    """
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.validators import validator_for
    except ImportError:
        return
    try:
        dialect = validator_for(output, default=Draft202012Validator)
    except TypeError:  # an unhashable `$schema`; the metaschema says what is wrong with it
        dialect = Draft202012Validator
    metaschema = dialect(dialect.META_SCHEMA, format_checker=dialect.FORMAT_CHECKER)
    try:
        errors = sorted(metaschema.iter_errors(output), key=lambda e: e.path)
    except RecursionError:  # a hostile or generated schema; a crash would hide every problem
        c.report(f"`output` of agent `{agent}` is nested too deeply to be checked", path)
        return
    # The 2020-12 metaschema reaches a subschema through several vocabularies: one report each.
    for where, message in dict.fromkeys((tuple(e.absolute_path), e.message) for e in errors):
        at = f" (at `{'.'.join(map(str, where))}`)" if where else ""
        c.report(
            f"`output` of agent `{agent}` is not valid JSON Schema: {message}{at}",
            (*path, *where),
        )


def _output_fields(agent: AgentSpec) -> Mapping[str, Any] | None:
    output = agent.output
    properties = output.get("properties") if isinstance(output, Mapping) else None
    return properties if isinstance(properties, Mapping) else None


def _check_examples(c: RuleContext) -> None:
    for agent in c.definition.agents.values():
        if isinstance(agent.output, str):  # a registered model's fields are not known here
            continue
        fields = _output_fields(agent)
        for name in agent.examples:
            if fields is None:
                c.report(
                    f"agent `{agent.name}` has `examples` but no `output` schema; examples "
                    f"are given per output field, so declare the fields under `output:`",
                    ("agents", agent.name, "examples"),
                )
                break
            if name not in fields:
                c.report(
                    f"examples for `{name}` name no field of agent `{agent.name}`'s output"
                    f"{suggest(name, fields)}",
                    ("agents", agent.name, "examples", name),
                )


def _check_templates(c: RuleContext) -> None:
    try:
        from jinja2 import TemplateSyntaxError
        from jinja2.sandbox import SandboxedEnvironment
    except ImportError:  # the `ai` extra is not installed; the runner reports that itself
        return
    environment = SandboxedEnvironment()
    for agent in c.definition.agents.values():
        for key, text in (("instructions", agent.instructions), ("input", agent.input)):
            if text is None:
                continue
            try:
                environment.parse(text)
            except TemplateSyntaxError as exc:
                line = f" (line {exc.lineno} of the template)" if "\n" in text.strip() else ""
                c.report(
                    f"`{key}` of agent `{agent.name}` is not a valid Jinja2 template: "
                    f"{exc.message or exc}{line}",
                    ("agents", agent.name, key),
                )


def _check_tools(c: RuleContext) -> None:
    registered = c.registered
    if registered is None:
        return
    listing = ", ".join(sorted(registered)) or "none"
    for agent in c.definition.agents.values():
        for index, tool in enumerate(agent.tools):
            if tool not in registered:
                c.report(
                    f"tool `{tool}` of agent `{agent.name}` is not registered"
                    f"{suggest(tool, registered)} (registered: {listing})",
                    ("agents", agent.name, "tools", index),
                )


def _check_agent_ranges(c: RuleContext) -> None:
    for agent in c.definition.agents.values():
        if agent.max_tool_rounds < 0:
            c.report(
                f"`max_tool_rounds` cannot be negative (got {agent.max_tool_rounds})",
                ("agents", agent.name, "max_tool_rounds"),
            )


AGENT_RULES: tuple[Callable[[RuleContext], None], ...] = (
    _check_agent_references,
    _check_outputs,
    _check_examples,
    _check_templates,
    _check_tools,
    _check_agent_ranges,
)
