"""``statewise demo`` stands in for the systems a workflow's webhooks go to, when unset."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from statewise.cli import app

WORKFLOW = """
workflow: notify
version: 1
input: [note]
destinations:
  warehouse: {url_env: SW_DEMO_TEST_WAREHOUSE_URL, secret_env: SW_DEMO_TEST_WAREHOUSE_SECRET}
states:
  start:
    kind: initial
    transitions: [{to: tell_warehouse}]
  tell_warehouse:
    webhook: {to: warehouse, payload: note}
    transitions: [{to: told}]
  told: {kind: final}
"""


def test_the_demo_serves_unset_destinations_and_says_what_each_received(
    tmp_path: Path,
) -> None:
    example = tmp_path / "examples" / "notify"
    example.mkdir(parents=True)
    (example / "workflow.yaml").write_text(WORKFLOW, encoding="utf-8")
    (example / "items.jsonl").write_text(
        '{"key": "N-1", "data": {"note": "pick"}}\n{"key": "N/2?", "data": {"note": "pack"}}\n',
        encoding="utf-8",
    )

    done = CliRunner().invoke(
        app,
        [
            "demo",
            "--no-serve",
            "--examples",
            str(tmp_path / "examples"),
            "--db",
            str(tmp_path / "demo.sqlite"),
        ],
        env={"COLUMNS": "200"},
    )

    assert done.exit_code == 0, done.output
    assert "ended: 2 told (done)" in done.output
    assert "SW_DEMO_TEST_WAREHOUSE_URL: 2 webhook(s): notify/N-1, notify/N/2?" in done.output
    assert "SW_DEMO_TEST_WAREHOUSE_URL" not in os.environ  # restored afterwards
