"""What a validation rule may ask of the validation run: one protocol for every rule module.

Rules live in modules by topic (agents, types, templates, retries, webhooks) and receive the
run that checks a definition; this protocol is all of it they may use, so a rule module never
imports the validator (which imports the rules).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from statewise.definition.declared_types import Declarations
    from statewise.definition.model import Definition
    from statewise.definition.schema import Path


class RuleContext(Protocol):
    """The definition being checked, what the run knows beside it, and where to report."""

    @property
    def definition(self) -> Definition:
        """The definition being checked."""
        ...

    @property
    def declared(self) -> Declarations:
        """Declared inputs, registered names and registered models' schemas."""
        ...

    @property
    def registered(self) -> frozenset[str] | None:
        """Registered command, tool and output model names; ``None`` skips those checks."""
        ...

    @property
    def complete(self) -> bool:
        """Whether every state parsed, so every context key and its writer is known."""
        ...

    def report(self, message: str, path: Path) -> None:
        """Record a problem at the YAML ``path``."""
        ...
