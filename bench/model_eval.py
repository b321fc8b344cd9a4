"""How well the offline ``local`` model classifies text it was not tuned on.

It runs the category and sentiment agents of a workflow file on the offline model, exactly as
a workflow would (a pydantic-ai agent over ``LocalModel.for_agent``, the declared output
schema), over labelled sets of short business texts, and prints the accuracy per set and field
with the confusions. Two sets ship with the project:

* ``tests/ai/data/eval_unseen.jsonl``: the frozen evaluation set, written apart from the model
  and committed before any tuning; it is only ever measured, never tuned on.
* ``tests/ai/data/dev_tuning.jsonl``: the development set that descriptions, examples and the
  model's method were tuned on.

    python bench/model_eval.py                                 # both sets, the shipped agents
    python bench/model_eval.py --workflow OTHER.yaml --category-agent A --sentiment-agent B

Each text is the agent's whole input (its ``input`` template is not rendered). The run is
deterministic: the same files always give the same figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pydantic_ai import Agent, StructuredDict

from statewise.ai.local import LocalModel
from statewise.definition import load
from statewise.definition.model import AgentSpec

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "ai" / "data"
SETS = {
    "eval (frozen, unseen)": DATA / "eval_unseen.jsonl",
    "dev (tuned on)": DATA / "dev_tuning.jsonl",
}
DEFAULT_WORKFLOW = ROOT / "examples" / "support_routing" / "workflow.yaml"


@dataclass(frozen=True)
class Score:
    """Accuracy of one agent field on one set, with its most common confusions."""

    correct: int
    total: int
    confusions: Counter[tuple[str, str]]

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def read_set(path: Path) -> list[dict[str, Any]]:
    """The labelled texts of one JSON Lines set."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


async def classify(spec: AgentSpec, texts: list[str]) -> list[dict[str, Any]]:
    """The agent's structured replies, one text at a time."""
    assert isinstance(spec.output, dict), f"agent {spec.name} needs an inline output schema"
    agent: Agent[None, dict[str, Any]] = Agent(
        LocalModel.for_agent(spec), output_type=StructuredDict(dict(spec.output))
    )
    return [(await agent.run(text)).output for text in texts]


async def score(spec: AgentSpec, field: str, rows: list[dict[str, Any]]) -> Score:
    """Compare the agent's ``field`` with each row's label of the same name."""
    replies = await classify(spec, [row["text"] for row in rows])
    confusions: Counter[tuple[str, str]] = Counter()
    correct = 0
    for row, reply in zip(rows, replies, strict=True):
        if reply.get(field) == row[field]:
            correct += 1
        else:
            confusions[(row[field], str(reply.get(field)))] += 1
    return Score(correct, len(rows), confusions)


async def main(argv: list[str] | None = None) -> int:
    """Print accuracy per set and field; exit 1 if a set is missing."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflow", type=Path, default=DEFAULT_WORKFLOW)
    parser.add_argument("--category-agent", default="classify")
    parser.add_argument("--sentiment-agent", default="sentiment")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    definition = load(args.workflow)
    agents = {
        "category": definition.agents[args.category_agent],
        "sentiment": definition.agents[args.sentiment_agent],
    }
    results: dict[str, dict[str, float]] = {}
    for name, path in SETS.items():
        if not path.exists():
            print(f"missing {path}", file=sys.stderr)
            return 1
        rows = read_set(path)
        results[name] = {}
        for field, spec in agents.items():
            result = await score(spec, field, rows)
            results[name][field] = round(result.accuracy, 4)
            common = ", ".join(
                f"{want}->{got} x{n}" for (want, got), n in result.confusions.most_common(4)
            )
            print(
                f"{name:24} {field:9} {result.correct:3}/{result.total} = "
                f"{result.accuracy:6.1%}   {common}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
