"""An agent's tools: registered Python functions offered to the model, and what it did with them.

A tool is a plain typed function registered with ``@registry.tool()``. pydantic-ai turns its
signature into the parameter schema and its docstring into the description (including the
``Args:`` section, one description per parameter), and validates the model's arguments before
calling it; invalid arguments go back to the model as a retry, not to the function.

Each call is recorded for the audit trail from the run's messages, as ``{name, args, result}``,
so a failed run reports the calls it made before it failed just like a successful one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic_ai import Tool
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_core import to_jsonable_python

from statewise.contract import CommandRegistry

JSON = Any
ToolCall = dict[str, JSON]


def agent_tools(registry: CommandRegistry, names: Sequence[str]) -> list[Tool[None]]:
    """The registered functions ``names`` as pydantic-ai tools (unknown names fail here)."""
    return [Tool(registry.get_tool(name), name=name, takes_ctx=False) for name in names]


def tool_calls(messages: Iterable[ModelMessage], names: Iterable[str]) -> list[ToolCall]:
    """Every call of one of the tools ``names``, in order, with its arguments and result.

    A call the model made with arguments that failed validation has the validation error as
    its result, because that is what the model was told.
    """
    wanted = frozenset(names)
    calls: dict[str, ToolCall] = {}
    for message in messages:
        if isinstance(message, ModelResponse):
            for call in message.parts:
                if isinstance(call, ToolCallPart) and call.tool_name in wanted:
                    calls[call.tool_call_id] = {
                        "name": call.tool_name,
                        "args": _arguments(call),
                        "result": None,
                    }
        elif isinstance(message, ModelRequest):
            for answer in message.parts:
                if isinstance(answer, ToolReturnPart) and answer.tool_call_id in calls:
                    calls[answer.tool_call_id]["result"] = _jsonable(answer.content)
    return list(calls.values())


def _arguments(part: ToolCallPart) -> JSON:
    """The arguments as an object, or as the raw text the model sent if that was not JSON."""
    try:
        return part.args_as_dict(raise_if_invalid=True)
    except (ValueError, AssertionError):
        return part.args if isinstance(part.args, str) else str(part.args)


def _jsonable(value: JSON) -> JSON:
    """The result as JSON (models and dataclasses included): the audit row must serialise."""
    return to_jsonable_python(value, fallback=str)
