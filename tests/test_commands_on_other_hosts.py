"""Commands on other hosts: a module is matched by its importable name, not by where it lies.

Two teams' modules both define ``publish``. Host A registers the workflows from its checkout
(one module given as a file path, one by dotted name) and is then gone; a worker on "host B"
runs from another working directory, with a copy of the package at another path on its
``PYTHONPATH``, and each workflow still runs its own team's ``publish``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from statewise.definition import load
from statewise.store import open_store
from statewise.worker.writer import ItemWriter

TEAMS = ("billing", "news")
MODULE = """\
from statewise import CommandRegistry

registry = CommandRegistry()


@registry.command()
def publish(ctx):
    return {{"by": "{team}", "from": __file__}}
"""
WORKFLOW = """\
workflow: {team}
version: 1
states:
  go:
    kind: initial
    command: {{name: publish, result: published}}
    transitions:
      - to: done
  done:
    kind: final
"""


def _statewise(*args: str, cwd: Path, path: Path | None = None) -> subprocess.Popen[str]:
    """``python -m statewise`` in ``cwd``, with ``path`` first on its PYTHONPATH."""
    inherited = os.environ.get("PYTHONPATH", "")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(path or ""), inherited]))}
    return subprocess.Popen(
        [sys.executable, "-m", "statewise", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _register_on_host_a(checkout: Path, db: str) -> None:
    package = checkout / "teams"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for team in TEAMS:
        (package / f"{team}.py").write_text(MODULE.format(team=team))
        (checkout / f"{team}.yaml").write_text(WORKFLOW.format(team=team))
    for team, module in (("billing", "teams/billing.py"), ("news", "teams.news")):
        registered = _statewise(
            "run", f"{team}.yaml", "--commands", module, "--db", db, cwd=checkout
        )
        out, _ = registered.communicate(timeout=60)
        assert registered.returncode == 0, out


def _start_items(checkout: Path, db: str) -> None:
    async def start() -> None:
        store = open_store(db)
        try:
            for team in TEAMS:
                definition = load(checkout / f"{team}.yaml", commands={"publish"})
                await ItemWriter(store, [definition]).start(definition, [(f"{team}-1", {})])
        finally:
            await store.close()

    asyncio.run(start())


def _published(db: str) -> dict[str, tuple[str, object]]:
    async def read() -> dict[str, tuple[str, object]]:
        store = open_store(db)
        try:
            items = [await store.get_item(team, f"{team}-1") for team in TEAMS]
            return {i.key: (i.state, i.context.get("published")) for i in items}
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_worker_elsewhere_runs_each_workflows_own_same_named_command(
    tmp_path: Path, db: str
) -> None:
    host_a = tmp_path / "host-a" / "checkout"
    _register_on_host_a(host_a, db)
    _start_items(host_a, db)
    library = tmp_path / "host-b" / "site" / "lib"
    shutil.copytree(host_a / "teams", library / "teams")
    shutil.rmtree(tmp_path / "host-a")  # nothing of host A's paths is left to lean on
    elsewhere = tmp_path / "host-b" / "work"
    elsewhere.mkdir()

    worker = _statewise(
        "worker", "--db", db, "--commands", "teams.billing",
        "--commands", str(library / "teams" / "news.py"),
        cwd=elsewhere, path=library,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not {state for state, _ in _published(db).values()} <= {"done", "escalated"}:
            assert worker.poll() is None, worker.communicate()[0]
            assert time.monotonic() < deadline, _published(db)
            time.sleep(0.1)
    finally:
        worker.terminate()
        out, _ = worker.communicate(timeout=60)

    assert worker.returncode == 0, out
    published = _published(db)
    for team in TEAMS:
        state, result = published[f"{team}-1"]
        assert state == "done"
        assert result == {"by": team, "from": str(library / "teams" / f"{team}.py")}
