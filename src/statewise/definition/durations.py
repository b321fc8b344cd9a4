"""Durations as workflow authors write them (``500ms``, ``48h``, ``1h30m``) and back.

Arithmetic goes through :class:`~decimal.Decimal` so that ``format_duration`` followed by
``parse_duration`` gives back exactly the same float, which keeps YAML export lossless.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

# Units from largest to smallest, in milliseconds; the order is the order parts must be written.
_UNITS_MS: dict[str, int] = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
_NUMBER = r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_PLAIN = re.compile(rf"^{_NUMBER}$")
_PART = re.compile(rf"({_NUMBER})(ms|d|h|m|s)")
_HINT = "write it like 500ms, 10s, 5m, 48h, 2d or 1h30m, or give plain seconds"


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``value``: a number of seconds or text such as ``1h30m``.

    Raises:
        ValueError: ``value`` is not a duration; the message says how to write one. Negative
            numbers are returned as they are, so that validation can point at them.

    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"`{value!r}` is not a duration; {_HINT}")
    seconds = _parse_text(value.strip()) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"`{value}` is not a finite duration; {_HINT}")
    return seconds


def _parse_text(text: str) -> float:
    """Seconds in a unit string; units must appear largest first, each at most once."""
    if _PLAIN.match(text):
        return float(Decimal(text))
    total_ms = Decimal(0)
    position = 0
    last_rank = -1
    ranks = list(_UNITS_MS)
    for match in _PART.finditer(text):
        rank = ranks.index(match.group(2))
        if match.start() != position or rank <= last_rank:
            break
        total_ms += Decimal(match.group(1)) * _UNITS_MS[match.group(2)]
        position, last_rank = match.end(), rank
    if position != len(text) or not text:
        raise ValueError(f"`{text}` is not a duration; {_HINT}")
    return float(total_ms / 1000)


def format_duration(seconds: float) -> str:
    """The text ``parse_duration`` reads back as exactly ``seconds``, in the largest units.

    Whole milliseconds are split into units (``90`` -> ``1m30s``); anything finer falls back
    to plain seconds so that no precision is lost.
    """
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"cannot format {seconds!r} as a duration")
    millis = round(seconds * 1000)
    if millis / 1000 != seconds:
        return repr(float(seconds))
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS_MS.items():
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def timer_event(after: str | int | float) -> str:
    """The default event name of a timer transition: ``timer:`` and the duration as written."""
    return f"timer:{after}"
