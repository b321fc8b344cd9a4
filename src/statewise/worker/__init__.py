"""The imperative shell: command registry, command execution and the runner."""

from statewise.worker.registry import CommandContext, CommandRegistry, load_registry
from statewise.worker.runner import Runner
from statewise.worker.writer import ItemWriter, StartReport

__all__ = [
    "CommandContext",
    "CommandRegistry",
    "ItemWriter",
    "Runner",
    "StartReport",
    "load_registry",
]
