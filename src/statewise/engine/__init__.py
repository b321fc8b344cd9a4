"""The functional core: pure step semantics over (definition, item, event)."""

from statewise.engine.builder import MAX_HOPS
from statewise.engine.effects import CancelTimers, Effect, RunCommand, SetContext, StartTimer
from statewise.engine.events import (
    CommandFailed,
    CommandSucceeded,
    Event,
    External,
    Start,
    TimerFired,
)
from statewise.engine.item import BranchRun, BranchStatus, HistoryRecord, Item, ItemStatus
from statewise.engine.result import Outcome, StepResult
from statewise.engine.step import start, step

__all__ = [
    "MAX_HOPS",
    "BranchRun",
    "BranchStatus",
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
    "SetContext",
    "Start",
    "StartTimer",
    "StepResult",
    "TimerFired",
    "start",
    "step",
]
