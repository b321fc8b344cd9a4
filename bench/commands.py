"""Commands of the benchmark workflow: deterministic, and instant unless given a latency.

``registry`` (instant commands) is what ``statewise run --commands bench/commands.py`` picks up;
the benchmark builds its own with :func:`build_registry` to add a simulated model latency,
optionally jittered (uniform in ``latency * [1 - jitter, 1 + jitter)``, drawn from the
attempt's idempotency key, so the same run sleeps the same total every time).

Scores are drawn from a hash of the item key, so a run is reproducible: a first review gives
``score < REVISION_THRESHOLD`` to about ``REVISION_THRESHOLD`` of the items, which then go back to
``enrich`` once; a revised draft always passes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from statewise.contract import CommandContext, CommandRegistry

JSON = Any
REVISION_THRESHOLD = 0.3
LANGUAGES = ("de", "fr", "ja")
Handler = Callable[[CommandContext], JSON]
Command = Callable[[CommandContext], Awaitable[JSON]]


def key_score(key: str) -> float:
    """A stable pseudo-random number in [0, 1) drawn from an item key."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def needs_revision(key: str) -> bool:
    """Whether the first review of ``key`` sends it back to ``enrich`` (the loop taken once)."""
    return key_score(key) < REVISION_THRESHOLD


def _intake(call: CommandContext) -> JSON:
    return {"accepted": True, "title": call.context.get("title", call.key)}


def _validate(call: CommandContext) -> JSON:
    return {"valid": bool(call.context.get("title"))}


def _enrich(call: CommandContext) -> JSON:
    previous = call.context.get("enrich") or {}
    return {"revision": int(previous.get("revision", 0)) + 1, "words": 120}


def _review(call: CommandContext) -> JSON:
    revision = int((call.context.get("enrich") or {}).get("revision", 1))
    score = key_score(call.key) if revision == 1 else 0.9
    return {"score": round(score, 4)}


def _translate(call: CommandContext) -> JSON:
    return {"language": call.input, "chars": 640}


def _quality(call: CommandContext) -> JSON:
    return {"passed": True}


HANDLERS: dict[str, Handler] = {
    "intake": _intake,
    "validate": _validate,
    "enrich": _enrich,
    "review": _review,
    "translate": _translate,
    "quality": _quality,
}


@dataclass
class Ledger:
    """What the commands did: how many ran and how long they slept in total."""

    executions: int = 0
    slept: float = 0.0


@dataclass(frozen=True, slots=True)
class Latency:
    """Simulated model latency: ``seconds`` on average, spread by ``jitter`` (0 to 1)."""

    seconds: float = 0.0
    jitter: float = 0.0

    def of(self, call: CommandContext) -> float:
        """The latency of one attempt, fixed by its idempotency key."""
        if not self.jitter:
            return self.seconds
        spread = 2 * key_score(call.idempotency_key) - 1
        return self.seconds * (1 + self.jitter * spread)


def _as_command(handler: Handler, latency: Latency, ledger: Ledger) -> Command:
    """An async command that sleeps its latency (if any), then runs ``handler``."""

    async def command(call: CommandContext) -> JSON:
        seconds = latency.of(call)
        ledger.executions += 1
        ledger.slept += seconds
        if seconds > 0:
            await asyncio.sleep(seconds)
        return handler(call)

    return command


def build_commands(latency: Latency, ledger: Ledger) -> dict[str, Command]:
    """Every command of the workflow by name, sleeping ``latency``, counted in ``ledger``.

    The durable baseline calls these directly, so both engines run the very same commands.
    """
    return {name: _as_command(handler, latency, ledger) for name, handler in HANDLERS.items()}


def build_registry(latency: Latency | None = None, ledger: Ledger | None = None) -> CommandRegistry:
    """Every command of the workflow with ``latency`` (none: instant), counted in ``ledger``."""
    built = CommandRegistry()
    for name, command in build_commands(latency or Latency(), ledger or Ledger()).items():
        built.register(name, command)
    return built


registry = build_registry()
