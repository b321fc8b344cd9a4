"""Sentiment for the local model: what sentence embeddings miss about tone, put back.

An embedding places "Order 5531 shows delivered but is not here." next to angry complaints
about the same parcel: it encodes the topic far more than the mood. So for a field whose labels
are the polarity scale ``negative`` / ``neutral`` / ``positive``, the local model does not take
the most similar label alone. It combines, in one small linear model:

* how similar the text is to each label's examples and description (the embedding's view);
* VADER's lexicon scores (the ``vaderSentiment`` package: word valence with negation,
  intensifiers, capitals and punctuation, ``not bad`` included);
* cues neither sees: shouting (words in capitals that are not acronyms), exclamation marks,
  sarcasm (a praising phrase around a complaint, or praise next to scare quotes), persistence
  ("third time", "still nothing", "again"), emoji, thanks, a plain question, politeness
  ("please", "could you", "kind regards"), the form of a report or note (a ticket, call or chat
  note, a bug report, a list of steps or fields, "FYI"), and a problem that is not resolved
  ("I'm still stuck", "that didn't help", "no reply"), which reads calm word by word.

``WEIGHTS`` and ``BIAS`` were fitted once by multinomial logistic regression on the project's
development set of 150 support texts (``bench/tune_tone.py`` refits and prints them), never
on the frozen evaluation sets. Each text is fitted under two wordings of the labels (the
support example's sentiment agent, and the generic labels of ``tests/ai/data/label_sets.yaml``
with and without their examples), so the weights do not lean on one agent's descriptions.
They are constants: the model stays deterministic.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

POLARITY = ("negative", "neutral", "positive")
"""The labels, in the order of ``WEIGHTS``' columns."""

FEATURES = (
    "similarity_negative",
    "similarity_neutral",
    "similarity_positive",
    "lexicon_compound",
    "lexicon_positive",
    "lexicon_negative",
    "shouting",
    "exclamations",
    "sarcasm",
    "persistence",
    "negative_emoji",
    "positive_emoji",
    "thanks",
    "question",
    "politeness",
    "report",
    "unresolved",
)

# Fitted by bench/tune_tone.py on tests/ai/data/dev_tuning.jsonl under three wordings of the
# labels (l2 = 0.03); columns: POLARITY.
WEIGHTS: tuple[tuple[float, float, float], ...] = (
    (0.30, -0.21, -0.08),  # similarity_negative
    (-0.08, 0.31, -0.22),  # similarity_neutral
    (-0.22, -0.09, 0.31),  # similarity_positive
    (-1.19, -0.29, 1.48),  # lexicon_compound
    (-0.25, -0.20, 0.45),  # lexicon_positive
    (0.24, -0.19, -0.05),  # lexicon_negative
    (0.38, -0.25, -0.12),  # shouting
    (-0.17, -0.25, 0.42),  # exclamations
    (0.26, -0.14, -0.12),  # sarcasm
    (0.37, -0.37, 0.00),  # persistence
    (0.14, -0.11, -0.03),  # negative_emoji
    (-0.13, -0.13, 0.25),  # positive_emoji
    (-0.14, -0.77, 0.91),  # thanks
    (-0.98, 0.57, 0.41),  # question
    (-0.30, 0.39, -0.09),  # politeness
    (-0.41, 0.61, -0.20),  # report
    (0.10, 0.01, -0.11),  # unresolved
)
BIAS: tuple[float, float, float] = (0.60, 0.29, -0.88)

SIMILARITY_SCALE = 10.0
"""Label similarities differ by hundredths; centred and scaled they weigh like the cues."""

