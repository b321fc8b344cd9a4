"""An agent's output schema: what the model is shown, and the check its reply must pass.

An inline schema is given to the model unchanged (pydantic-ai's ``StructuredDict``), but
``StructuredDict`` itself only checks that the reply is an object. The reply is therefore
checked here against the schema with the ``jsonschema`` library, and every violation is handed
back to the model as a ``ModelRetry``, so it sees exactly what to fix before the attempt is
given up as invalid output.

An output named instead (``output: Triage``) is a pydantic model registered with
``@registry.output_model()``. pydantic-ai shows the model the class's JSON Schema and validates
the reply with the class itself, its own validators included, handing their errors back to the
model the same way; the value stored is the instance's ``model_dump(mode="json")``.

Schemas are read as Draft 2020-12 unless they name another dialect in ``$schema``. Only local
``$ref`` resolve (nothing is fetched), and annotations such as ``format`` are not checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel
from pydantic_ai import ModelRetry, NativeOutput, PromptedOutput, StructuredDict, ToolOutput
from referencing.exceptions import Unresolvable

from statewise.contract import CommandRegistry
from statewise.errors import ConfigurationError, NotFoundError

JSON = Any
T = TypeVar("T")
# The name of the tool a structured reply is given through, so transcripts can recognise it.
OUTPUT_TOOL = "final_result"
AUTO = "auto"
# The modes ``auto`` tries, in order: the strongest guarantee first (see ``output_spec``).
OUTPUT_MODES = ("tool", "tool-auto", "native", "prompted-json", "prompted")
Schema = Mapping[str, Any]
_MAX_REPORTED = 10


def output_model(registry: CommandRegistry, agent: str, name: str) -> type[BaseModel]:
    """The registered output model ``name`` of ``agent``; a missing one fails registration."""
    try:
        return registry.get_output_model(name)
    except NotFoundError as exc:
        raise NotFoundError(
            f"agent {agent!r}: {exc} (register it with @registry.output_model(), in a "
            f"--commands module or the registry given to register_agents)"
        ) from None


def check_mode(agent: str, mode: str) -> str:
    """``mode`` if it is an output mode or ``auto``; else a configuration error listing them."""
    if mode != AUTO and mode not in OUTPUT_MODES:
        raise ConfigurationError(
            f"agent {agent!r}: output_mode must be {AUTO} or one of {', '.join(OUTPUT_MODES)}, "
            f"not {mode!r}"
        )
    return mode


def output_spec(agent: str, schema: Schema | type[BaseModel] | None, mode: str = "tool") -> Any:
    """What pydantic-ai should ask the model for: text, or the output in one of five ways.

    ``schema`` is an inline JSON Schema or a registered pydantic model class. ``tool`` (the
    default for hosted providers) has the model call an output tool whose parameters are the
    schema, with ``tool_choice: required``; ``tool-auto`` the same with ``tool_choice: auto``
    (llama.cpp asserts on anything else); ``native`` uses the JSON-schema response format;
    ``prompted-json`` puts the schema in the prompt and asks for ``response_format:
    json_object``; ``prompted`` only puts it in the prompt and parses the text reply. How each
    mode reaches the wire is pydantic-ai's profile (:func:`mode_profile`).
    """
    if schema is None:
        return str
    check_mode(agent, mode)
    structured = (
        schema if isinstance(schema, type) else StructuredDict(dict(schema), name=f"{agent}_output")
    )
    if mode == "native":
        return NativeOutput(structured)
    if mode in ("prompted", "prompted-json"):
        return PromptedOutput(structured)
    return ToolOutput(structured, name=OUTPUT_TOOL)


def mode_profile(mode: str) -> dict[str, bool]:
    """What pydantic-ai must believe of the model for ``mode`` to go out as documented.

    A forced tool choice is pydantic-ai's default; ``tool-auto`` tells it the model accepts
    none, so it sends ``auto``. The prompted modes differ only in whether a ``json_object``
    response format is sent; ``native`` needs the JSON-schema format to be believed in.
    """
    return {
        "tool-auto": {"supports_forced_tool_choice": False},
        "native": {"supports_json_schema_output": True},
        "prompted-json": {"supports_json_object_output": True},
        "prompted": {"supports_json_object_output": False},
    }.get(mode, {})


def check_output(schema: Schema, value: T) -> T:
    """Return ``value`` if it satisfies ``schema``; otherwise ask the model to fix it."""
    problems = schema_errors(schema, value)
    if problems:
        shown = problems[:_MAX_REPORTED]
        hidden = len(problems) - len(shown)
        more = f"\n- ... and {hidden} more" if hidden else ""
        listing = "\n".join(f"- {p}" for p in shown)
        raise ModelRetry(f"The output does not match the required JSON Schema:\n{listing}{more}")
    return value


def schema_errors(schema: Schema | bool, value: JSON) -> list[str]:
    """Every way ``value`` violates ``schema``, each prefixed with its JSON path, in path order.

    A schema that is not valid JSON Schema, or whose ``$ref`` cannot be resolved, raises a
    :class:`StatewiseError`: the workflow author has to fix it, not the model.
    """
    validator_class = validator_for(schema, default=Draft202012Validator)
    try:
        # The stubs take only a dict here; any schema, booleans included, works.
        validator_class.check_schema(cast(dict[str, Any], schema))
        errors = sorted(validator_class(schema).iter_errors(value), key=lambda e: e.path)
    except SchemaError as exc:
        raise ConfigurationError(
            f"the output schema is not valid JSON Schema: {exc.json_path}: {exc.message}"
        ) from None
    except Unresolvable as exc:
        raise ConfigurationError(
            f"the output schema has a $ref that cannot be resolved: {exc}"
        ) from None
    return [f"{error.json_path}: {error.message}" for error in errors]
