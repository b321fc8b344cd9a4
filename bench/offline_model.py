"""The offline ``local`` model on text written apart from the project, with generic labels.

Each label set of ``tests/ai/data/label_sets.yaml`` (a label, a one-line description and at
most three generic examples, as a user would write them, fixed before any result was looked
at) becomes an agent's output schema and examples, at three levels of the sweep:

* ``labels``: the labels alone (an ``enum``);
* ``descriptions``: each label with its description (``oneOf: [{const, description}]``);
* ``examples``: descriptions and the label's examples (``AgentSpec.examples``).

Each is run through a pydantic-ai agent over ``LocalModel``, as a workflow runs it, on:

* ``tests/ai/data/eval_unseen.jsonl``: 130 support texts (category, sentiment), frozen;
* ``tests/ai/data/products_eval_unseen.jsonl``: product listings (8 categories), frozen;
* ``tests/ai/data/dev_tuning.jsonl`` and ``products_dev.jsonl``: the sets tuned on.

The frozen sets are only measured: nothing is tuned on their texts or their errors.

    python bench/offline_model.py                     # the table: every set, every level
    python bench/offline_model.py --json FILE         # also write the figures
    python bench/offline_model.py --errors dev        # the confusions of the tuning sets

The run is deterministic: the same files always give the same figures.
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

import yaml
from model_eval import Score, read_set  # the same scoring as the support agents' evaluation
from pydantic_ai import Agent, StructuredDict

from statewise.ai.embeddings import Encoder
from statewise.ai.local import LocalModel

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "ai" / "data"
LABEL_SETS = DATA / "label_sets.yaml"
LEVELS = ("labels", "descriptions", "examples")


@dataclass(frozen=True)
class Task:
    """One field of one labelled set, judged with one label set."""

    name: str
    path: Path
    label_set: str
    frozen: bool


TASKS = (
    Task("support category", DATA / "eval_unseen.jsonl", "support_category", frozen=True),
    Task("support sentiment", DATA / "eval_unseen.jsonl", "sentiment", frozen=True),
    Task("product category", DATA / "products_eval_unseen.jsonl", "product_category", True),
    Task("support category", DATA / "dev_tuning.jsonl", "support_category", frozen=False),
    Task("support sentiment", DATA / "dev_tuning.jsonl", "sentiment", frozen=False),
    Task("product category", DATA / "products_dev.jsonl", "product_category", frozen=False),
)


def label_sets() -> dict[str, Any]:
    """The generic label sets, as written in ``label_sets.yaml``."""
    loaded: dict[str, Any] = yaml.safe_load(LABEL_SETS.read_text(encoding="utf-8"))
    return loaded


def agent_parts(label_set: dict[str, Any], level: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The output schema and examples one level of the sweep gives the agent."""
    field = label_set["field"]
    labels = label_set["labels"]
    if level == "labels":
        prop: dict[str, Any] = {"type": "string", "enum": list(labels)}
    else:
        prop = {
            "type": "string",
            "oneOf": [{"const": k, "description": v["description"]} for k, v in labels.items()],
        }
    schema = {"type": "object", "properties": {field: prop}, "required": [field]}
    examples = (
        {field: {k: list(v.get("examples", ()))[:3] for k, v in labels.items()}}
        if level == "examples"
        else {}
    )
    return schema, examples


async def score(
    label_set: dict[str, Any], level: str, rows: list[dict[str, Any]], encoder: Encoder | None
) -> Score:
    """Run the agent of one level over the rows and compare its field with their labels."""
    schema, examples = agent_parts(label_set, level)
    field = label_set["field"]
    agent: Agent[None, dict[str, Any]] = Agent(
        LocalModel(examples=examples, encoder=encoder), output_type=StructuredDict(schema)
    )
    confusions: Counter[tuple[str, str]] = Counter()
    correct = 0
    for row in rows:
        got = (await agent.run(row["text"])).output.get(field)
        if got == row[field]:
            correct += 1
        else:
            confusions[(row[field], str(got))] += 1
    return Score(correct, len(rows), confusions)


async def evaluate(
    tasks: tuple[Task, ...] = TASKS,
    levels: tuple[str, ...] = LEVELS,
    encoder: Encoder | None = None,
) -> dict[tuple[str, bool, str], Score]:
    """Every task at every level; tasks whose set is not there are left out."""
    sets = label_sets()
    results: dict[tuple[str, bool, str], Score] = {}
    for task in tasks:
        if not task.path.exists():
            continue
        rows = read_set(task.path)
        for level in levels:
            results[(task.name, task.frozen, level)] = await score(
                sets[task.label_set], level, rows, encoder
            )
    return results


def table(results: dict[tuple[str, bool, str], Score], errors: str | None) -> str:
    """One line per task: its set, its size and the accuracy at each level."""
    lines = [f"{'task':20} {'set':17} {'n':>4} " + " ".join(f"{lv:>12}" for lv in LEVELS)]
    names = dict.fromkeys((name, frozen) for name, frozen, _ in results)
    for name, frozen in names:
        scores = {lv: results.get((name, frozen, lv)) for lv in LEVELS}
        total = next(s.total for s in scores.values() if s)
        cells = " ".join(f"{s.accuracy:12.1%}" if s else f"{'-':>12}" for s in scores.values())
        kind = "frozen, unseen" if frozen else "dev (tuned on)"
        lines.append(f"{name:20} {kind:17} {total:4} {cells}")
        if (errors == "dev" and not frozen) or errors == "all":
            best = scores["examples"] or next(s for s in scores.values() if s)
            common = ", ".join(f"{w}->{g} x{n}" for (w, g), n in best.confusions.most_common(8))
            lines.append(f"{'':20}   {common}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the table; optionally write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--errors",
        choices=["dev", "all"],
        help="print the confusions of the tuning sets (dev) or of every set (all)",
    )
    args = parser.parse_args(argv)
    results = asyncio.run(evaluate())
    print(table(results, args.errors))
    if args.json:
        figures: dict[str, dict[str, float]] = {}
        for (name, frozen, level), result in results.items():
            key = f"{name} ({'frozen' if frozen else 'dev'})"
            figures.setdefault(key, {})[level] = round(result.accuracy, 4)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
