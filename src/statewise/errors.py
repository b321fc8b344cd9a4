"""The one exception tree of statewise, split by who has to act.

::

    StatewiseError                  code
    ├── DefinitionError             definition    the workflow author fixes the YAML or builder
    ├── ConfigurationError          configuration  the operator fixes a module, option or file
    │   └── ExternalProgramError    external_program  a program (Graphviz) is missing or broke
    ├── InvalidInputError           invalid_input  the caller fixes an argument, line or request
    ├── CommandError                command       a command failed; the engine classifies it
    │   ├── TransientError          transient     worth retrying (timeouts, rate limits, I/O)
    │   │   └── TimedOutError       transient     it ran out of time (``on_timeout`` routes it)
    │   ├── InvalidOutputError      invalid_output  the result was not usable; retry may help
    │   ├── PermanentError          permanent     retrying cannot help; a business failure
    │   │   └── UnsupportedRequestError  unsupported_request  the model server refuses a feature
    │   ├── CommandDefectError      command_error the command raised what it did not mean to
    │   └── BudgetExceededError     budget        the item's model budget ran out mid-run
    ├── ConditionError              condition     a condition could not be evaluated at run time
    ├── StoreError                  store         the database refused or broke
    │   ├── TransientStoreError     store_unavailable  the database is briefly unreachable; retry
    │   ├── StaleLeaseError         stale_lease   another worker owns the item now
    │   ├── RunnerLockError         runner_lock   another process runs this (SQLite) store
    │   └── VersionConflictError    version_conflict  a stored (workflow, version) was edited
    ├── ItemFailure                 item_failure  one item cannot go on; it is quarantined alone
    ├── NotFoundError               not_found     an item, workflow, file or event does not exist
    ├── ConflictError               conflict      a name that must be unique is already held
    ├── InvalidEventError           invalid_event the item cannot accept this event now
    ├── TaskError                   task          a human task cannot be claimed or decided so
    └── RunnerStopped               runner_stopped  the workers stopped and could not restart

The base class is never raised itself: every error names who has to act. Authentication and
roles are the service's own concern: it answers 401 and 403 there, with the same JSON shape
(``service/auth.py``); a task's queue or role refusing a reviewer is a ``TaskError``.

Every exception has a stable ``code`` for the API and the audit trail, and pickles cleanly
(its constructor arguments are kept in ``args``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class StatewiseError(Exception):
    """Base of every error statewise raises on purpose."""

    code = "statewise"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a definition, with where it is and how to fix it."""

    message: str
    file: str = "<definition>"
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class DefinitionError(StatewiseError):
    """A workflow definition is invalid; ``problems`` lists every issue, not just the first."""

    code = "definition"

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
        self.args = (list(self.problems),)


class ConfigurationError(StatewiseError):
    """What this process was set up with cannot work: a command module, an option, a file.

    Raised before any item changes (a module that defines no registry, a limit below 1, a
    price file that does not parse, an agent's unknown model or setting); the message says
    what to fix.
    """

    code = "configuration"


class ExternalProgramError(ConfigurationError):
    """An external program a feature needs is not installed, or failed (Graphviz's ``dot``).

    The message names the program, how to install it, and what works without it.
    """

    code = "external_program"


class InvalidInputError(StatewiseError, ValueError):
    """Input given to a command or request cannot be used as given; nothing changed.

    An items file line that is not a JSON object with a key, a bulk operation without a
    reason, a cursor this API never gave out, a key, id or document that breaks the input
    rules (``statewise.inputs``). It is also a ValueError, so a pydantic validator that raises
    it reports a validation error (422), not a crash.
    """

    code = "invalid_input"


class CommandError(StatewiseError):
    """A command failed. Raise a subclass from a command to say whether to retry.

    ``retry_after`` asks for at least that many seconds before the next attempt (a provider's
    Retry-After); ``usage`` is what the failed attempt still cost (tokens, model), for the
    audit trail.
    """

    code = "command"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        usage: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.usage = usage

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_command_error, (type(self), self.message, self.retry_after, self.usage))


def _rebuild_command_error(
    cls: type[CommandError], message: str, retry_after: float | None, usage: dict[str, Any] | None
) -> CommandError:
    return cls(message, retry_after=retry_after, usage=usage)


