"""Listings at volume: whole names in a pipe and on a narrow terminal, totals, typos named.

Every table goes through ``emit_table``: in a pipe it is TSV with a header line, on a
terminal a table that grows wider rather than cut a name, and ``--format json`` is JSON.
The CLI runs here as a user runs it, on hostile names: long, non-ASCII, with ``%/?``, and a
decision whose comment and data hold tabs and newlines.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from typer.testing import CliRunner

from statewise.cli import app, common
from statewise.cli.common import Col, OutputFormat, emit_table

WORKFLOW = "invoice_approval_for_the_northern_european_region_finance_team"
STATE = "brand_check_by_the_legal_department_of_the_group"
QUEUE = "legal_reviewers_of_the_northern_region"
KEYS = [
    "INV-2026-000123456789-northern-region-finance-%/?-ünï-日本",
    "a key with spaces that is long enough to be wrapped by a table",
    "k" * 300,
]
DEFINITION = f"""\
workflow: {WORKFLOW}
version: 1
states:
  intake:
    kind: initial
    transitions:
      - to: {STATE}
  {STATE}:
    kind: human
    task: {{queue: {QUEUE}, title: Check the brand}}
    transitions:
      - on: approve
        to: approved_and_archived
  approved_and_archived: {{kind: final}}
"""
COMMENT = "looks fine\tto me\nsecond line"
DATA = {"note": "São Paulo\tok", "n": 3}
PIPE = {"COLUMNS": "200"}
NARROW_TTY = {"TTY_COMPATIBLE": "1", "COLUMNS": "40"}


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the CLI with stdout captured: a pipe, unless ``env`` makes it a terminal."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=env or PIPE)
    return result.exit_code, result.output


@pytest.fixture
def store(tmp_path: Path, db: str) -> str:
    """Three items with hostile keys waiting in a long-named state; the first one decided."""
    (tmp_path / "w.yaml").write_text(DEFINITION, encoding="utf-8")
    items = "".join(json.dumps({"key": key, "data": {"amount": 1}}) + "\n" for key in KEYS)
    (tmp_path / "items.jsonl").write_text(items, encoding="utf-8")
    code, out = invoke("run", tmp_path / "w.yaml", "--items", tmp_path / "items.jsonl", "--db", db)
    assert code == 0, out
    code, out = invoke(
        "task", "decide", "1", "approve", "--comment", COMMENT, "--data", json.dumps(DATA),
        "--db", db,
    )  # fmt: skip
    assert code == 0, out
    return db


def tsv(output: str) -> list[list[str]]:
    """The TSV lines of an output (notes on stderr are the lines without a tab)."""
    return [line.split("\t") for line in output.splitlines() if "\t" in line]


def test_items_in_a_pipe_are_tsv_with_every_name_whole(store: str) -> None:
    code, out = invoke("items", "--db", store)
    assert code == 0, out
    header, *rows = tsv(out)
    assert header == ["key", "workflow", "state", "status", "in state for", "steps"]
    assert sorted(row[0] for row in rows) == sorted(KEYS)
    assert {row[1] for row in rows} == {f"{WORKFLOW}@1"}
    assert {row[2] for row in rows} == {STATE, "approved_and_archived"}
    assert "…" not in out


def test_items_say_how_many_match_beyond_the_limit(store: str) -> None:
    code, out = invoke("items", "--limit", "1", "--db", store)
    assert code == 0, out
    assert len(tsv(out)) == 2  # the header and one item
    assert "1 of 3 items (use --limit to list more)" in out
    code, out = invoke("items", "--limit", "3", "--db", store)
    assert code == 0 and "use --limit" not in out


def test_items_name_a_state_or_workflow_that_does_not_exist(store: str) -> None:
    code, out = invoke("items", "-w", WORKFLOW, "--state", "brand_chek", "--db", store)
    assert code == 1
    assert f"workflow {WORKFLOW!r} has no state 'brand_chek'" in out
    assert f"did you mean {STATE!r}?" in out and "approved_and_archived" in out
    code, out = invoke("items", "--state", "brand_check", "--db", store)
    assert code == 1
    assert f"no stored workflow has a state 'brand_check'; did you mean {STATE!r}" in out
    code, out = invoke("items", "--state", "zzz%/?日本", "--db", store)
    assert code == 1 and "no stored workflow has a state 'zzz%/?日本'" in out
    code, out = invoke("items", "-w", f"{WORKFLOW}@1", "--state", "intak", "--db", store)
    assert code == 1 and f"workflow '{WORKFLOW}@1' has no state 'intak'" in out
    assert "did you mean 'intake'?" in out
    code, out = invoke("items", "-w", "nope", "--db", store)
    assert code == 1 and f"no workflow 'nope' is stored (stored: {WORKFLOW})" in out
    code, out = invoke("items", "--state", "approved_and_archived", "--db", store)
    assert code == 0 and tsv(out)[1][0] == KEYS[0]  # a real state lists, even with no -w


def test_history_has_the_time_and_a_decisions_comment_and_data(store: str) -> None:
    code, out = invoke("history", KEYS[0], "--db", store)
    assert code == 0, out
    header, *rows = tsv(out)
    assert header[:5] == ["#", "at", "from", "to", "event"]
    decided = rows[-1]
    assert decided[1].endswith(" UTC") and decided[1][:2] == "20"
    assert decided[2] == STATE and decided[3] == "approved_and_archived"
    assert decided[header.index("why")] == "comment: looks fine\\tto me\\nsecond line"
    data = decided[header.index("output")].replace("\\\\", "\\")  # TSV's escape undone
    assert json.loads(data) == DATA
    code, out = invoke("history", KEYS[0], "--db", store, "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert rows[-1]["decision"]["comment"] == COMMENT and rows[-1]["decision"]["data"] == DATA


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["items"], [*KEYS, WORKFLOW, STATE]),
        (["status"], [WORKFLOW, STATE]),
        (["workflows"], [WORKFLOW]),
        (["task", "list"], [*(f"{WORKFLOW}/{key}" for key in KEYS[1:]), STATE, QUEUE]),
        (["history", KEYS[0]], [STATE, "approved_and_archived", "UTC"]),
        (["show", KEYS[1]], [KEYS[1], WORKFLOW, STATE, QUEUE]),
    ],
)
def test_a_narrow_terminal_shows_every_name_whole(
    store: str, args: list[str], names: list[str]
) -> None:
    """40 columns: the table grows wider than the terminal rather than break a name."""
    code, out = invoke(*args, "--db", store, env=NARROW_TTY)
    assert code == 0, out
    assert "┃" in out and "…" not in out  # a table, not TSV
    for name in names:
        assert name in out


def test_format_json_and_tsv_are_chosen_on_a_terminal_too(store: str) -> None:
    code, out = invoke("items", "--format", "json", "--db", store, env=NARROW_TTY)
    assert code == 0
    assert {row["key"] for row in json.loads(out)} == set(KEYS)
    code, out = invoke("status", "-f", "tsv", "--db", store, env=NARROW_TTY)
    assert code == 0 and tsv(out)[0] == ["workflow", "state", "status", "items", "oldest for"]
    code, out = invoke("task", "list", "--format", "json", "--db", store)
    assert code == 0 and {row["queue"] for row in json.loads(out)} == {QUEUE}
    code, out = invoke("workflows", "--format", "table", "--db", store)  # a table in a pipe
    assert code == 0 and "┃" in out and "…" not in out


def _narrow_console() -> Console:
    return Console(width=40, force_terminal=True, color_system=None, file=io.StringIO())


def test_emit_table_on_a_narrow_terminal_keeps_names_and_folds_prose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = _narrow_console()
    monkeypatch.setattr(common, "console", screen)
    long_key = "São-Paulo-" + "x" * 80
    prose = "because the customer asked about a very long thing indeed"
    emit_table(["key", Col("why", prose=True)], [[long_key, Text(prose, style="red")]])
    shown = screen.file.getvalue()  # type: ignore[attr-defined]
    assert long_key in shown and "…" not in shown
    assert all(word in shown for word in prose.split())


def test_emit_table_shows_control_characters_as_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = _narrow_console()
    monkeypatch.setattr(common, "console", screen)
    emit_table(["name", Col("note", prose=True)], [["a\tb\x1b[31m", "line one\nline two"]])
    shown = screen.file.getvalue()  # type: ignore[attr-defined]
    assert "a\\tb\\x1b[31m" in shown and "\x1b" not in shown
    assert "line one" in shown and "\\n" not in shown  # prose keeps its lines


def test_tsv_escapes_tabs_newlines_and_backslashes(capsys: pytest.CaptureFixture[str]) -> None:
    cells = ["a\tb", "c\nd\\e", "日本 %/?"]
    emit_table(["x", "y", "z"], [cells], fmt=OutputFormat.TSV, title="a title")
    out = capsys.readouterr().out
    assert out == "# a title\nx\ty\tz\na\\tb\tc\\nd\\\\e\t日本 %/?\n"
    emit_table(["x", "y", "z"], [cells], fmt=OutputFormat.JSON)
    assert json.loads(capsys.readouterr().out) == [dict(zip("xyz", cells, strict=True))]
