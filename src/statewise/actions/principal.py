"""Who is acting: the name and role of a token, never its secret."""

from __future__ import annotations

from dataclasses import dataclass

from statewise.definition.model import Role
from statewise.store.base import Task


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
