"""statewise: AI workflows as durable, declarative state machines.

The public API is small on purpose; everything else lives in the concept modules
(``statewise.definition``, ``statewise.engine``, ``statewise.store``, ``statewise.worker``).
"""

from statewise.contract import CommandContext, CommandRegistry
from statewise.definition import Workflow, load, loads
from statewise.definition.model import Definition
from statewise.engine import External, Item, RunCommand, StartTimer, start, step
from statewise.errors import (
    CommandError,
    DefinitionError,
    InvalidEventError,
    InvalidOutputError,
    NotFoundError,
    PermanentError,
    StatewiseError,
    TransientError,
)
from statewise.store import SQLiteStore, Store, open_store
from statewise.worker import Runner

__version__ = "0.1.0"

__all__ = [
    "CommandContext",
    "CommandError",
    "CommandRegistry",
    "Definition",
    "DefinitionError",
    "External",
    "InvalidEventError",
    "InvalidOutputError",
    "Item",
    "NotFoundError",
    "PermanentError",
    "RunCommand",
    "Runner",
    "SQLiteStore",
    "StartTimer",
    "StatewiseError",
    "Store",
    "TransientError",
    "Workflow",
    "load",
    "loads",
    "open_store",
    "start",
    "step",
]
