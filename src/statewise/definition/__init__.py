"""Workflow definitions: load them from YAML or build them in Python, check them, export them.

Both routes produce the same frozen :class:`Definition` after the same checks, and a failed
check raises one :class:`~statewise.errors.DefinitionError` listing every problem.
"""

from statewise.definition.builder import (
    Alert,
    BudgetLimits,
    CommandSpec,
    EventData,
    RetentionPolicy,
    Retry,
    Reviews,
    StateBuilder,
    StateOptions,
    Workflow,
    cmd,
    to_yaml,
    use_agent,
)
from statewise.definition.declared_types import Declarations
from statewise.definition.durations import format_duration, parse_duration
from statewise.definition.loader import load, loads
from statewise.definition.model import Definition
from statewise.definition.validation import validate

__all__ = [
    "Alert",
    "BudgetLimits",
    "CommandSpec",
    "Declarations",
    "Definition",
    "EventData",
    "RetentionPolicy",
    "Retry",
    "Reviews",
    "StateBuilder",
    "StateOptions",
    "Workflow",
    "cmd",
    "format_duration",
    "load",
    "loads",
    "parse_duration",
    "to_yaml",
    "use_agent",
    "validate",
]
