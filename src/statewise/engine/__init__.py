"""The functional core: pure step semantics over (definition, item, event)."""

from statewise.engine.effects import (
    CancelCommands,
    CancelTimers,
    CloseTask,
    Effect,
    OpenTask,
    RemindTask,
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
    Operate,
    Operation,
    Start,
    TaskDecided,
    TimerFired,
)
from statewise.engine.item import BranchRun, BranchStatus, HistoryRecord, Item, ItemStatus
from statewise.engine.moves import MAX_HOPS
from statewise.engine.quarantine import fail_item
from statewise.engine.result import Outcome, StepResult
from statewise.engine.step import record_spend, start, step

__all__ = [
    "MAX_HOPS",
    "BranchRun",
    "BranchStatus",
    "CancelCommands",
    "CancelTimers",
    "CloseTask",
    "CommandFailed",
    "CommandSucceeded",
    "Effect",
    "Event",
    "External",
    "HistoryRecord",
    "Item",
    "ItemStatus",
    "OpenTask",
    "Operate",
    "Operation",
    "Outcome",
    "RemindTask",
    "RunCommand",
    "SaveConversation",
    "SetContext",
    "Start",
    "StartTimer",
    "StepResult",
    "TaskDecided",
    "TimerFired",
    "fail_item",
    "record_spend",
    "start",
    "step",
]
