"""Retry budgets: whether a failed attempt is tried again, and after how long.

Jitter is derived from a hash of the attempt's identity instead of a random generator, so the
step function stays pure and a replay computes exactly the same schedule.
"""

from __future__ import annotations

import hashlib

from statewise.definition.model import ErrorKind, RetryPolicy


def should_retry(policy: RetryPolicy, kind: ErrorKind, attempt: int) -> bool:
    """Whether attempt number ``attempt`` (1-based) failing with ``kind`` earns another try."""
    return kind in policy.retry_on and attempt < policy.attempts


def backoff_delay(policy: RetryPolicy, attempt: int, identity: str) -> float:
    """Seconds to wait after attempt ``attempt`` failed: exponential, capped, jittered."""
    base = _exponential(policy, attempt)
    return base * (1.0 - policy.jitter * _unit_interval(f"{identity}:{attempt}"))


def _exponential(policy: RetryPolicy, attempt: int) -> float:
    """``backoff * multiplier ** (attempt - 1)`` capped at ``max_backoff``.

    A long retry budget makes the power overflow a float long before the cap matters; past
    that point the answer is simply the cap.
    """
    try:
        return min(policy.max_backoff, policy.backoff * policy.multiplier ** (attempt - 1))
    except OverflowError:
        return policy.max_backoff


def _unit_interval(seed: str) -> float:
    digest = hashlib.blake2b(seed.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
