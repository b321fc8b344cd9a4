"""Condition errors are worded by statewise, whichever way the CEL release words its own.

A stand-in for the ``cel`` module words its errors unlike the installed release; statewise's
messages must not change with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

import statewise.conditions
from statewise.conditions import ConditionSyntaxError, compile_condition
from statewise.errors import ConditionError


@dataclass
class RewordedProgram:
    """A compiled expression that reads ``names`` and fails with ``error`` when run."""

    names: list[str]
    error: Exception

    def variables(self) -> list[str]:
        return self.names

    def execute(self, bound: dict[str, Any]) -> Any:
        raise self.error


def reworded_cel(monkeypatch: pytest.MonkeyPatch, compile: Any) -> None:
    monkeypatch.setattr(statewise.conditions, "cel", SimpleNamespace(compile=compile))


def test_a_syntax_error_says_so_in_statewise_words(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(source: str) -> None:
        raise ValueError("unexpected end of input")

    reworded_cel(monkeypatch, refuse)
    with pytest.raises(ConditionSyntaxError, match=r"^CEL syntax error: unexpected end of input$"):
        compile_condition("score >")


def test_the_missing_name_is_named_whatever_cel_calls_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # `other` is missing too, but CEL blames `score`: that is the one named.
    program = RewordedProgram(["other", "score"], RuntimeError("no binding called score here"))
    reworded_cel(monkeypatch, lambda source: program)
    condition = compile_condition("score > 5 || other")
    with pytest.raises(
        ConditionError,
        match=r"^condition `score > 5 \|\| other` read `score`, which is not in the context yet; ",
    ):
        condition.evaluate({"item": {}})


def test_another_runtime_failure_is_quoted_not_blamed_on_a_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = RewordedProgram(["other"], RuntimeError("the overflow of an integer. More text"))
    reworded_cel(monkeypatch, lambda source: program)
    with pytest.raises(
        ConditionError, match=r"^condition `other > 1` failed: the overflow of an integer$"
    ):
        compile_condition("other > 1").evaluate({})
