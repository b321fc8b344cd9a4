"""Versions through the real command line, on a SQLite file and on PostgreSQL.

deploy (no-op on the same content, refused on changed content), workflows, items -w
NAME@VERSION, graph --db per version, migrate (dry run, mapping, real run), redrive
--to-version; each change is checked against the store's invariant.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from statewise.store import open_store
from statewise.store.base import StuckItem
from test_cli import invoke

V1 = """\
workflow: invoice
version: 1
states:
  intake:
    kind: initial
    command: score
    transitions:
      - when: intake.value == 0
        to: hold
      - when: intake.value > 100
        to: pay
      - else: true
        to: review
  hold:
    kind: waiting
    transitions:
      - on: release
        to: review
  review:
    kind: human
    task: {queue: ap, title: Check the invoice}
    transitions:
      - on: approve
        to: pay
  pay:
    command: pay
    transitions:
      - when: pay.ok
        to: paid
  paid: {kind: final}
"""

V2 = """\
workflow: invoice
version: 2
migrations:
  review: check
states:
  intake:
    kind: initial
    command: score
    transitions:
      - when: intake.value > 100
        to: pay
      - else: true
        to: check
  check:
    kind: human
    task: {queue: ap, title: Check the invoice again}
    transitions:
      - on: approve
        to: pay
  pay:
    command: pay
    transitions:
      - when: pay.ok
        to: paid
      - else: true
        to: refused
  paid: {kind: final}
  refused: {kind: final}
"""

COMMANDS = """\
from statewise import CommandRegistry

registry = CommandRegistry()


@registry.command()
def score(ctx):
    return {"value": ctx.context["amount"]}


@registry.command()
def pay(ctx):
    return {"ok": ctx.context["amount"] < 1000}
"""

ITEMS = {"a": 50, "b": 60, "big": 5000, "held": 0}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, ITEMS)


def write_project(folder: Path, items: dict[str, int]) -> Path:
    """``folder`` with v1.yaml, v2.yaml, commands.py and items.jsonl of ``items`` (key: amount)."""
    (folder / "v1.yaml").write_text(V1)
    (folder / "v2.yaml").write_text(V2)
    (folder / "commands.py").write_text(COMMANDS)
    lines = [json.dumps({"key": k, "data": {"amount": a}}) for k, a in items.items()]
    (folder / "items.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def run_v1(project: Path, db: str) -> Path:
    """Run every item of ITEMS on invoice@1 (three wait, `big` fails); the commands file."""
    commands = project / "commands.py"
    code, out = invoke(
        "run", project / "v1.yaml", "--items", project / "items.jsonl", "-c", commands,
        "--db", db,
    )  # fmt: skip
    assert code == 0, out
    return commands


def piped_env() -> dict[str, str]:
    """The environment of a `statewise` writing to a pipe: this tree's code, no COLUMNS."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    env.pop("COLUMNS", None)
    return env


def stuck(db: str) -> list[StuckItem]:
    async def read() -> list[StuckItem]:
        store = open_store(db)
        try:
            return await store.stuck_items()
        finally:
            await store.close()

    return asyncio.run(read())


def test_deploy_stores_once_refuses_a_changed_version_and_starts_nothing(
    project: Path, db: str
) -> None:
    commands = project / "commands.py"
    code, out = invoke("deploy", project / "v1.yaml", "--db", db, "-c", commands)
    assert code == 0 and "deployed invoice@1 from" in out
    code, out = invoke("deploy", project / "v1.yaml", "--db", db)
    assert code == 0 and "already deployed, unchanged: invoice@1" in out
    edited = project / "v1-edited.yaml"
    edited.write_text(V1.replace("Check the invoice}", "Check it}"))
    code, out = invoke("deploy", project / "v2.yaml", edited, "--db", db)
    assert code == 1
    assert "version 1 is already stored" in out and "bump `version`" in out
    assert "+    task: {queue: ap, title: Check it}" in out
    twin = project / "v2-twin.yaml"
    twin.write_text(V2.replace("Check the invoice again", "Look again"))
    code, out = invoke("deploy", project / "v2.yaml", twin, "--db", db)
    assert code == 1 and "both hold invoice@2 with different content" in out
    broken = project / "broken.yaml"
    broken.write_text(V2.replace("version: 2", "version: 3").replace("to: refused", "to: nope"))
    code, out = invoke("deploy", project / "v2.yaml", broken, "--db", db)
    assert code == 1 and "unknown state `nope`" in out
    code, out = invoke("workflows", "--db", db)
    assert code == 0
    assert "invoice@1" in out and "invoice@2" not in out and "invoice@3" not in out
    code, out = invoke("items", "--db", db)
    assert code == 0 and "invoice@1" not in out  # deploying started nothing


