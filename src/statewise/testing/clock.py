"""Time that moves only when a test moves it.

The runner, the writers and the task desk read the time from a ``clock`` callable; handing them
a :class:`VirtualClock` lets a test jump 72 hours at once, and every due time, reminder, timer
and retry backoff is then judged against that time, exactly as a real clock would have it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# Monday 5 January 2026, 09:00 UTC: a fixed start, so a test's timestamps never vary.
START = 1_767_603_600.0


@dataclass
class VirtualClock:
    """Epoch seconds that change only through :meth:`move_to`; call it to read the time."""

    now: float = START

    def __call__(self) -> float:
        """The current virtual time, as ``time.time`` would give it."""
        return self.now

    def move_to(self, at: float) -> None:
        """Set the time to ``at``; time never runs backwards, so an earlier ``at`` is refused."""
        if at < self.now:
            raise ValueError(
                f"the virtual clock cannot go back from {stamp(self.now)} to {stamp(at)}"
            )
        self.now = at


def stamp(at: float) -> str:
    """A virtual time as people read it, in UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def span(seconds: float) -> str:
    """A duration such as ``+3d02h`` or ``+45m10s``, for showing when steps happened."""
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"+{days}d{hours:02d}h{minutes:02d}m"
    if hours:
        return f"+{hours}h{minutes:02d}m"
    return f"+{minutes}m{secs:02d}s"
