"""The imperative shell: command registry, command execution and the runner."""

from statewise.worker.registry import load_registry
from statewise.worker.runner import Runner
from statewise.worker.writer import ItemWriter, StartReport

__all__ = [
    "ItemWriter",
    "Runner",
    "StartReport",
    "load_registry",
]
