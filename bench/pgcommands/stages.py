"""What both engines of the PostgreSQL worker benchmark agree on: the stages and their results.

Imported by ``pgcommands.commands`` (statewise's commands) and by ``bench/rawpg.py`` (the raw
psycopg baseline) so that both write the very same context values. No statewise import here:
the baseline is plain psycopg.
"""

from __future__ import annotations

from typing import Any

WORKFLOW = "pg_pipeline"
VERSION = 1
STAGES = ("fetch", "parse", "score", "store")
FINAL = "done"


def start_data(n: int) -> dict[str, Any]:
    """The start data of item number ``n``: one small field, stored as one context row."""
    return {"title": f"Item {n:05d}"}


def result(stage: str, key: str) -> dict[str, Any]:
    """What ``stage`` returns for item ``key``; stored as the context row ``<stage>``."""
    return {"stage": stage, "ok": True, "chars": 10 * len(key)}
