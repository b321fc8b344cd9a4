"""What every engine of the benchmark is given: the scenario spec, the items, the timing.

Kept apart from the engines so that statewise (``scenarios.py``) and the hand-written baselines
(``baselines.py``) start from exactly the same items and are timed by the same clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from commands import LANGUAGES
from measure import cpu_seconds

JSON = Any
Engine = Literal["statewise", "baseline", "durable"]
Counts = dict[str, JSON]
FINAL_STATE = "publish"
ITEM_BYTES = 1024
_FILLER = "The quick brown fox jumps over the lazy dog while the editor reads the draft. "


@dataclass(frozen=True, slots=True)
class Spec:
    """What one scenario process runs.

    ``transitions`` is the total the baselines must do (taken from a statewise run of the same
    size); statewise ignores it. ``window`` > 0 feeds statewise: only that many items are
    started up front, and each one that finishes admits the next through ``Runner.start``
    while the runner runs, as a service feeds its in-process runner (0: all up front).
    """

    name: str
    engine: Engine
    items: int
    db_path: str
    latency: float = 0.0
    jitter: float = 0.0
    concurrency: int = 64
    batch_size: int = 256
    transitions: int = 0
    window: int = 0


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall time of a run, split into starting the items and running them to the end."""

    start_seconds: float
    run_seconds: float
    cpu_seconds: float

    @property
    def total_seconds(self) -> float:
        """Start plus run."""
        return self.start_seconds + self.run_seconds


class BenchFailure(RuntimeError):
    """A run did not do the work it was asked to; its figures must not be reported."""


Driver = Callable[[Spec], Coroutine[Any, Any, tuple[Timing, Counts]]]


def item_key(index: int) -> str:
    """Business key of the ``index``-th item."""
    return f"item-{index:06d}"


def item_payload(index: int) -> dict[str, JSON]:
    """Start data of one item: ``ITEM_BYTES`` of compact JSON, as a submitted article would be.

    A title, the languages the parallel stage maps over, and a body padding the document to
    size; the stages then add their small results beside it.
    """
    payload: dict[str, JSON] = {
        "title": f"Article {index}",
        "languages": list(LANGUAGES),
        "body": "",
    }
    room = ITEM_BYTES - len(json.dumps(payload, separators=(",", ":")))
    payload["body"] = (_FILLER * (room // len(_FILLER) + 1))[:room]
    return payload


def item_payloads(count: int) -> Iterator[tuple[str, dict[str, JSON]]]:
    """Key and start data of every item."""
    for index in range(count):
        yield item_key(index), item_payload(index)


async def timed(start: Callable[[], Awaitable[None]], run: Callable[[], Awaitable[None]]) -> Timing:
    """Time ``start`` then ``run``, and the CPU time both took."""
    cpu_before, began = cpu_seconds(), time.perf_counter()
    await start()
    started = time.perf_counter()
    await run()
    ended = time.perf_counter()
    return Timing(started - began, ended - started, cpu_seconds() - cpu_before)