def test_workflows_items_by_version_migrate_and_redrive_to_a_version(
    project: Path, db: str
) -> None:
    commands = run_v1(project, db)
    assert invoke("deploy", project / "v2.yaml", "--db", db, "-c", commands)[0] == 0
    code, out = invoke("workflows", "--db", db)
    assert code == 0
    assert _counts(out, "invoice@1") == {"waiting": 3, "failed": 1}
    assert _counts(out, "invoice@2") == {}
    code, out = invoke("items", "-w", "invoice@2", "--db", db)
    assert code == 0 and "invoice@1" not in out
    code, out = invoke("items", "-w", "invoice@1", "--db", db)
    assert code == 0 and out.count("invoice@1") == 4
    code, out = invoke("items", "-w", "invoice@7", "--db", db)
    assert code == 1 and "invoice@7 is not stored (stored: invoice@1, invoice@2)" in out
    code, out = invoke("items", "-w", "invoice@x", "--db", db)
    assert code == 2 and "NAME@VERSION" in out
    code, mermaid = invoke("graph", project / "v2.yaml", "--db", db)
    assert code == 0 and 'state "check (0)"' in mermaid and 'state "pay (0)"' in mermaid

    code, out = invoke("migrate", "invoice", "--to", "2", "--dry-run", "--db", db)
    assert code == 0, out
    assert "3 item(s) would move onto invoice@2" in out
    assert "invoice@1 review" in out and "invoice@1 pay" in out
    assert "1 item(s) left alone" in out and "--map hold=STATE" in out
    code, out = invoke("migrate", "invoice", "--to", "2", "--db", db)
    assert code == 2 and "--reason is required" in out
    code, out = invoke(
        "migrate", "invoice", "--to", "2", "--map", "hold=nowhere", "--reason", "x", "--db", db
    )
    assert code == 1 and "invoice@2 has no state 'nowhere'" in out
    code, out = invoke("migrate", "invoice", "--to", "9", "--dry-run", "--db", db)
    assert code == 1 and "stored: invoice@1, invoice@2" in out
    assert _counts(invoke("workflows", "--db", db)[1], "invoice@2") == {}  # nothing moved yet

    code, out = invoke(
        "migrate", "invoice", "--to", "2", "--reason", "pay refusals end the item", "--as",
        "ops", "--no-wait", "--db", db,
    )  # fmt: skip
    assert code == 0, out
    assert "3 item(s) moved onto invoice@2" in out and "1 item(s) left alone" in out
    assert stuck(db) == []
    code, out = invoke("items", "-w", "invoice@2", "--status", "active", "--db", db)
    assert "big" in out and "pay" in out  # its new work waits for whoever runs the store
    assert invoke("run", "--db", db)[0] == 0
    code, out = invoke("items", "-w", "invoice@2", "--db", db)
    assert "check" in out and "refused" in out  # the failed item ran on the fixed version
    code, out = invoke("history", "a", "--db", db)
    assert "migrated (ops)" in out and "from invoice@1 state 'review'" in out
    code, out = invoke("task", "list", "--db", db)
    assert out.count("check") == 2 and "review" not in out

    code, out = invoke(
        "redrive", "held", "--to-version", "2", "--to", "check", "--reason", "hold is gone",
        "--db", db,
    )  # fmt: skip
    assert code == 0, out
    assert "held: now in check (waiting)" in out
    code, out = invoke("redrive", "held", "--to-version", "2", "--reason", "again", "--db", db)
    assert code == 1 and "already on invoice@2" in out
    assert _counts(invoke("workflows", "--db", db)[1], "invoice@1") == {}
    assert stuck(db) == []


