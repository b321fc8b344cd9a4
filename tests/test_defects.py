"""Defects fail items, business escalations go to a person: through the CLI, on both stores.

One workflow holds a defect of every kind a new user writes by mistake (a misspelled field in
a condition, a state that should have been `kind: waiting`, a command returning something
that is not JSON, a command raising TypeError, CEL's `int * double`) beside a provider that
stays down. `statewise run` runs one item into each; the tests read what an operator sees.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from statewise.engine import ItemStatus
from statewise.store import open_store
from test_cli import invoke

WORKFLOW = """\
workflow: defects
version: 1
input: [case, n]
events:
  approve: a reviewer approves
states:
  start:
    kind: initial
    transitions:
      - {when: case == "misspelled", to: misspelled}
      - {when: case == "no_waiting", to: notify}
      - {when: case == "wrong_type", to: wrong_type}
      - {when: case == "raises", to: raises}
      - {when: case == "handled", to: handled}
      - {when: case == "int_double", to: int_double}
      - {when: case == "provider_down", to: provider_down}
      - {else: true, to: done}
  misspelled:
    command: {name: score, result: score}
    transitions:
      - {when: score.vaule > 5, to: done}     # the result has `value`
      - {else: true, to: done}
  notify:                                    # meant: notify, then wait for approve
    command: notify
    transitions:
      - {on: approve, to: done}
  wrong_type:
    command: {name: returns_a_set, retry: {attempts: 2, backoff: 10ms}}
    transitions:
      - {to: done}
  raises:
    command: raises_type_error
    transitions:
      - {to: done}
  handled:
    command: raises_type_error
    transitions:
      - {to: done}
      - {on: error, to: by_hand}             # the workflow chose to handle it
  int_double:
    transitions:
      - {when: n * 1.5 > 2, to: done}        # CEL: no int * double
      - {else: true, to: done}
  provider_down:
    command: {name: provider_down, retry: {attempts: 2, backoff: 10ms}}
    transitions:
      - {to: done}
  by_hand: {kind: final}
  done: {kind: final}
"""

COMMANDS = """\
from statewise import CommandRegistry, TransientError

registry = CommandRegistry()


@registry.command()
def score(ctx):
    return {"value": 7}


@registry.command()
def notify(ctx):
    return {"sent": True}


@registry.command()
def returns_a_set(ctx):
    return {"tags": {"a", "b"}}


@registry.command()
def raises_type_error(ctx):
    raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")


@registry.command()
def provider_down(ctx):
    raise TransientError("the provider answers 503")
