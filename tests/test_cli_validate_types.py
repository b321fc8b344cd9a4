"""`statewise validate` reports the mistakes only types catch, each at its line, with the fix."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from statewise.cli import app

FIXTURES = Path(__file__).parent / "definition" / "fixtures"


def invoke(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    return result.exit_code, result.output


def test_every_typed_mistake_is_reported_with_its_line_and_fix() -> None:
    file = FIXTURES / "typed_mistakes.yaml"
    code, output = invoke("validate", file)
    assert code == 1
    expected = {
        9: "`input` of agent `classifier` uses `mesage`, which no item's context holds",
        20: "give label `hardwear`, which the `category` field of its output does not have "
        "(billing, returns, hardware); did you mean `hardware`?",
        26: 'compares `classify.category` with "hardwear", which is not one of its labels '
        "(billing, returns, hardware), so it is never true; did you mean `hardware`?",
        28: "convert explicitly, e.g. `double(classify.count)`",
        30: "the declared result `classify` has no field `categry`; did you mean `category`?",
        39: "the declared result `check` has no field `okay`; did you mean `ok`? (it has: `ok`)",
        43: "did you mean `kind: waiting`? (or give it a `command:` that runs on entry)",
    }
    lines = output.splitlines()
    for line, says in expected.items():
        assert any(text.startswith(f"{file}:{line}:") and says in text for text in lines), (
            line,
            output,
        )
    assert f"{len(expected)} problem(s) found" in output


def test_a_clean_typed_workflow_validates(tmp_path: Path) -> None:
    fixed = (FIXTURES / "typed_mistakes.yaml").read_text()
    for wrong, right in [
        ("{{ mesage }}", "{{ message }}"),
        ("hardwear: [my", "hardware: [my"),
        ('== "hardwear"', '== "hardware"'),
        ("classify.count * classify.confidence", "double(classify.count) * classify.confidence"),
        ("classify.categry", "classify.category"),
        ("check.okay", "check.ok"),
        ("  wait_for_person:\n", "  wait_for_person:\n    kind: waiting\n"),
    ]:
        assert wrong in fixed
        fixed = fixed.replace(wrong, right)
    path = tmp_path / "typed.yaml"
    path.write_text(fixed)
    code, output = invoke("validate", path)
    assert code == 0, output
    assert "ok" in output
