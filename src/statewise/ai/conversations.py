"""Per-item conversations: stored in the store, pruned to a token budget, readable by others.

An agent with ``conversation: per_item`` continues the same conversation each time it runs
for an item (a revision loop sees the reviewer's feedback and its own earlier drafts). The
history is kept as pydantic-ai's own serialised messages, so it is fed back to any provider
exactly. Only such agents store a conversation; a supervisor can read every stored one through
:func:`transcripts`.

Pruning drops whole exchanges, oldest first: an exchange starts at a request that carries a
user prompt and runs until the next one, so a tool call is never separated from its result
(providers reject a history that starts with an orphaned tool result). The newest exchange is
always kept, even when it alone is over the budget. Tokens are estimated at four characters
each; exact counts would need each provider's tokenizer, and the budget is a bound on cost,
not an exact quota.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import ValidationError
from pydantic_ai import ModelMessagesTypeAdapter
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    RetryFeedbackPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from statewise.ai.schema import OUTPUT_TOOL
from statewise.errors import PermanentError

CHARS_PER_TOKEN = 4
Transcript = list[dict[str, str]]


def load(agent: str, stored: str | None) -> list[ModelMessage]:
    """The messages of a stored conversation (empty if there is none)."""
    if not stored:
        return []
    try:
        return list(ModelMessagesTypeAdapter.validate_json(stored))
    except ValidationError as exc:
        raise PermanentError(
            f"the stored conversation of agent {agent!r} cannot be read ({exc.error_count()} "
            f"problems); it was written by an incompatible version"
        ) from None


def dump(messages: Sequence[ModelMessage]) -> str:
    """The form a conversation is stored in."""
    return ModelMessagesTypeAdapter.dump_json(list(messages)).decode("utf-8")


def prune(messages: Sequence[ModelMessage], budget: int) -> list[ModelMessage]:
    """Drop the oldest whole exchanges until the estimate fits ``budget`` tokens."""
    exchanges = _exchanges(messages)
    sizes = [estimate_tokens(exchange) for exchange in exchanges]
    total = sum(sizes)
    first = 0
    while total > budget and first < len(exchanges) - 1:
        total -= sizes[first]
        first += 1
    return [message for exchange in exchanges[first:] for message in exchange]


def _exchanges(messages: Sequence[ModelMessage]) -> list[list[ModelMessage]]:
    exchanges: list[list[ModelMessage]] = []
    for message in messages:
        if _opens_exchange(message) or not exchanges:
            exchanges.append([])
        exchanges[-1].append(message)
    return exchanges


def _opens_exchange(message: ModelMessage) -> bool:
    return isinstance(message, ModelRequest) and any(
        isinstance(part, UserPromptPart) for part in message.parts
    )


def estimate_tokens(messages: Sequence[ModelMessage]) -> int:
    """Roughly how many tokens ``messages`` take, from the length of their text."""
    characters = sum(len(entry["text"]) for entry in transcript(messages, with_feedback=True))
    return -(-characters // CHARS_PER_TOKEN)


def transcripts(stored: Mapping[str, str]) -> dict[str, Transcript]:
    """Every stored conversation of an item as ``{role, text}`` lists, by agent name."""
    return {agent: transcript(load(agent, raw)) for agent, raw in stored.items()}


def transcript(messages: Sequence[ModelMessage], *, with_feedback: bool = False) -> Transcript:
    """What was said, in order: ``user`` prompts, ``assistant`` replies, ``tool`` calls.

    A structured reply (the output tool's arguments) is the assistant's answer, as JSON.
    ``with_feedback`` also includes the validation errors pydantic-ai sent back.
    """
    entries: Transcript = []
    for message in messages:
        for part in message.parts:
            entry = _entry(part, with_feedback)
            if entry is not None:
                entries.append({"role": entry[0], "text": entry[1]})
    return entries


def _entry(part: object, with_feedback: bool) -> tuple[str, str] | None:
    match part:
        case UserPromptPart(content=str() as text):
            return "user", text
        case UserPromptPart(content=content):
            return "user", " ".join(c for c in content if isinstance(c, str))
        case TextPart(content=text):
            return "assistant", text
        case ToolCallPart(tool_name=name) if name == OUTPUT_TOOL:
            return "assistant", part.args_as_json_str()
        case ToolCallPart(tool_name=name):
            return "tool", f"{name}({part.args_as_json_str()})"
        case ToolReturnPart(tool_name=name) if name != OUTPUT_TOOL or with_feedback:
            return "tool", f"{name} returned {part.model_response_str()}"
        case RetryFeedbackPart() if with_feedback:
            return "user", part.model_response()
    return None


def new_history(
    history: Sequence[ModelMessage], new: Sequence[ModelMessage], budget: int
) -> list[ModelMessage]:
    """The conversation to store after a run: the old one, the new messages, pruned."""
    return prune([*history, *new], budget)
