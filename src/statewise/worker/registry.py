"""The command registry: workflows name commands, Python code registers them explicitly.

A workflow file never imports code by path. The user says which modules register commands
(``--commands teams.billing`` or ``--commands examples/orders.py``); each such module
exposes a ``registry`` object. A module is known by ``module_name``: its importable name
wherever it has one, so every host, whatever its checkout path, means the same module.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from statewise.contract import CommandRegistry
from statewise.errors import ConfigurationError, NotFoundError, StatewiseError


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
