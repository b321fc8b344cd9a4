"""The public surface is deliberate: adding or removing a name must be a visible decision."""

import ast
from pathlib import Path

import statewise

SRC = Path(statewise.__file__).parent
SHELL_MODULES = ("statewise.store", "statewise.worker", "statewise.cli", "statewise.api")
FORBIDDEN_IN_CORE = ("sqlite3", "psycopg", "asyncio", "httpx", "typer", "rich", *SHELL_MODULES)


def test_exported_names_are_exactly_the_curated_list() -> None:
    assert statewise.__all__ == [
        "CommandContext",
        "CommandError",
        "CommandRegistry",
        "Definition",
        "DefinitionError",
        "External",
        "InvalidEventError",
        "InvalidOutputError",
        "Item",
        "NotFoundError",
        "PermanentError",
        "RunCommand",
        "Runner",
        "SQLiteStore",
        "StartTimer",
        "StatewiseError",
        "Store",
        "TransientError",
        "Workflow",
        "load",
        "loads",
        "open_store",
        "start",
        "step",
    ]
    for name in statewise.__all__:
        assert getattr(statewise, name) is not None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_never_imports_the_shell() -> None:
    """engine/, definition/ and conditions stay pure: imports flow from the shell to the core."""
    core = [*SRC.joinpath("engine").glob("*.py"), *SRC.joinpath("definition").glob("*.py")]
    core.append(SRC / "conditions.py")
    offenders = {
        f"{path.relative_to(SRC)} imports {name}"
        for path in core
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IN_CORE)
    }
    assert not offenders, sorted(offenders)
