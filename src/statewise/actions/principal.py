"""Who is acting: the name and role of a token, never its secret."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from statewise.definition.model import Role
from statewise.definition.schema import IDENTIFIER
from statewise.store.base import Task

MAX_NAME = 100
MAX_QUEUES = 100


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a token; None when it can.

    A token's name is an identity in claims and the audit trail, and names that print the
    same must be the same name: blanks, surrounding whitespace, control characters (NUL,
    U+001F), invisible format characters (a zero-width space makes a second ``reviewer``) and
    decomposed accents (``e`` + U+0301 prints as ``é``) are refused.
    """
    if not name.strip():
        return "a token name cannot be empty or blank"
    if name != name.strip():
        return "a token name cannot start or end with whitespace"
    if len(name) > MAX_NAME:
        return f"a token name has at most {MAX_NAME} characters, not {len(name)}"
    bad = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        return f"a token name cannot contain control characters (it has U+{ord(bad):04X})"
    hidden = next((c for c in name if unicodedata.category(c) == "Cf"), None)
    if hidden is not None:
        return (
            f"a token name cannot contain invisible format characters (it has U+{ord(hidden):04X})"
        )
    composed = unicodedata.normalize("NFC", name)
    if composed != name:
        return f"a token name must be in composed Unicode (NFC), as {composed!r}"
    return None


def queues_problem(queues: Sequence[str]) -> str | None:
    """Why ``queues`` cannot limit a token; None when they can.

    Each must be a name a workflow can give a task queue: a typo would leave the reviewer
    an empty inbox, and control characters or a lone surrogate cannot be shown or stored.
    """
    if len(queues) > MAX_QUEUES:
        return f"a token has at most {MAX_QUEUES} queues, not {len(queues)}"
    for queue in queues:
        if len(queue) > MAX_NAME:
            return f"a queue name has at most {MAX_NAME} characters, not {len(queue)}"
        if not IDENTIFIER.match(queue):
            return (
                f"queue {queue!r} is not a name a workflow can give a queue: lower-case "
                "letters, digits and `_`, not starting with a digit"
            )
    return None


@dataclass(frozen=True, slots=True)
class Principal:
    """A person or system holding a token; ``queues`` empty means every task queue.

    ``source`` says how they came in: a token of the service, or the command line.
    """

    name: str
    role: Role
    queues: tuple[str, ...] = ()
    source: str = "token"

    @property
    def actor(self) -> str:
        """How the audit trail names this principal."""
        return f"{self.source}:{self.name}"

    def may_see_queue(self, queue: str) -> bool:
        """Whether the token's queue list admits ``queue``."""
        return not self.queues or queue in self.queues

    def may_work_on(self, task: Task) -> bool:
        """Whether this principal may claim, release or decide ``task``."""
        return self.may_see_queue(task.queue) and self.role.allows(Role(task.role))
