"""Retry budgets: whether a failed attempt is tried again, after how long, and its timer.

Jitter is derived from a hash of the attempt's identity instead of a random generator, so the
step function stays pure and a replay computes exactly the same schedule.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from statewise.definition.model import Command, ErrorKind, RetryPolicy
from statewise.engine.builder import StepBuilder
from statewise.engine.effects import StartTimer
from statewise.engine.events import RETRY_TIMER
from statewise.engine.result import Hop


def should_retry(policy: RetryPolicy, kind: ErrorKind, attempt: int) -> bool:
    """Whether attempt number ``attempt`` (1-based) failing with ``kind`` earns another try."""
    return kind in policy.retry_on and attempt < policy.attempts


def backoff_delay(policy: RetryPolicy, attempt: int, identity: str) -> float:
    """Seconds to wait after attempt ``attempt`` failed: exponential, capped, jittered."""
    base = _exponential(policy, attempt)
    return base * (1.0 - policy.jitter * _unit_interval(f"{identity}:{attempt}"))


def schedule_retry(builder: StepBuilder, command: Command, attempt: int, hop: Hop) -> None:
    """Record the failed attempt and start a durable backoff timer for the next one."""
    state, visit = builder.state_name, builder.visit
    identity = f"{builder.original.key}:{state}:{visit}:{hop.branch}"
    delay = max(backoff_delay(command.retry, attempt, identity), hop.retry_after or 0.0)
    if hop.branch is None:
        builder.await_retry()
    builder.emit(StartTimer(RETRY_TIMER, builder.now + delay, state, visit, hop.branch))
    builder.record(
        replace(hop, event="failed", note=f"attempt {attempt} failed; retry in {delay:.2f}s"),
        to_state=state,
    )


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