def _counts(table: str, ref: str) -> dict[str, int]:
    """A `workflows` row as {status: count}, leaving out the zeros."""
    statuses = ["active", "waiting", "done", "failed", "paused", "cancelled"]
    for line in table.splitlines():
        cells = line.split("\t")  # TSV, in a pipe
        if cells[0] == ref:
            return {s: int(n) for s, n in zip(statuses, cells[2:], strict=True) if n != "0"}
    raise AssertionError(f"no row {ref} in {table}")


def test_serve_starts_on_an_empty_store_and_says_how_to_deploy(tmp_path: Path) -> None:
    db = tmp_path / "empty.sqlite"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    service = subprocess.Popen(
        [sys.executable, "-m", "statewise", "serve", "--db", str(db), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert service.poll() is None, service.communicate()[0]
            assert time.monotonic() < deadline, "the service did not answer"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        service.terminate()
        output = service.communicate(timeout=30)[0]
    assert "the store has no workflows yet: deploy them with `statewise deploy FILE..." in output
    assert "statewise serving no workflows on" in output


V3_BROKEN = V2.replace("version: 2", "version: 3").replace(
    "  check:\n    kind: human\n    task: {queue: ap, title: Check the invoice again}\n"
    "    transitions:\n      - on: approve\n        to: pay\n",
    "  check:\n    command: score\n    transitions:\n      - when: check.missing\n"
    "        to: paid\n      - else: true\n        to: pay\n",
)


def test_migrate_onto_a_state_whose_entry_fails_says_so_and_exits_1(project: Path, db: str) -> None:
    """Moved items that then fail on their new state are a defect to see, not 'moved'."""
    commands = run_v1(project, db)
    broken = project / "v3.yaml"
    broken.write_text(V3_BROKEN)
    assert invoke("deploy", broken, "--db", db, "-c", commands)[0] == 0
    code, out = invoke(
        "migrate", "invoice", "--to", "3", "--reason", "r", "--db", db, "-c", commands
    )
    assert code == 1, out
    assert "2 item(s) failed on entering their new state" in out
    assert "check.missing" in out and "statewise items --status failed -w invoice@3" in out
    assert stuck(db) == []


def test_deploy_and_workflows_piped_into_a_file_keep_whole_names(project: Path) -> None:
    """Piped into a file, the list is TSV: long names and paths stay whole on one line."""
    db = project / "long.sqlite"
    name = "invoice_approval_for_the_northern_european_region_finance_team_2026"
    folder = project / "a" / "long" / "directory" / "of" / "workflow" / "definitions" / "kept"
    folder.mkdir(parents=True)
    long_file = folder / "invoice_approval_for_the_northern_region.yaml"
    long_file.write_text(V1.replace("workflow: invoice", f"workflow: {name}"))
    env = piped_env()

    def piped(*args: str) -> str:
        target = project / "out.txt"
        with target.open("w", encoding="utf-8") as out:
            done = subprocess.run(
                [sys.executable, "-m", "statewise", *args, "--db", str(db)],
                stdout=out, stderr=subprocess.PIPE, env=env, timeout=60, check=False,
            )  # fmt: skip
        assert done.returncode == 0, done.stderr
        text = target.read_text(encoding="utf-8")
        assert "\x1b" not in text and "…" not in text
        return text

    assert f"deployed {name}@1 from {long_file}\n" in piped("deploy", str(long_file))
    header, row = [line.split("\t") for line in piped("workflows").splitlines()]
    assert header[:2] == ["workflow", "file"] and row[:2] == [f"{name}@1", str(long_file)]


def test_migrate_refuses_a_map_from_a_state_no_version_has(project: Path, db: str) -> None:
    """`--map hodl=check` is a typo: refused with the states there are, not ignored."""
    commands = run_v1(project, db)
    assert invoke("deploy", project / "v2.yaml", "--db", db, "-c", commands)[0] == 0
    for old in ("hodl", "ho%/?ld", "höld"):
        code, out = invoke(
            "migrate", "invoice", "--to", "2", "--map", f"{old}=check", "--reason", "r",
            "--db", db,
        )  # fmt: skip
        assert code == 1, out
        assert f"--map {old}=check: no version of invoice has a state {old!r}" in out
        assert "hold" in out
    code, out = invoke(
        "migrate", "invoice", "--to", "2", "--map", "hold=check", "--dry-run", "--db", db
    )
    assert code == 0 and "4 item(s) would move onto invoice@2" in out
    assert _counts(invoke("workflows", "--db", db)[1], "invoice@2") == {}


def test_deploy_of_two_files_with_one_version_says_deployed_once(project: Path, db: str) -> None:
    twin = project / "v1-copy.yaml"
    twin.write_text(V1)
    code, out = invoke("deploy", project / "v1.yaml", twin, "--db", db)
    assert code == 0, out
    assert out.count("deployed invoice@1") == 1
    assert f"already deployed, unchanged: invoice@1 from {twin}" in out
    assert _counts(invoke("workflows", "--db", db)[1], "invoice@1") == {}


def test_a_migration_plan_and_items_piped_into_a_file_list_whole_keys(project: Path) -> None:
    """The dry run is the list of exactly which items move: no key ends in an ellipsis."""
    db = project / "plan.sqlite"
    key = "INV-2026-000123456789-northern-region-finance-%/?-ünï"
    items = project / "long.jsonl"
    items.write_text(json.dumps({"key": key, "data": {"amount": 50}}) + "\n")
    commands = project / "commands.py"
    assert invoke("run", project / "v1.yaml", "--items", items, "-c", commands, "--db", db)[0] == 0
    assert invoke("deploy", project / "v2.yaml", "--db", db)[0] == 0
    env = piped_env()
    done = subprocess.run(
        [sys.executable, "-m", "statewise", "migrate", "invoice", "--to", "2", "--dry-run",
         "--db", str(db)],
        capture_output=True, text=True, encoding="utf-8", env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[:2] == ["# would move onto invoice@2", "key\tfrom\tstatus\tto"]
    assert lines[2].split("\t")[0] == key
    listed = subprocess.run(
        [sys.executable, "-m", "statewise", "items", "-w", "invoice@1", "--db", str(db)],
        capture_output=True, text=True, encoding="utf-8", env=env, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == 0 and "…" not in listed.stdout, listed.stdout
    header, row = [line.split("\t") for line in listed.stdout.splitlines()]
    assert header[:2] == ["key", "workflow"] and row[:2] == [key, "invoice@1"]


V4_TYPO = V2.replace("version: 2", "version: 4").replace(
    "  check:\n    kind: human\n    task: {queue: ap, title: Check the invoice again}\n"
    "    transitions:\n      - on: approve\n        to: pay\n",
    "  check:\n    transitions:\n      - when: intake.valeu > 1\n        to: pay\n"
    "      - else: true\n        to: paid\n",
)


def test_a_move_the_new_state_would_fail_at_once_is_left_alone_and_loses_nothing(
    project: Path, db: str
) -> None:
    """Entering `check` fails in the move itself (a condition typo): nothing of it is committed."""
    commands = run_v1(project, db)
    typo = project / "v4.yaml"
    typo.write_text(V4_TYPO)
    assert invoke("deploy", typo, "--db", db, "-c", commands)[0] == 0
    code, out = invoke("migrate", "invoice", "--to", "4", "--dry-run", "--db", db)
    assert code == 0, out
    assert "1 item(s) would move onto invoice@4" in out  # big, from pay
    assert out.count("would fail on entering check") == 2 and "valeu" in out
    code, out = invoke("migrate", "invoice", "--to", "4", "--reason", "r", "--db", db)
    assert code == 0, out
    assert "1 item(s) moved onto invoice@4" in out and "3 item(s) left alone" in out
    code, out = invoke("items", "-w", "invoice@1", "--status", "waiting", "--db", db)
    assert out.count("review") == 2  # still waiting, their tasks open
    assert invoke("task", "list", "--db", db)[1].count("open") == 2
    assert stuck(db) == []
