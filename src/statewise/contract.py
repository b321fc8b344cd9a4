"""The command contract: what a command receives, what it returns, and where it is named.

Every part of statewise that gives the engine commands (the user's command modules, the AI
layer's agents, plugins found through entry points) and the worker that runs them meet here,
and only here: this module imports neither side, so the AI layer never imports the worker, and
the worker never imports the AI layer, to agree on these types.

Agents reach the worker the way plugins do: an ``AgentRegistrar`` named by an entry point of
the ``statewise.agents`` group, which the worker calls when a workflow declares agents. The
built-in AI layer is one such plugin, declared in statewise's own ``pyproject.toml``; another
distribution can declare its own, without the worker knowing its name.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar

from pydantic import BaseModel

from statewise.errors import ConfigurationError, NotFoundError

if TYPE_CHECKING:
    from statewise.definition.model import Definition
    from statewise.store.base import Store

JSON = Any


UsageProbe: TypeAlias = Callable[[str], Mapping[str, JSON] | None]


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a command receives: its own copy of the item's context and the attempt's identity.

    ``context`` and ``input`` are copies made for this attempt: a command may change them
    freely, nothing the runner, the conditions, the audit trail or the store see changes.
    ``idempotency_key`` is the same for every delivery of one attempt, so a command with side
    effects (sending an email, calling a payment API) can de-duplicate them. ``tokens_left``
    is how many model tokens the item's budgets still allow (None: no token budget); an agent
    stops its run there and fails with ``BudgetExceededError``. ``now`` is when the attempt
    started by the runner's clock (epoch seconds): a command that dates what it writes should
    use it rather than ``time.time()``, so that it agrees with the audit trail, and with the
    virtual clock of ``statewise.testing``. ``visit`` counts the item's entries into the
    state (1 the first time): what stays the same over the retries of one visit.
    """

    workflow: str
    key: str
    state: str
    attempt: int
    idempotency_key: str
    context: Mapping[str, JSON] = field(default_factory=dict)
    branch: str | None = None
    input: JSON = None
    deadline: float | None = field(default=None, compare=False)
    tokens_left: int | None = None
    now: float = field(default_factory=time.time, compare=False)
    visit: int = 1
    _probe: list[UsageProbe] = field(default_factory=list, init=False, compare=False, repr=False)

    def remaining(self) -> float | None:
        """Seconds left before the attempt's timeout (``time.monotonic`` based), if it has one.

        A command that can account for partial work (an agent that already spent tokens)
        should stop itself a little before this, so its failure carries that account.
        """
        return None if self.deadline is None else self.deadline - time.monotonic()

    def track_usage(self, probe: UsageProbe) -> None:
        """Name how to read what this attempt has spent so far, should it be stopped early.

        An attempt stopped from outside (its timeout cut it off, or the join of its parallel
        state was met and the runner cancelled it) cannot return its usage; the runner then
        calls ``probe`` with the error kind the attempt ends with (``transient`` for a timeout,
        ``permanent`` for a cancellation) and records what it returns as the attempt's usage,
        so the audit trail and ``statewise costs`` still account for it. The last probe
        registered is the one read; it is called on the event loop and must not block.
        """
        self._probe[:] = [probe]

    def tracked_usage(self, outcome: str) -> Mapping[str, JSON] | None:
        """What the registered probe says this attempt has spent, or None without one."""
        return self._probe[0](outcome) if self._probe else None


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A command's result with what producing it cost, for the audit trail.

    Plain commands just return their JSON value; agent commands return this so every model
    call's model, tokens, cost and tool calls are recorded with the step. ``conversation``
    is what the attempt proposes to keep of its conversations with the item (serialised
    messages by agent): it is saved only by the step that accepts this result, in that
    step's transaction, so an attempt whose result is ignored, lost or cancelled leaves no
    trace in the stored conversations.
    """

    value: JSON
    usage: dict[str, JSON] = field(default_factory=dict)
    conversation: dict[str, str] | None = None


CommandFunction: TypeAlias = Callable[[CommandContext], JSON | Awaitable[JSON]]
ToolFunction = TypeVar("ToolFunction", bound=Callable[..., Any])
OutputModel = TypeVar("OutputModel", bound=type[BaseModel])
T = TypeVar("T")


class _Names(Generic[T]):
    """One family of registered things by name: taken once, found with a suggestion."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entries: dict[str, T] = {}

    def add(self, name: str, value: T) -> None:
        if name in self.entries and self.entries[name] is not value:
            raise ConfigurationError(f"{self.kind} {name!r} is registered twice")
        self.entries[name] = value

    def get(self, name: str) -> T:
        try:
            return self.entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.entries, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise NotFoundError(f"{self.kind} {name!r} is not registered{hint}") from None