"""

HOSTILE = "ünï/%?&x"  # a key as users type them, run into the misspelled condition
DEFECTS = {  # key -> (state it fails in, defect kind, part of the message)
    "misspelled": ("misspelled", "condition", "vaule"),
    HOSTILE: ("misspelled", "condition", "vaule"),
    "no_waiting": ("notify", "no_transition", "no transition from 'notify' matched event 'done'"),
    "wrong_type": ("wrong_type", "invalid_output", "not JSON"),
    "raises": ("raises", "command_error", "TypeError: unsupported operand"),
    "int_double": ("int_double", "condition", "`n * 1.5 > 2`"),
}


@pytest.fixture
def ran(tmp_path: Path, db: str) -> Path:
    """Every case run once into ``db``; the project directory is returned."""
    (tmp_path / "defects.yaml").write_text(WORKFLOW)
    (tmp_path / "commands.py").write_text(COMMANDS)
    cases = {key: key for key in [*DEFECTS, "handled", "provider_down"]} | {HOSTILE: "misspelled"}
    lines = [json.dumps({"key": k, "data": {"case": c, "n": 5}}) for k, c in cases.items()]
    (tmp_path / "items.jsonl").write_text("\n".join(lines) + "\n")
    code, output = invoke(
        "run", tmp_path / "defects.yaml", "--items", tmp_path / "items.jsonl",
        "--commands", tmp_path / "commands.py", "--db", db,
    )  # fmt: skip
    assert code == 0, output
    return tmp_path


def _history(db: str, key: str) -> list[dict[str, object]]:
    code, output = invoke("history", key, "--db", db, "--format", "jsonl")
    assert code == 0, output
    return [json.loads(line) for line in output.splitlines()]


async def _read(db: str) -> tuple[dict[str, tuple[str, ItemStatus]], list[object]]:
    """Every item's state and status, and the store's broken invariants (none expected)."""
    store = open_store(db)
    try:
        items = await store.list_items(limit=100)
        return {i.key: (i.state, i.status) for i in items}, list(await store.stuck_items())
    finally:
        await store.close()


def test_each_defect_fails_its_item_with_its_kind_and_message(ran: Path, db: str) -> None:
    items, stuck = asyncio.run(_read(db))
    assert stuck == []
    for key, (state, kind, says) in DEFECTS.items():
        assert items[key] == (state, ItemStatus.FAILED), key
        last = _history(db, key)[-1]
        assert (last["from_state"], last["to_state"]) == (state, state)
        error = last["error"]
        assert isinstance(error, dict) and error["kind"] == kind, (key, error)
        assert says in error["message"], (key, error)
        assert "a defect, not an outcome" in str(last["note"])
    # an on: error route still takes a command's unexpected exception
    assert items["handled"] == ("by_hand", ItemStatus.DONE)


def test_items_status_failed_lists_the_defects_and_status_counts_them(ran: Path, db: str) -> None:
    code, output = invoke("items", "--status", "failed", "--db", db)
    assert code == 0, output
    assert "failed because" in output
    for key, (_, kind, _) in DEFECTS.items():
        line = next(line for line in output.splitlines() if line.split("\t")[0] == key)
        assert f"{kind}: " in line, line
    assert "provider_down" not in output and "handled" not in output
    code, output = invoke("status", "--db", db)
    assert code == 0, output
    assert "6 failed: `statewise items --status failed` lists them" in output
    code, output = invoke("show", "no_waiting", "--db", db)
    assert code == 0, output
    assert "failed because: no_transition: no transition from 'notify' matched" in output


def test_a_provider_down_past_its_retries_waits_for_a_person(ran: Path, db: str) -> None:
    items, stuck = asyncio.run(_read(db))
    assert items["provider_down"] == ("escalated", ItemStatus.WAITING)
    assert stuck == []
    into = _history(db, "provider_down")[-1]
    assert into["to_state"] == "escalated"
    assert into["error"] == {"kind": "transient", "message": "the provider answers 503"}
    code, output = invoke("task", "list", "--queue", "escalations", "--db", db)
    assert code == 0, output
    (row,) = [line for line in output.splitlines() if "defects/provider_down" in line]
    assert "escalations" in row and "resolve, abandon" in row
    task_id = row.split("\t")[0]  # TSV in a pipe, the id first
    code, output = invoke("task", "decide", task_id, "resolve", "--db", db)
    assert code == 0, output
    assert "provider_down now in escalation_resolved" in output
    items, stuck = asyncio.run(_read(db))
    assert items["provider_down"] == ("escalation_resolved", ItemStatus.DONE)
    assert stuck == []


@pytest.mark.parametrize("key", ["misspelled", "no_waiting", "int_double", HOSTILE])
def test_a_redrive_that_would_meet_the_same_defect_is_refused_and_changes_nothing(
    ran: Path, db: str, key: str
) -> None:
    before = _history(db, key)
    commands = ran / "commands.py"
    code, output = invoke(
        "redrive", key, "--reason", "try again", "--commands", commands, "--db", db
    )
    state, kind, _ = DEFECTS[key]
    assert code == 1, output
    assert "would fail again" in output and f"({kind}: " in output
    assert "The workflow must be fixed first" in output
    assert _history(db, key) == before
    items, _ = asyncio.run(_read(db))
    assert items[key] == (state, ItemStatus.FAILED)
    # moved past the defect by hand, the item goes on
    code, output = invoke(
        "redrive", key, "--to", "done", "--reason", "shipped by hand",
        "--commands", commands, "--db", db,
    )  # fmt: skip
    assert code == 0, output
    assert f"{key}: now in done (done)" in output


def test_a_redrive_of_a_command_error_proceeds_and_fails_again_while_unfixed(
    ran: Path, db: str
) -> None:
    # an unexpected exception cannot be foreseen: the command's code may have been fixed
    code, output = invoke(
        "redrive", "raises", "--reason", "deployed a fix",
        "--commands", ran / "commands.py", "--db", db,
    )  # fmt: skip
    assert code == 0, output
    rows = _history(db, "raises")
    assert [r["event"] for r in rows[-2:]] == ["redrive", "error"]
    error = rows[-1]["error"]
    assert isinstance(error, dict) and error["kind"] == "command_error"
