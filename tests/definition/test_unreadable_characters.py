"""A workflow file holding a character YAML refuses to read is a located problem, not a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from statewise.cli import app
from statewise.definition import loads
from statewise.errors import DefinitionError


@pytest.mark.parametrize("character", ["\x00", "\x84", "\x1b"])
def test_a_control_character_is_reported_with_its_line_and_column(character: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        loads(f"workflow: w\nstates{character}: {{}}\n", file="w.yaml")
    (problem,) = raised.value.problems
    assert (problem.file, problem.line, problem.column) == ("w.yaml", 2, 7)
    assert f"#x{ord(character):04x}" in problem.message and "remove it" in problem.message


def test_validate_names_the_file_and_exits_1(tmp_path: Path) -> None:
    file = tmp_path / "w.yaml"
    file.write_text("workflow: w\nstates:\n  a\x84: {kind: final}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(file)], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert f"{file}:3:4: YAML cannot read character #x0084" in result.output
