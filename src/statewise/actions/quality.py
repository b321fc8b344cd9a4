"""How well each agent agrees with the people who review it, asked the same way everywhere.

``statewise quality``, ``GET /api/quality`` and the dashboard's quality page take the same
options (a window such as ``30d``, a trend bucket, an optional score band width) and refuse
the same bad values with the same words before the store is read.
"""

from __future__ import annotations

import math

from statewise.definition.durations import parse_duration
from statewise.errors import InvalidInputError
from statewise.store.base import Store
from statewise.store.quality import Bucket, QualityReport

DEFAULT_WINDOW = "30d"


def window_seconds(since: str) -> float:
    """The length of the window ``since`` names (``30d``, ``12h``, ``3600``), checked."""
    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise InvalidInputError(f"since: {exc}") from None
    if seconds <= 0:
        raise InvalidInputError(f"since: `{since}` is not a positive duration; write e.g. 30d")
    return seconds


def band_width(band: float | None) -> float | None:
    """A score band width given by a person: a finite positive number, or None to detect it."""
    if band is not None and not (math.isfinite(band) and band > 0):
        raise InvalidInputError(
            f"band must be a positive number (10 for scores out of 100, 0.1 for 0..1), not {band}"
        )
    return band


async def agent_quality(
    store: Store,
    now: float,
    *,
    since: str = DEFAULT_WINDOW,
    workflow: str | None = None,
    bucket: Bucket = Bucket.DAY,
    band: float | None = None,
) -> QualityReport:
    """Agreement per agent stage over the reviews decided in the window ending ``now``.

    Raises:
        InvalidInputError: ``since`` or ``band`` is not a value the report can use.

    """
    start = now - window_seconds(since)
    return await store.quality(start, workflow, bucket, band_width(band))
