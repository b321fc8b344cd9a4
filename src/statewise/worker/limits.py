"""Concurrency limits a worker keeps per state and per command (an agent is a command).

Providers are limited in the AI layer (requests in flight and per minute); these limits are
about the process: a state whose command is heavy, or an agent that must not have more than a
few conversations at once, no matter how much other work is ready. They are per worker
process; a fleet's total is the sum over its workers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from statewise.definition.model import agent_command
from statewise.engine.effects import RunCommand
from statewise.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class ConcurrencyLimits:
    """At most ``states[name]`` commands of that state, ``commands[name]`` of that command."""

    states: Mapping[str, int] = field(default_factory=dict)
    commands: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, table in (("state", self.states), ("command", self.commands)):
            for name, limit in table.items():
                if limit < 1:
                    raise ConfigurationError(f"the limit of {kind} {name!r} must be at least 1")

    @classmethod
    def parse(cls, states: Iterable[str] = (), agents: Iterable[str] = ()) -> ConcurrencyLimits:
        """Limits from ``NAME=N`` texts, as the command line gives them."""
        return cls(
            states=dict(_pair(text, "--state-limit") for text in states),
            commands={agent_command(n): v for n, v in (_pair(t, "--agent-limit") for t in agents)},
        )

    def allows(self, effect: RunCommand, running: Counter[str]) -> bool:
        """Whether one more attempt of ``effect`` fits beside the ``running`` ones."""
        state_limit = self.states.get(effect.state)
        if state_limit is not None and running[_state(effect.state)] >= state_limit:
            return False
        command_limit = self.commands.get(effect.command)
        return command_limit is None or running[_command(effect.command)] < command_limit

    @staticmethod
    def count(running: Iterable[RunCommand]) -> Counter[str]:
        """What ``allows`` compares against: running attempts by state and by command."""
        counts: Counter[str] = Counter()
        for effect in running:
            counts[_state(effect.state)] += 1
            counts[_command(effect.command)] += 1
        return counts


def _state(name: str) -> str:
    return "state\x1f" + name


def _command(name: str) -> str:
    return "command\x1f" + name


def _pair(text: str, option: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value.strip().isdigit() or int(value) < 1:
        raise ConfigurationError(f"{option} takes NAME=N with N at least 1, not {text!r}")
    return name.strip(), int(value)
