"""Hostile input shared by the input tests: keys a URL mangles, and deep documents."""

from __future__ import annotations

from typing import Any

# Keys that break URLs and ASCII assumptions but not the key rule: they must work anywhere.
HOSTILE_BUT_VALID_KEYS = ["inv%41", "a/b", "what?x=1", "naïve-日本", "#frag", " padded "]


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep: {"a": {"a": ... {}}}."""
    document: dict[str, Any] = {}
    for _ in range(depth - 1):
        document = {"a": document}
    return document
