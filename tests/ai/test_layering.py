"""The AI layer and the worker meet only in ``statewise.contract``: neither imports the other.

The static checks read every import statement, those inside functions included (a lazy import
is still a dependency); the subprocess checks import the real modules in a fresh interpreter, in
both orders, so a cycle that only shows up in one order cannot hide.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import statewise

SRC = Path(statewise.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever in the file the import statement is."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _offenders(files: list[Path], forbidden: str) -> list[str]:
    return sorted(
        f"{path.relative_to(SRC)} imports {name}"
        for path in files
        for name in _imports(path)
        if name == forbidden or name.startswith(forbidden + ".")
    )


def test_the_ai_layer_never_imports_the_worker() -> None:
    files = sorted(SRC.joinpath("ai").glob("*.py"))
    assert len(files) > 10  # the folder was found
    assert _offenders(files, "statewise.worker") == []


def test_the_worker_never_imports_the_ai_layer() -> None:
    files = sorted(SRC.joinpath("worker").glob("*.py"))
    assert SRC / "worker" / "catalog.py" in files
    assert _offenders(files, "statewise.ai") == []


@pytest.mark.parametrize("side", ["statewise.ai", "statewise.worker"])
def test_the_contract_imports_neither_side(side: str) -> None:
    assert _offenders([SRC / "contract.py"], side) == []


def test_the_static_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from statewise.worker import registry\n")
    assert "statewise.worker.registry" in _imports(module)


def _fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "order",
    [
        ("statewise.ai", "statewise.worker.catalog"),
        ("statewise.worker.catalog", "statewise.ai"),
        ("statewise.ai.agents", "statewise.worker.runner"),
        ("statewise.worker.commands", "statewise.ai.registration"),
    ],
)
def test_the_ai_layer_and_the_worker_import_in_either_order(order: tuple[str, str]) -> None:
    code = f"import importlib\nfor name in {list(order)!r}:\n    importlib.import_module(name)\n"
    assert _fresh(code + "print('both imported')").strip() == "both imported"


def test_the_worker_loads_without_the_ai_layer() -> None:
    """A process that runs no agent never pays for importing pydantic-ai."""
    loaded = _fresh(
        "import sys, statewise.worker, statewise.worker.catalog\n"
        "print(sorted(m for m in sys.modules if m.startswith(('statewise.ai', 'pydantic_ai'))))"
    )
    assert loaded.strip() == "[]"


def test_the_cli_loads_without_the_ai_layer() -> None:
    """``statewise models check`` imports the AI layer itself; no other command pays for it."""
    loaded = _fresh(
        "import sys, statewise.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith(('statewise.ai', 'pydantic_ai'))))"
    )
    assert loaded.strip() == "[]"
