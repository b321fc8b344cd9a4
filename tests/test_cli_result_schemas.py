"""Declared command results: validate checks conditions against them, run enforces them.

A command declares its result in YAML (``result_schema:``) or in Python (``@registry.command(
result=Model)``). A result that does not fit is invalid output, a defect once its retries are
spent (or the workflow's ``on: error`` route), never a business outcome: on both stores.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from statewise import CommandRegistry
from statewise.engine import ItemStatus
from statewise.errors import ConfigurationError
from statewise.store import open_store
from test_cli import invoke

WORKFLOW = """\
workflow: results
input: [case]
states:
  start:
    kind: initial
    transitions:
      - {when: case == "yaml", to: counted}
      - {when: case == "model", to: totalled}
      - {else: true, to: handled}
  counted:
    command:
      name: count_lines
      retry: {attempts: 2, backoff: 10ms}
      result_schema:
        type: object
        required: [n]
        properties: {n: {type: integer}}
    transitions:
      - {when: counted.n > 2, to: done}
      - {else: true, to: done}
  totalled:
    command: {name: totals, retry: {attempts: 2, backoff: 10ms}}
    transitions:
      - {when: totalled.total > 2, to: done}
      - {else: true, to: done}
  handled:
    command:
      name: count_lines
      result: tally
      result_schema: {type: object, properties: {n: {type: integer}}}
    transitions:
      - {to: done}
      - {on: error, to: by_hand}
  by_hand: {kind: final}
  done: {kind: final}
"""

COMMANDS = """\
from pydantic import BaseModel

from statewise import CommandRegistry

registry = CommandRegistry()


class Totals(BaseModel):
    total: int


@registry.command()
def count_lines(ctx):
    return {"n": 3} if ctx.key.startswith("fits") else {"n": "three"}


@registry.command(result=Totals)
def totals(ctx):
    return {"total": 5} if ctx.key.startswith("fits") else {"total": "lots"}
"""


def project(tmp_path: Path, workflow: str = WORKFLOW) -> Path:
    (tmp_path / "results.yaml").write_text(workflow)
    (tmp_path / "commands.py").write_text(COMMANDS)
    return tmp_path


async def _items(db: str) -> dict[str, tuple[str, ItemStatus]]:
    store = open_store(db)
    try:
        assert list(await store.stuck_items()) == []
        return {i.key: (i.state, i.status) for i in await store.list_items(limit=100)}
    finally:
        await store.close()


def test_a_result_that_breaks_its_declared_schema_is_a_defect_not_an_outcome(
    tmp_path: Path, db: str
) -> None:
    root = project(tmp_path)
    cases = {"fits-yaml": "yaml", "fits-model": "model", "bad-yaml ü/%?": "yaml"}
    cases |= {"bad-model": "model", "bad-handled": "handled"}
    lines = [json.dumps({"key": k, "data": {"case": c}}) for k, c in cases.items()]
    (root / "items.jsonl").write_text("\n".join(lines) + "\n")
    code, output = invoke(
        "run", root / "results.yaml", "--items", root / "items.jsonl",
        "--commands", root / "commands.py", "--db", db,
    )  # fmt: skip
    assert code == 0, output
    items = asyncio.run(_items(db))
    assert items["fits-yaml"] == ("done", ItemStatus.DONE)
    assert items["fits-model"] == ("done", ItemStatus.DONE)
    assert items["bad-handled"] == ("by_hand", ItemStatus.DONE)
    for key, state, field in [
        ("bad-yaml ü/%?", "counted", "n"),
        ("bad-model", "totalled", "total"),
    ]:
        assert items[key] == (state, ItemStatus.FAILED), key
        code, output = invoke("history", key, "--db", db, "--format", "jsonl")
        assert code == 0, output
        error = json.loads(output.splitlines()[-1])["error"]
        assert error["kind"] == "invalid_output", error
        assert "does not fit its declared result schema" in error["message"]
        assert field in error["message"]


def test_validate_checks_conditions_against_yaml_and_registered_result_schemas(
    tmp_path: Path,
) -> None:
    wrong = WORKFLOW.replace("counted.n > 2", "counted.m > 2").replace(
        "totalled.total > 2", "totalled.totl > 2"
    )
    root = project(tmp_path, wrong)
    code, output = invoke("validate", root / "results.yaml", "--commands", root / "commands.py")
    assert code == 1
    file = root / "results.yaml"
    assert (
        f"{file}:19:16: condition `counted.m > 2` reads `counted.m`, but the declared result "
        f"`counted` has no field `m` (it has: `n`)"
    ) in output
    assert (
        f"{file}:24:16: condition `totalled.totl > 2` reads `totalled.totl`, but the declared "
        f"result `totalled` has no field `totl`; did you mean `total`? (it has: `total`)"
    ) in output
    # Without --commands the Python model is unknown: that result stays dynamic.
    code, output = invoke("validate", root / "results.yaml")
    assert code == 1
    assert "counted.m" in output and "totalled.totl" not in output


def test_the_clean_workflow_validates(tmp_path: Path) -> None:
    root = project(tmp_path)
    code, output = invoke("validate", root / "results.yaml", "--commands", root / "commands.py")
    assert code == 0, output
    assert "ok" in output


def test_a_result_declared_with_something_other_than_a_pydantic_model_is_refused() -> None:
    registry = CommandRegistry()
    with pytest.raises(ConfigurationError, match="must be a pydantic BaseModel subclass"):
        registry.register("count", lambda ctx: {}, dict)  # type: ignore[arg-type]