class CommandRegistry:
    """Commands, agent tools and agent output models by name; a name can be registered once.

    Commands receive a CommandContext and run on entering a state. Tools are plain typed
    functions an agent may call; their signature and docstring become the tool's schema.
    Output models are pydantic classes an agent's ``output: NAME`` asks for as its reply.
    """

    def __init__(self) -> None:
        self._commands: _Names[CommandFunction] = _Names("command")
        self._tools: _Names[Callable[..., Any]] = _Names("tool")
        self._output_models: _Names[type[BaseModel]] = _Names("output model")
        self._results: _Names[type[BaseModel]] = _Names("result model of command")

    def command(
        self, name: str | None = None, *, result: type[BaseModel] | None = None
    ) -> Callable[[CommandFunction], CommandFunction]:
        """Register the decorated function, under its own name unless ``name`` is given.

        ``result`` declares the shape of what it returns, a pydantic model: ``statewise
        validate --commands`` checks conditions against its fields, and a result that does not
        fit it is invalid output (a defect once its retries are spent), never an outcome.
        """

        def decorate(function: CommandFunction) -> CommandFunction:
            self.register(name or function.__name__, function, result)
            return function

        return decorate

    def register(
        self, name: str, function: CommandFunction, result: type[BaseModel] | None = None
    ) -> None:
        """Register ``function`` as ``name``; registering a taken name is a mistake."""
        self._commands.add(name, function)
        if result is not None:
            if not (isinstance(result, type) and issubclass(result, BaseModel)):
                raise ConfigurationError(
                    f"the result of command {name!r} must be a pydantic BaseModel subclass, "
                    f"not {result!r}"
                )
            self._results.add(name, result)

    def result_model(self, name: str) -> type[BaseModel] | None:
        """The pydantic model command ``name`` declares its result with, if it declares one."""
        return self._results.entries.get(name)

    def schemas(self) -> dict[str, dict[str, JSON]]:
        """JSON Schemas of the declared command results and output models, by name."""
        models = {**self._output_models.entries, **self._results.entries}
        return {name: model.model_json_schema() for name, model in models.items()}

    def get(self, name: str) -> CommandFunction:
        """The function for ``name``, or a NotFoundError that suggests the closest name."""
        return self._commands.get(name)

    def tool(self, name: str | None = None) -> Callable[[ToolFunction], ToolFunction]:
        """Register the decorated function as a tool agents may call."""

        def decorate(function: ToolFunction) -> ToolFunction:
            self._tools.add(name or function.__name__, function)
            return function

        return decorate

    def get_tool(self, name: str) -> Callable[..., Any]:
        """The tool function for ``name``, or a NotFoundError that suggests the closest name."""
        return self._tools.get(name)

    def output_model(self, name: str | None = None) -> Callable[[OutputModel], OutputModel]:
        """Register the decorated pydantic model as an agent output, under its class name.

        An agent declared with ``output: NAME`` replies with an instance of it: the model is
        shown the class's JSON Schema, its reply is checked by the class's own validators,
        and the result stored is ``model_dump(mode="json")``.
        """

        def decorate(model: OutputModel) -> OutputModel:
            self.register_output_model(name or model.__name__, model)
            return model

        return decorate

    def register_output_model(self, name: str, model: type[BaseModel]) -> None:
        """Register ``model`` as output model ``name``; registering a taken name is a mistake."""
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError(
                f"output model {name!r} must be a pydantic BaseModel subclass, not {model!r}"
            )
        self._output_models.add(name, model)

    def get_output_model(self, name: str) -> type[BaseModel]:
        """The output model ``name``, or a NotFoundError that suggests the closest name."""
        return self._output_models.get(name)

    def names(self) -> frozenset[str]:
        """Every registered command, tool and output model name, for validating definitions."""
        families = (self._commands, self._tools, self._output_models)
        return frozenset(name for family in families for name in family.entries)

    def commands(self) -> dict[str, CommandFunction]:
        """Every registered command by name."""
        return dict(self._commands.entries)

    def merge(self, other: CommandRegistry, skip: frozenset[str] = frozenset()) -> None:
        """Add every command (but those named in ``skip``), tool and output model of ``other``."""
        for name, function in other._commands.entries.items():
            if name not in skip:
                self.register(name, function, other.result_model(name))
        for name, tool in other._tools.entries.items():
            self._tools.add(name, tool)
        for name, model in other._output_models.entries.items():
            self.register_output_model(name, model)


AGENT_PLUGINS = "statewise.agents"
"""The entry-point group whose members register agents' commands."""


class AgentRegistrar(Protocol):
    """What an entry point of the ``statewise.agents`` group names: declared agents made commands.

    It registers the command ``agent:NAME`` in ``registry`` for each agent of ``definitions``
    it runs, and checks all it can (models, templates, tools) so a mistake fails at start-up.
    ``options`` are the process's AI options (what ``AISettings`` takes, for the built-in
    plugin); ``store`` holds the items and their conversations. Every installed plugin is
    called, in the order of the entry points' names, so two plugins must not claim one agent:
    the registry refuses a command registered twice.
    """

    def __call__(
        self,
        registry: CommandRegistry,
        definitions: Sequence[Definition],
        store: Store,
        options: Mapping[str, Any],
    ) -> None:
        """Register the agents' commands."""
