"""`statewise prune` end to end on a real SQLite file, and the pruning options of the servers."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from hostile import HOSTILE_BUT_VALID_KEYS
from test_cli import invoke

WORKFLOW = """\
workflow: scored
version: 1
states:
  intake:
    kind: initial
    command: {name: score, result: score}
    transitions:
      - to: accepted
  accepted:
    kind: final
"""
COMMANDS = """\
from statewise import CommandRegistry

registry = CommandRegistry()


@registry.command()
def score(ctx):
    return {"value": len(ctx.key)}
"""
OLD_KEYS = HOSTILE_BUT_VALID_KEYS[:4]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "scored.yaml").write_text(WORKFLOW)
    (tmp_path / "commands.py").write_text(COMMANDS)
    return tmp_path


def run_items(project: Path, keys: list[str]) -> tuple[int, str]:
    lines = [json.dumps({"key": key, "data": {}}) for key in keys]
    (project / "items.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return invoke(
        "run", project / "scored.yaml", "--items", project / "items.jsonl",
        "--commands", project / "commands.py", "--db", project / "run.sqlite",
    )  # fmt: skip


def sql(project: Path, statement: str, *args: object) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(project / "run.sqlite", isolation_level=None)) as db:
        return db.execute(statement, args).fetchall()


def freed(output: str) -> int:
    found = re.search(r"(?:would free|freed) (?:[\d.]+ [kMG]B \()?([\d,]+) bytes", output)
    assert found, output
    return int(found[1].replace(",", ""))


def test_prune_reports_the_same_bytes_dry_and_real_and_archives_exactly_what_it_pruned(
    project: Path,
) -> None:
    assert run_items(project, [*OLD_KEYS, "young"])[0] == 0
    old = time.time() - 100 * 86_400
    sql(project, "UPDATE items SET updated_at = ?, entered_at = ? WHERE key <> 'young'", old, old)
    sql(project, "UPDATE history SET output = '{\"value\": 5}' WHERE event = 'done'")
    history = "SELECT * FROM history ORDER BY item_id, seq"
    young = "SELECT h.* FROM history h JOIN items i ON i.id = h.item_id WHERE i.key = 'young'"
    before, young_before = sql(project, history), sql(project, young)
    db = project / "run.sqlite"
    prune = ("prune", "--finished-before", "90d", "--what", "history", "--db", db)

    code, dry = invoke(*prune, "--dry-run")

    assert code == 0, dry
    assert "dry run: nothing changed" in dry and sql(project, history) == before
    archive = project / "pruned.jsonl"
    code, done = invoke(*prune, "--archive", archive)
    assert code == 0, done
    assert freed(done) == freed(dry) > 0
    assert f"archived {len(OLD_KEYS)} item(s)" in done and "VACUUM" in done
    records = [json.loads(line) for line in archive.read_text(encoding="ascii").splitlines()]
    assert sorted(r["key"] for r in records) == sorted(OLD_KEYS)
    assert all(r["history"][-1]["output"] == {"value": 5} for r in records)
    code, shown = invoke("history", OLD_KEYS[1], "--db", db)
    assert code == 0 and "history_pruned" in shown and "history pruned " in shown
    assert sql(project, young) == young_before
    code, again = run_items(project, [*OLD_KEYS, "young"])
    assert code == 0 and "started 0 new item(s); 5 already existed" in again
    code, refused = run_items(project, ["nul\x00key"])
    assert code == 1 and "control" in refused
    assert sql(project, "SELECT COUNT(*) FROM items") == [(5,)]


@pytest.mark.parametrize("age", ["-3d", "abc", "0", "0s", "99999999d", "1e308"])
def test_bad_ages_are_refused_before_anything_is_opened(project: Path, age: str) -> None:
    db = project / "never.sqlite"
    code, output = invoke("prune", "--finished-before", age, "--db", db)
    assert code == 2 and "error: --finished-before" in output
    code, output = invoke("worker", "--commands", "x", "--prune-every", age, "--db", db)
    assert code == 2 and "error: --prune-every" in output
    code, output = invoke("serve", "--prune-every", age, "--db", db)
    assert code == 2 and "error: --prune-every" in output
    assert not db.exists()


def test_without_an_age_only_the_workflows_policies_prune(project: Path) -> None:
    assert run_items(project, ["a"])[0] == 0
    code, output = invoke("prune", "--db", project / "run.sqlite")
    assert code == 0 and "no workflow here has a `retention:` policy" in output
    code, output = invoke("prune", "--workflow", "scored", "--db", project / "run.sqlite")
    assert code == 0 and "workflow 'scored' has no `retention:` policy" in output
    code, output = invoke("prune", "--workflow", "nope", "--db", project / "run.sqlite")
    assert code == 1 and "no workflow 'nope' is stored (stored: scored)" in output


def test_a_worker_applies_the_policies_by_itself(project: Path) -> None:
    kept = WORKFLOW.replace("version: 1\n", "version: 1\nretention: {outputs: 1d, history: 30d}\n")
    (project / "scored.yaml").write_text(kept)
    assert run_items(project, ["ancient", "old", "new"])[0] == 0
    for key, days in (("ancient", 40), ("old", 5)):
        at = time.time() - days * 86_400
        sql(project, "UPDATE items SET updated_at = ?, entered_at = ? WHERE key = ?", at, at, key)
    sql(project, "UPDATE history SET output = '{}'")
    worker = subprocess.Popen(
        [sys.executable, "-m", "statewise", "worker", "--db", str(project / "run.sqlite"),
         "--commands", str(project / "commands.py"), "--prune-every", "200ms"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    outputs = "SELECT COUNT(*) FROM history h JOIN items i ON i.id = h.item_id "
    try:
        deadline = time.monotonic() + 30
        while sql(project, outputs + "WHERE h.output IS NOT NULL AND i.key <> 'new'") != [(0,)]:
            assert worker.poll() is None and time.monotonic() < deadline, "nothing was pruned"
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        log = worker.communicate(timeout=30)[0]
    assert worker.returncode == 0, log
    assert "retention: pruned the history of 1 item(s) of scored" in log
    assert sql(project, outputs + "WHERE i.key = 'ancient'") == [(1,)]
    assert sql(project, outputs + "WHERE i.key = 'old'") == [(2,)]
    assert sql(project, outputs + "WHERE h.output IS NOT NULL AND i.key = 'new'") == [(2,)]
