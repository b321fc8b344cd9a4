"""What a writer tells observers about its commits: the hook metrics and traces hang on.

The worker knows nothing of Prometheus or OpenTelemetry; it hands every batch it committed
(steps, outcomes and the wall-clock span of the transaction) to a :class:`CommitObserver`,
which is where :mod:`statewise.observe` records counters, histograms and spans. With no
observer set, a commit costs one ``is None`` test more. Every command attempt whose result a
step accepted is in its audit rows (command, duration, error), so commits alone carry the
command durations too: nothing needs to watch the command executor itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from statewise.engine.result import StepResult
from statewise.store.base import CommitOutcome, CommitStatus, StepCommit


@dataclass(frozen=True, slots=True)
class CommitBatch:
    """One call to ``Store.commit``: the steps, what became of each, and when it ran.

    ``started`` and ``ended`` are epoch seconds (``time.time``) around the transaction.
    """

    commits: Sequence[StepCommit]
    outcomes: Sequence[CommitOutcome]
    started: float
    ended: float

    def committed(self) -> Iterator[StepResult]:
        """The steps that committed and recorded something (a move, a retry, a late cost)."""
        for commit, outcome in zip(self.commits, self.outcomes, strict=True):
            if outcome.status is CommitStatus.COMMITTED and commit.result.history:
                yield commit.result


class CommitObserver(Protocol):
    """Told of every batch a writer committed; it must be quick and must not raise."""

    def observe(self, batch: CommitBatch) -> None:
        """Record what the batch did."""


class CommitObservers:
    """Several observers as one (metrics and traces side by side)."""

    def __init__(self, *observers: CommitObserver) -> None:
        self.observers = observers

    def observe(self, batch: CommitBatch) -> None:
        """Hand the batch to each observer in turn."""
        for observer in self.observers:
            observer.observe(batch)
