"""The ``statewise`` command: validate, draw, run, operate and inspect workflows on a store.

One module per family of commands; importing them registers their commands on ``app``.
"""

from statewise.cli import (
    authoring,
    demo,
    inspecting,
    intervening,
    operating,
    probing,
    quality,
    retention,
    running,
    serving,
    simulating,
    versions,
)
from statewise.cli.common import app

__all__ = [
    "app",
    "authoring",
    "demo",
    "inspecting",
    "intervening",
    "main",
    "operating",
    "probing",
    "quality",
    "retention",
    "running",
    "serving",
    "simulating",
    "versions",
]


def main() -> None:
    """Entry point for ``python -m statewise``."""
    app()
