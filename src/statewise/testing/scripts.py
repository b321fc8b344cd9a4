"""Scripted agent replies and fake commands: what a test puts in place of models and services.

Both are ordinary commands in the registry the test's runner uses, so the engine, the retry
policy and the audit trail treat them exactly as the real thing: an agent's scripted reply is
checked against the agent's declared output (a reply that does not fit fails the attempt as
``invalid_output``, as a model's would), and a raised error is classified like any command's.
Nothing here calls a model or the network.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from statewise.contract import CommandContext, CommandRegistry, CommandResult
from statewise.definition.data_schema import schema_problems
from statewise.definition.model import AgentSpec
from statewise.errors import ConfigurationError, InvalidOutputError

JSON = Any
Reply: TypeAlias = JSON | BaseException | Callable[[CommandContext], JSON]
"""A scripted answer: a JSON value, an exception to raise, or a function of the context."""

SCRIPTED_MODEL = "scripted"


@dataclass
class Calls:
    """The contexts a fake was called with, in order (thread-safe: sync commands run in threads)."""

    contexts: list[CommandContext] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, ctx: CommandContext) -> int:
        """Remember one call; returns its index (0 for the first)."""
        with self._lock:
            self.contexts.append(ctx)
            return len(self.contexts) - 1


def answer(reply: Reply, ctx: CommandContext) -> JSON:
    """What ``reply`` gives for this call: raises an exception, calls a function, copies data."""
    if isinstance(reply, BaseException):
        raise reply
    if callable(reply):
        return reply(ctx)
    return copy.deepcopy(reply)


class FakeCommand:
    """A command replaced by a test: a fixed result, an error to raise, or a function."""

    def __init__(self, name: str, reply: Reply) -> None:
        self.name = name
        self.reply = reply
        self.calls = Calls()

    def __call__(self, ctx: CommandContext) -> JSON:
        """Answer as scripted, remembering the call."""
        self.calls.record(ctx)
        return answer(self.reply, ctx)


class Unscripted(ConfigurationError):
    """An agent ran that the test gave no reply for; the test, not the workflow, is at fault."""


class ScriptedAgent:
    """The command ``agent:NAME`` answering with the test's replies, in order.

    One reply answers every call; several answer the calls in turn, the last one every call
    after. An agent with no reply fails its attempt with :class:`Unscripted`, which the test
    harness reports as the test's mistake.
    """

    def __init__(self, spec: AgentSpec, registry: CommandRegistry) -> None:
        self.spec = spec
        self.registry = registry
        self.replies: list[Reply] = []
        self.calls = Calls()
        self.unscripted: list[str] = []
        self._answered = 0

    def script(self, replies: Sequence[Reply]) -> None:
        """Answer the coming calls with ``replies``, from the first (replacing any script)."""
        self.replies = list(replies)
        self._answered = 0

    async def __call__(self, ctx: CommandContext) -> CommandResult:
        """Answer the call with the next scripted reply, checked against the agent's output."""
        self.calls.record(ctx)
        if not self.replies:
            message = (
                f"agent {self.spec.name!r} ran for item {ctx.key!r} in state {ctx.state!r}, "
                f"but the test scripted no reply for it; add "
                f"`flow.agent({self.spec.name!r}, {{...}})` before the item reaches it"
            )
            self.unscripted.append(message)
            raise Unscripted(message)
        reply = self.replies[min(self._answered, len(self.replies) - 1)]
        self._answered += 1
        return CommandResult(self._checked(answer(reply, ctx)), usage=self._usage())

    def _checked(self, value: JSON) -> JSON:
        """The reply as a model's would be stored; one that breaks the output is refused."""
        output = self.spec.output
        if isinstance(output, str):
            model = self.registry.get_output_model(output)
            return model.model_validate(value).model_dump(mode="json")
        if isinstance(output, Mapping):
            problems = (
                schema_problems(output, value, root="reply")
                if isinstance(value, Mapping)
                else [f"the reply must be an object, not {value!r}"]
            )
            if problems:
                raise InvalidOutputError(
                    f"the scripted reply of agent {self.spec.name!r} does not fit its "
                    f"output: {'; '.join(problems)}"
                )
        return value

    def _usage(self) -> dict[str, JSON]:
        """The audit record of a scripted run: it names the agent and spent nothing."""
        return {
            "agent": self.spec.name,
            "provider": SCRIPTED_MODEL,
            "model": SCRIPTED_MODEL,
            "input_tokens": 0,
            "output_tokens": 0,
            "requests": 0,
            "cost": 0.0,
            "latency": 0.0,
            "tool_calls": [],
            "cached": False,
            "outcome": "ok",
            "instructions": "",
            "output_mode": SCRIPTED_MODEL,
        }