class TransientError(CommandError):
    """Retrying may succeed: timeouts, rate limits, a service briefly down."""

    code = "transient"


class TimedOutError(TransientError):
    """The call ran out of time (a client's or a server's timeout): transient, a timeout.

    A state's ``retry: {on_timeout: previous}`` sends an item whose last attempt ended so (or
    in a ``TimeoutError``, or cut off at the attempt's timeout) back to its previous state.
    """


class InvalidOutputError(CommandError):
    """The command ran but its result was unusable (not JSON, wrong shape)."""

    code = "invalid_output"


class PermanentError(CommandError):
    """Retrying cannot help: bad input, a rejected request, a refusal the command means.

    Raise it on purpose for a business failure: without an ``on: error`` transition the item
    escalates to a person. Any exception a command did not mean to raise (a TypeError, a
    KeyError) is instead a defect in the command (``command_error``) and fails the item.
    """

    code = "permanent"


class UnsupportedRequestError(PermanentError):
    """The model server refused a parameter or feature of the request, not an outage.

    llama.cpp answering ``tool_choice: required`` with a 500, or vLLM saying auto tool choice
    needs a server flag: the operator changes the agent's ``output_mode`` or the server's
    flags. Never retried; ``output_mode: auto`` moves on to the next mode instead.
    """

    code = "unsupported_request"


class CommandDefectError(CommandError):
    """The command raised an exception it did not mean to: a bug in its code or in a tool.

    Wrapping layers (the agent runner) raise it in place of the foreign exception, whose
    message they scrub of secrets; the kind stays ``command_error``, a defect that fails the
    item unless an ``on: error`` transition takes it.
    """

    code = "command_error"


class BudgetExceededError(CommandError):
    """The run was cut short because it reached what the item's budget had left.

    Never retried and not a defect: the engine sends the item to the budget's
    ``on_exceeded`` state, as it does when a budget is already spent before a call.
    """

    code = "budget"


class ConditionError(StatewiseError):
    """A compiled condition failed at run time, for example by reading a missing key."""

    code = "condition"


class StoreError(StatewiseError):
    """The store could not do what was asked."""

    code = "store"


class TransientStoreError(StoreError):
    """The database was unreachable for a moment, so the same call may succeed later.

    A dropped connection, a server restarting, too many connections, a SQLite file locked by
    another writer. Nothing was changed (or the change is fenced, so doing it again is safe):
    the store has already retried with backoff, and the caller may retry later. The service
    answers 503 with Retry-After; the runner's loop waits and goes on.
    """

    code = "store_unavailable"


class StaleLeaseError(StoreError):
    """A worker tried to commit a step for an item another worker has moved since."""

    code = "stale_lease"


class RunnerLockError(StoreError):
    """Another process holds a SQLite store's single-runner lock; ``holder`` names it.

    That process performs the store's work, so a command that only queued work can leave it
    to that process and still succeed.
    """

    code = "runner_lock"

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder
        self.args = (message, holder)


class VersionConflictError(StoreError):
    """A workflow file changed but kept a version the store already holds with other content.

    A stored (workflow, version) is immutable so that items run on exactly the definition they
    started on; the message says what differs and to bump ``version``.
    """

    code = "version_conflict"


class ItemFailure(StatewiseError):
    """Something an item carries makes it impossible to step (an unknown version, a loop).

    The runner records it on that item alone (status ``failed``) and goes on with the others.
    """

    code = "item_failure"


class NotFoundError(StatewiseError):
    """An item, workflow, state or event that was named does not exist."""

    code = "not_found"


class ConflictError(StatewiseError):
    """Something that must be unique already exists (an active token's name); nothing changed."""

    code = "conflict"


class InvalidEventError(StatewiseError):
    """The item cannot accept this event in its current state."""

    code = "invalid_event"


class TaskError(StatewiseError):
    """A human task cannot be claimed, released or decided as asked; nothing changed.

    The message says why: already decided or expired, claimed by someone else, an outcome
    the task does not offer, form data that does not fit the form.
    """

    code = "task"


class RunnerStopped(StatewiseError):
    """The workers of a process stopped and could not be restarted within their budget.

    A process that is meant to perform work and cannot is an outage, not a warning: ``serve``
    and ``worker`` exit non-zero with this message so that their supervisor notices.
    """

    code = "runner_stopped"
