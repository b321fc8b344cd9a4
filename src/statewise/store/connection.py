"""The small seam between the shared store logic and a dialect: a connection and SQL fragments.

The shared logic (commits, queries, workflows, migrations) is written once against
``Connection`` with ``?`` placeholders; each dialect adapts its driver's connection to it and
supplies the few pieces of SQL that differ (``Dialect``). Every helper that takes a
``Connection`` runs inside its caller's transaction and never commits.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Sequence
from typing import Any, Protocol

Row = tuple[Any, ...]
Ref = tuple[str, str]


class Connection(Protocol):
    """A connection inside an open transaction, speaking SQL with ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; its rows (none for a statement that returns none)."""

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters (nothing when ``rows`` is empty)."""


class Dialect(Protocol):
    """What the shared logic asks of a dialect beyond plain SQL; ``SQLStore`` subclasses it."""

    lock_rows: str
    """Appended to a SELECT whose rows the transaction will change (``FOR UPDATE`` or "")."""

    json_usage: str
    """The ``usage`` object of a history row's detail, as an expression on ``h.detail``."""

    json_review: str
    """The ``review`` of a task decision in a history row's detail, on ``h.detail``."""

    lock_counts: str
    """A statement that keeps every other writer off the kept counts until the transaction
    ends ("" where the write transaction already does: SQLite's single writer)."""

    @abstractmethod
    def select_items_txn(
        self, db: Connection, columns: str, refs: Sequence[Ref], *, lock: bool = False
    ) -> list[Row]:
        """Item rows by (workflow, key).

        ``lock`` also locks them until the transaction ends, in a fixed order (PostgreSQL) or
        under the single writer's lock (SQLite).
        """

    @abstractmethod
    def reserve_outbox_ids_txn(self, db: Connection, count: int) -> Sequence[int]:
        """``count`` fresh outbox ids, so that one ``executemany`` inserts the rows."""

    @abstractmethod
    def tally_shard_txn(self, db: Connection) -> int:
        """The shard of the kept counts and flows this transaction writes (``store.tally``).

        One no concurrent transaction writes, where the dialect has concurrent writers.
        """

    @abstractmethod
    def escalation_txn(self, db: Connection, workflow: str, version: int) -> str | None:
        """The escalation state of a stored (workflow, version); None when it is not stored."""

    @abstractmethod
    def notify_txn(self, db: Connection) -> None:
        """Tell waiting workers, once the transaction commits, that new work was queued."""

    @abstractmethod
    def any_of(self, column: str, values: Collection[Any]) -> tuple[str, list[Any]]:
        """A condition ``column`` is one of ``values``, and its parameters."""

    @abstractmethod
    def contains(self, column: str) -> str:
        """A condition: ``column`` holds the one parameter as a literal, case-sensitive part."""

    @abstractmethod
    def json_text(self, expression: str, name: str) -> str:
        """A text field of a JSON object expression: ``json_text("u", "agent")``."""

    @abstractmethod
    def json_number(self, expression: str, name: str) -> str:
        """A numeric field of a JSON object expression."""

    @abstractmethod
    def floor(self, expression: str) -> str:
        """The largest whole number not above a numeric expression (negatives included)."""

    @abstractmethod
    def octets(self, expression: str) -> str:
        """The size of a text expression in UTF-8 bytes (NULL for NULL), the same on every store."""
