"""The command registry: workflows name commands, Python code registers them explicitly.

A workflow file never imports code by path. The user says which modules register commands
(``--commands teams.billing`` or ``--commands examples/orders.py``); each such module
exposes a ``registry`` object. A module is known by ``module_name``: its importable name
wherever it has one, so every host, whatever its checkout path, means the same module.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar

from pydantic import BaseModel

from statewise.errors import ConfigurationError, NotFoundError, StatewiseError

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
    stops its run there and fails with ``BudgetExceededError``.
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


def load_registry(specs: Iterable[str]) -> CommandRegistry:
    """Import each module (a dotted name or a ``.py`` path) and merge its ``registry``."""
    combined = CommandRegistry()
    for spec in specs:
        module = _import(spec)
        registry = getattr(module, "registry", None)
        if not isinstance(registry, CommandRegistry):
            raise ConfigurationError(
                f"{spec} defines no `registry = CommandRegistry()`; create one and register "
                f"commands with @registry.command()"
            )
        combined.merge(registry)
    return combined


def _import(spec: str) -> Any:
    """Import a command module; a module whose own code fails is named in one message.

    A missing module is reported as such; anything else raised while the user's module runs
    (a syntax error, an exception at import time) is that module's bug, shown with where it
    happened. A half-imported module never stays behind in ``sys.modules``.
    """
    before = set(sys.modules)
    try:
        return _import_module(spec)
    except StatewiseError:
        raise
    except Exception as exc:  # the user's module raised while being imported
        for name in set(sys.modules) - before:
            del sys.modules[name]
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = "" if isinstance(exc, SyntaxError) else f" at {frame.filename}:{frame.lineno}"
        raise ConfigurationError(
            f"importing command module {spec} failed{where}: {type(exc).__name__}: {exc}"
        ) from None


def module_name(spec: str) -> str:
    """A command module's identity, recorded with its workflows and matched on every host.

    A dotted name is itself. A ``.py`` file inside a package (folders with ``__init__.py``)
    is the dotted name it is imported by (``lib/teams/billing.py``: ``teams.billing``), the
    same in any checkout. A file outside every package has no such name: it is known by its
    absolute path, which holds on one host only.
    """
    if not spec.endswith(".py"):
        return spec
    path = Path(spec).resolve()
    packaged = _package_of(path)
    return str(path) if packaged is None else packaged[1]


def _package_of(path: Path) -> tuple[Path, str] | None:
    """The folder a packaged file is imported from, and its dotted name; None outside one."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return None if len(parts) == 1 else (folder, ".".join(parts))


def _import_module(spec: str) -> Any:
    if spec.endswith(".py"):
        path = Path(spec).resolve()
        if not path.is_file():
            raise NotFoundError(f"command module {spec} does not exist")
        packaged = _package_of(path)
        if packaged is not None:
            # By its dotted name, so it is the very module a dotted --commands imports.
            root, dotted = packaged
            if str(root) not in sys.path:
                sys.path.append(str(root))
            return importlib.import_module(dotted)
        name = f"statewise_commands_{path.stem}_{abs(hash(str(path)))}"
        if name in sys.modules:
            return sys.modules[name]
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigurationError(f"cannot import command module {spec}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module
    # As `python -m` does, a dotted name is also looked for in the current directory.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        raise NotFoundError(f"command module {spec!r} cannot be imported: {exc}") from None
