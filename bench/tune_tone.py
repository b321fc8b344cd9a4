"""Refit the weights of ``statewise.ai.tone`` on the development set, and only there.

    python bench/tune_tone.py        # prints cross-validated accuracy per l2, then the weights

The features are the ones the local model computes at run time (``tone.features``), over the
similarities of three wordings of the labels: the shipped ``sentiment`` agent of
examples/support_routing, and the generic labels of tests/ai/data/label_sets.yaml with their
descriptions, with and without their examples. Each text is one row per wording, so the weights
cannot lean on one agent's descriptions; the folds of the cross-validation split texts, not
rows. The fit is a plain multinomial logistic regression by gradient descent (numpy only), so
it is deterministic. Paste the printed ``WEIGHTS`` and ``BIAS`` into ``src/statewise/ai/tone.py``.
The frozen evaluation sets (tests/ai/data/eval_unseen.jsonl, products_eval_unseen.jsonl) are
never read here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from numpy.typing import NDArray

from statewise.ai import tone
from statewise.ai.local import LocalModel
from statewise.definition import load

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "tests" / "ai" / "data" / "dev_tuning.jsonl"
WORKFLOW = ROOT / "examples" / "support_routing" / "workflow.yaml"
L2 = 0.03
FOLDS = 5

Matrix = NDArray[np.float64]


def fit(x: Matrix, y: NDArray[np.int64], l2: float, steps: int = 3000) -> tuple[Matrix, Matrix]:
    """Softmax regression with an L2 penalty on the weights (not the bias)."""
    weights = np.zeros((x.shape[1], len(tone.POLARITY)))
    bias = np.zeros(len(tone.POLARITY))
    onehot = np.eye(len(tone.POLARITY))[y]
    for _ in range(steps):
        logits = x @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        gradient = (p - onehot) / len(y)
        weights -= 0.5 * (x.T @ gradient + l2 * weights)
        bias -= 0.5 * gradient.sum(axis=0)
    return weights, bias


def wordings() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(output schema, examples) of each wording of the polarity labels fitted under."""
    spec = load(WORKFLOW).agents["sentiment"]
    assert isinstance(spec.output, dict)
    sys.path.insert(0, str(ROOT / "bench"))
    import offline_model

    generic = offline_model.label_sets()["sentiment"]
    return [
        (dict(spec.output), dict(spec.examples)),
        offline_model.agent_parts(generic, "examples"),
        offline_model.agent_parts(generic, "descriptions"),
    ]


def main() -> None:
    rows = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line]
    blocks = []
    for schema, examples in wordings():
        model = LocalModel(examples=examples)
        blocks.append(
            [
                tone.features(model.label_similarities(schema, "sentiment", r["text"]), r["text"])
                for r in rows
            ]
        )
    x = np.array(blocks)  # wording x text x feature
    y = np.array([tone.POLARITY.index(r["sentiment"]) for r in rows])
    folds = np.array_split(np.arange(len(y)), FOLDS)
    for l2 in (0.01, 0.03, 0.1, 0.3):
        right = np.zeros(len(x))
        for held in folds:
            train = np.setdiff1d(np.arange(len(y)), held)
            w, b = fit(x[:, train].reshape(-1, x.shape[2]), np.tile(y[train], len(x)), l2)
            right += [np.sum((block[held] @ w + b).argmax(axis=1) == y[held]) for block in x]
        shares = ", ".join(f"{r / len(y):.1%}" for r in right)
        print(f"l2={l2:<5} {FOLDS}-fold accuracy per wording on the development set: {shares}")
    x = x.reshape(-1, x.shape[2])
    y = np.tile(y, len(blocks))
    weights, bias = fit(x, y, L2)
    print("WEIGHTS = (")
    for name, row in zip(tone.FEATURES, weights, strict=True):
        print(f"    ({', '.join(f'{v:.2f}' for v in row)}),  # {name}")
    print(")")
    print(f"BIAS = ({', '.join(f'{v:.2f}' for v in bias)})")


if __name__ == "__main__":
    main()
