"""``statewise simulate`` on the command line: tables, JSON, filters, and the user's mistakes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from statewise.cli import app

from .records import SCREENING_YAML, run_for_real, screener, screening, screening_items

SRC = Path(__file__).resolve().parents[2] / "src"


def _cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def _recorded(url: str, tmp_path: Path) -> Path:
    asyncio.run(run_for_real(url, screening(), screening_items(), screener))
    changed = tmp_path / "screening-v2.yaml"
    changed.write_text(
        SCREENING_YAML.replace(">= 0.5", ">= 0.7").replace("version: 1", "version: 2"),
        encoding="utf-8",
    )
    return changed


def test_simulate_prints_the_report_as_tables_and_as_json(url: str, tmp_path: Path) -> None:
    changed = _recorded(url, tmp_path)

    code, out = _cli("simulate", changed, "--db", url)
    assert code == 0, out
    assert "replayed 20 item(s) of 'screening' through screening@2" in out
    assert "items per end or waiting state" in out and "human tasks per queue" in out
    assert "4 item(s) change" in out and "order-12" in out
    assert "after scoring: was hold [scoring.risk >= 0.5: scoring.risk=0.6], now cleared" in out
    assert "difference $+0.0000" in out
    assert "the change would have let them through: order-10, order-11" in out

    code, out = _cli("simulate", changed, "--db", url, "--format", "json")
    assert code == 0, out
    found = json.loads(out)
    assert found["definition"] == "screening@2" and found["items"] == 20
    assert [c["key"] for c in found["changed"]] == ["order-10", "order-11", "order-12", "order-13"]
    assert found["advice"][0]["saved"] == 4

    code, out = _cli("simulate", changed, "--db", url, "-f", "json", "--state", "cancelled")
    assert code == 0 and json.loads(out)["items"] == 8
    code, out = _cli("simulate", changed, "--db", url, "-f", "json", "--status", "waiting")
    assert code == 0 and json.loads(out)["items"] == 0
    code, out = _cli("simulate", changed, "--db", url, "--state", "held\x00")
    assert code == 2 and "--state: must not hold a NUL" in out
    code, out = _cli("simulate", changed, "--db", url, "--version", "2")
    assert code == 0 and "no items of workflow 'screening' match" in out
    code, out = _cli(
        "simulate", changed, "--db", url, "-f", "json", "--since", "1h", "--limit", "3"
    )
    assert code == 0 and json.loads(out)["items"] == 3


def test_simulate_refuses_mistakes_with_the_fix(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'record.sqlite'}"
    changed = _recorded(url, tmp_path)

    code, out = _cli("simulate", changed, "--db", url, "--since", "soon")
    assert code == 2 and "--since" in out and "soon" in out
    code, out = _cli("simulate", changed, "--db", url, "--limit", "0")
    assert code == 2 and "--limit" in out
    code, out = _cli("simulate", changed, "--db", tmp_path / "missing.sqlite")
    assert code == 1 and "does not exist" in out
    assert not (tmp_path / "missing.sqlite").exists()
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        SCREENING_YAML.replace("to: cleared\n        else", "to: clered\n        else")
    )
    code, out = _cli("simulate", broken, "--db", url)
    assert code == 1 and "broken.yaml:" in out and "clered" in out


def test_simulate_writes_its_report_to_a_pipe(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'record.sqlite'}"
    changed = _recorded(url, tmp_path)
    target = tmp_path / "report.txt"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    with target.open("w", encoding="utf-8") as out:
        done = subprocess.run(
            [sys.executable, "-m", "statewise", "simulate", str(changed), "--db", url],
            stdout=out, stderr=subprocess.PIPE, env=env, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = target.read_text(encoding="utf-8")
    assert "items per end or waiting state" in text and "order-13" in text


def test_simulate_names_the_defect_of_a_condition_typo(tmp_path: Path) -> None:
    """A condition the record cannot evaluate is a defect of the new YAML, not an outcome."""
    url = f"sqlite:///{tmp_path / 'record.sqlite'}"
    _recorded(url, tmp_path)
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        SCREENING_YAML.replace("when: scoring.risk >= 0.5", "when: scoring.risk >= data.limt"),
        encoding="utf-8",
    )
    code, out = _cli("simulate", typo, "--db", url)
    assert code == 1, out
    assert "20 item(s) would fail on a defect of typo.yaml" in out
    assert "order-0" in out and "condition `scoring.risk >= data.limt` read" in out

    code, out = _cli("simulate", typo, "--db", url, "--format", "json")
    assert code == 1
    found = json.loads(out[: out.rindex("}") + 1])  # the errors follow, on stderr
    assert {c["after"]["status"] for c in found["changed"]} == {"failed"}
    assert all("data.limt" in (c["stopped"] or "") for c in found["changed"])
