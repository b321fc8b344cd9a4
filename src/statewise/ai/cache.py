"""The optional response cache: an identical request is answered from the store.

Off by default (``AISettings.cache``), because a model call is not a pure function: the same
prompt may deserve a fresh answer. Turned on, re-running a workflow over the same items costs
nothing. The key is a SHA-256 over everything that shapes the reply: the model, the rendered
instructions and input, the output schema and the conversation history fed back. A hit returns
the stored value and, for a per-item conversation, the messages that produced it, so the
conversation continues as if the model had been called. Tools are not called again on a hit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_ai import ModelMessagesTypeAdapter
from pydantic_ai.messages import ModelMessage

from statewise.ai import conversations
from statewise.store.base import Store

JSON = Any
_VERSION = 1  # bump when the stored shape or the key's inputs change


@dataclass(frozen=True, slots=True)
class CachedReply:
    """A stored reply: the output value and the messages of the run that produced it."""

    value: JSON
    messages: list[ModelMessage]


def cache_key(
    model: str,
    instructions: str,
    user_input: str,
    schema: Mapping[str, Any] | None,
    history: Sequence[ModelMessage],
) -> str:
    """The SHA-256 of everything that shapes the reply, in a canonical form."""
    material = {
        "version": _VERSION,
        "model": model,
        "instructions": instructions,
        "input": user_input,
        "schema": schema,
        "history": conversations.transcript(history, with_feedback=True),
    }
    canonical = json.dumps(material, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def lookup(store: Store, key: str) -> CachedReply | None:
    """The stored reply for ``key``; an unreadable entry counts as a miss."""
    raw = await store.cached_response(key)
    if raw is None:
        return None
    try:
        stored = json.loads(raw)
        messages = ModelMessagesTypeAdapter.validate_python(stored["messages"])
    except (ValueError, KeyError, TypeError, ValidationError):
        return None
    return CachedReply(stored["value"], list(messages))


async def remember(store: Store, key: str, value: JSON, messages: Sequence[ModelMessage]) -> None:
    """Keep a reply for the next identical request."""
    stored = {
        "value": value,
        "messages": ModelMessagesTypeAdapter.dump_python(list(messages), mode="json"),
    }
    await store.cache_response(key, json.dumps(stored))
