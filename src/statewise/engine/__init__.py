"""The functional core: pure step semantics over (definition, item, event)."""

from statewise.engine.builder import MAX_HOPS
from statewise.engine.effects import (
    CancelCommands,
    CancelTimers,
    Effect,
    RunCommand,
    SaveConversation,
    SetContext,
    StartTimer,
)
from statewise.engine.events import (
    CommandFailed,
    CommandSucceeded,
    Event,
    External,
    Start,
    TimerFired,
)
from statewise.engine.item import BranchRun, BranchStatus, HistoryRecord, Item, ItemStatus
from statewise.engine.quarantine import fail_item
from statewise.engine.result import Outcome, StepResult
from statewise.engine.step import start, step

__all__ = [
    "MAX_HOPS",
    "BranchRun",
    "BranchStatus",
    "CancelCommands",
    "CancelTimers",
    "CommandFailed",
    "CommandSucceeded",
    "Effect",
    "Event",
    "External",
    "HistoryRecord",
    "Item",
    "ItemStatus",
    "Outcome",
    "RunCommand",
    "SaveConversation",
    "SetContext",
    "Start",
    "StartTimer",
    "StepResult",
    "TimerFired",
    "fail_item",
    "start",
    "step",
]
