"""`statewise history` shows what each step produced, on SQLite and on PostgreSQL.

A draft is scored, revised and scored again: both rounds' scores stay in the history (the
context keeps only the last), the ``else`` that sent it back says which guard was false and
on what value, and the reason the scorer gave is shown beside the decision.
"""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import invoke

WORKFLOW = """\
workflow: drafts
version: 1
states:
  brand_check:
    kind: initial
    command: {name: score_brand, result: brand}
    transitions:
      - when: brand.score >= 80
        to: published
      - else: true
        to: revise
  revise:
    command: revise
    max_visits: 2
    transitions:
      - to: brand_check
  published:
    kind: final
"""

COMMANDS = """\
from statewise import CommandRegistry

registry = CommandRegistry()


@registry.command()
def score_brand(ctx):
    rounds = ctx.context.get("revise", {}).get("round", 0)
    score = 55 + 30 * rounds
    verdict = "on brand" if score >= 80 else "the tone is off"
    reason = f"round {rounds + 1}: {verdict}"
    return {"score": score, "reason": reason, "title": ctx.context["title"]}


@registry.command()
def revise(ctx):
    return {"round": ctx.context.get("revise", {}).get("round", 0) + 1}
"""

HOSTILE = "naïve \x00 ключ ✓ <b>%/?</b>"


def test_history_keeps_both_rounds_of_a_loop_and_says_why_the_else_was_taken(
    tmp_path: Path, db: str
) -> None:
    (tmp_path / "drafts.yaml").write_text(WORKFLOW)
    (tmp_path / "commands.py").write_text(COMMANDS)
    line = json.dumps({"key": "CNT-1", "data": {"title": HOSTILE}})
    (tmp_path / "items.jsonl").write_text(line + "\n")
    code, output = invoke(
        "run", tmp_path / "drafts.yaml", "--items", tmp_path / "items.jsonl",
        "--commands", tmp_path / "commands.py", "--db", db,
    )  # fmt: skip
    assert code == 0, output

    code, output = invoke("history", "CNT-1", "--db", db, "--format", "jsonl")
    assert code == 0, output
    rows = [json.loads(text) for text in output.splitlines()]
    assert rows[0]["output"] == {"title": HOSTILE}
    scores = [
        (row["visit"], row["output"]["score"], row["to_state"])
        for row in rows
        if row["command"] == "score_brand"
    ]
    assert scores == [(1, 55, "revise"), (2, 85, "published")]
    first = next(row for row in rows if row["command"] == "score_brand")
    assert first["condition"] == "else" and first["output"]["title"] == HOSTILE
    assert first["rejected"] == [{"condition": "brand.score >= 80", "values": {"brand.score": 55}}]
    assert [row["output"] for row in rows if row["command"] == "revise"] == [{"round": 1}]

    code, output = invoke("history", "CNT-1", "--db", db, "--format", "table")
    assert code == 0, output
    assert "[not brand.score >= 80 (brand.score=55)]" in output
    assert "because: round 1: the tone is off" in output
    assert '{"score":85,"reason":"round 2: on brand…' in output  # cut to one short line