_ACRONYMS = frozenset(
    {
        "VAT",
        "GDPR",
        "B2B",
        "USB",
        "EU",
        "UK",
        "US",
        "PDF",
        "FYI",
        "DHL",
        "UPS",
        "DPD",
        "GLS",
        "ID",
        "PIN",
        "SMS",
        "API",
        "CEO",
        "ASAP",
        "EUR",
        "USD",
        "GBP",
        "FAQ",
        "OK",
        "TV",
        "PC",
        "IBAN",
        "ETA",
        "HDMI",
        "LED",
        "QR",
        "XL",
        "XXL",
        "SKU",
        "IOS",
        "CSV",
    }
)
_PRAISE = (
    r"thank(s| you)|love|loved|great|brilliant|amazing|fantastic|pleased|happy|delighted|"
    r"well done|perfect|awesome|excellent|wonderful|made my day|smooth"
)
_THANKS = re.compile(rf"\b({_PRAISE})\b", re.IGNORECASE)
_SARCASM = re.compile(
    r"\b(oh (great|wonderful|brilliant|lovely|perfect)|love how|thanks for nothing|"
    r"money well spent|really classy|just perfect|how lovely|what a joke|marvellous|genius)\b"
    r"|\b(fantastic|lovely|brilliant|great)( service| job| stuff)?(, really)?\.",
    re.IGNORECASE,
)
_SCARE_QUOTES = re.compile(r"['\"\u2018\u201c]([A-Za-z][A-Za-z \-]{1,25})['\"\u2019\u201d]")
_PERSISTENCE = re.compile(
    r"\b(third|3rd|fourth|second) time\b"
    r"|\b(asked|written|called|emailed|e-mailed|told you)\b.{0,20}"
    r"\b(twice|three times|again|\d+ times)\b"
    r"|\bstill (nothing|not|no|waiting|haven'?t|hasn'?t)\b|\byet again\b|\bagain\b",
    re.IGNORECASE,
)
_POLITE = re.compile(
    r"\b(please|kindly|hello|hi|dear|good (morning|afternoon|evening)|could you|would you|"
    r"thanks in advance|(kind |best )?regards|i would like|appreciate)\b",
    re.IGNORECASE,
)
_REPORT = re.compile(
    r"^\s*(chat|call|ticket|case|bug report|note|notes|fyi|steps|summary)\b[^\n]{0,20}[:\-]"
    r"|^\s*(-|\*|\d+[.)])\s|\bcustomer (reports|wants|asks|requests|says)\b"
    r"|\bjust (letting you know|so you know|fyi)\b",
    re.IGNORECASE | re.MULTILINE,
)
_UNRESOLVED = re.compile(
    r"\bstuck\b|\b(did ?n[o']t|does ?n[o']t|has ?n[o']t|have ?n[o']t) (help|work|change)\b"
    r"|\bstill (get|getting|receiv\w*|charg\w*|broken|wrong|missing|the same|down|failing|"
    r"can'?t|cannot|don'?t|doesn'?t|isn'?t|am not|not working)\b"
    r"|\bno (reply|answer|response|luck|one|change)\b|\bnobody\b|\bnot (resolved|solved|fixed)\b",
    re.IGNORECASE,
)
_SHOUTED = re.compile(r"\b[A-Z]{3,}\b")
_NEGATIVE_EMOJI = frozenset("😡😠🤬👎😤😞😢😩😫🙄💸😒😣")
_POSITIVE_EMOJI = frozenset("🙂😊😀😍❤👍🎉🎂🙏✨🥰😄😁🤩💯🥳")

Vector = NDArray[np.float64]


def is_polarity(labels: Sequence[str]) -> bool:
    """Whether a field's labels are exactly the polarity scale this model was fitted for."""
    return sorted(labels) == sorted(POLARITY)


class _Lexicon(Protocol):
    def polarity_scores(self, text: str) -> dict[str, float]: ...


@cache
def _lexicon() -> _Lexicon:
    """VADER's analyser, loaded on first use (it reads its lexicon file once)."""
    module = importlib.import_module("vaderSentiment.vaderSentiment")
    analyser: _Lexicon = module.SentimentIntensityAnalyzer()
    return analyser


def features(similarities: Mapping[str, float], text: str) -> Vector:
    """The model's inputs for one text, in ``FEATURES`` order."""
    sims = np.array([similarities[label] for label in POLARITY], dtype=np.float64)
    centred = (sims - sims.mean()) * SIMILARITY_SCALE
    lexicon = _lexicon().polarity_scores(text)
    shouted = sum(word not in _ACRONYMS for word in _SHOUTED.findall(text))
    sarcastic = bool(_SARCASM.search(text)) or bool(
        _SCARE_QUOTES.search(text) and _THANKS.search(text)
    )
    compound, praise, blame = lexicon["compound"], lexicon["pos"], lexicon["neg"]
    if sarcastic:  # the lexicon reads the praise literally; sarcasm means the opposite
        compound, praise, blame = -abs(compound), blame, praise
    return np.array(
        [
            *centred,
            compound,
            praise,
            blame,
            min(shouted, 3) / 3,
            min(text.count("!"), 3) / 3,
            float(sarcastic),
            float(bool(_PERSISTENCE.search(text))),
            min(sum(ch in _NEGATIVE_EMOJI for ch in text), 2) / 2,
            min(sum(ch in _POSITIVE_EMOJI for ch in text), 2) / 2,
            float(bool(_THANKS.search(text))),
            float(text.strip().endswith("?")),
            float(bool(_POLITE.search(text))),
            float(bool(_REPORT.search(text))),
            float(bool(_UNRESOLVED.search(text))),
        ],
        dtype=np.float64,
    )


def probabilities(similarities: Mapping[str, float], text: str) -> dict[str, float]:
    """How likely each polarity label is, given the embedding's similarities and the text."""
    logits = features(similarities, text) @ np.array(WEIGHTS) + np.array(BIAS)
    exp = np.exp(logits - logits.max())
    shares = exp / exp.sum()
    return {label: float(share) for label, share in zip(POLARITY, shares, strict=True)}
