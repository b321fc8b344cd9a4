"""Defects: what stops an item because its workflow or a command is broken.

A condition that cannot be evaluated, a ``done`` that no transition matches, a result that is
still unusable after its retries, a command raising an exception it did not mean to raise:
none of these is a decision the process made, so none of them may end like one. The item
fails where it stands (status ``failed``), its audit row names the defect's kind and message,
and it holds no pending work; ``statewise items --status failed`` lists it, and an operator
redrives it once the workflow or the command is fixed.

A business escalation is different: a provider still down after every retry, a command's
deliberate ``PermanentError``, a spent visit budget, an overdue task. Those go to the
workflow's escalation state, a person's task.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from statewise.engine.item import HistoryRecord, ItemStatus
from statewise.engine.result import StepResult


class DefectKind(StrEnum):
    """The kinds of defect, as an audit row's ``error.kind`` names them."""

    CONDITION = "condition"
    NO_TRANSITION = "no_transition"
    INVALID_OUTPUT = "invalid_output"
    COMMAND_ERROR = "command_error"


# A command's failure is a defect only when the workflow's `on: error` did not take it; a
# condition that cannot be evaluated or an unmatched `done` always is.
ROUTABLE_DEFECTS = frozenset({DefectKind.INVALID_OUTPUT, DefectKind.COMMAND_ERROR})
DEFECT_NOTE = (
    "a defect, not an outcome: the item failed here; fix the workflow or the command, "
    "then redrive it"
)


def defect_kind(error: Mapping[str, str] | None) -> DefectKind | None:
    """The defect an audit row's ``error`` records, or None for any other error."""
    kind = (error or {}).get("kind")
    return next((defect for defect in DefectKind if defect == kind), None)


def defect_of(result: StepResult) -> HistoryRecord | None:
    """The audit row of the defect this step failed the item with, or None."""
    if result.item.status is not ItemStatus.FAILED or not result.history:
        return None
    row = result.history[-1]
    return row if defect_kind(row.error) is not None else None
