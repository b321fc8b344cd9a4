"""Conditions: CEL expressions compiled once at load time and evaluated over an item's context.

CEL is side-effect free and cannot reach Python, so a workflow file can never run arbitrary
code through a condition (no ``eval``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cel

from statewise.errors import ConditionError

# Names the engine provides to every condition next to the item's context keys.
ENGINE_FACTS = frozenset({"visits", "attempts", "item", "event", "error"})


class ConditionSyntaxError(ValueError):
    """A condition does not compile; carries CEL's own message."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled CEL expression and the variables it reads."""

    source: str
    variables: tuple[str, ...]
    program: Any = field(repr=False, compare=False, hash=False)
    paths: tuple[tuple[str, ...], ...] = field(default=(), repr=False, compare=False)

    def evaluate(self, facts: Mapping[str, Any]) -> Any:
        """Run the expression over ``facts``; a missing key or type clash is a ConditionError."""
        # Only the variables the expression names are converted to CEL values: converting the
        # whole context would cost more than evaluating the condition.
        bound = {name: facts[name] for name in self.variables if name in facts}
        try:
            return self.program.execute(bound)
        except KeyError as exc:
            raise ConditionError(
                f"condition `{self.source}` read a missing key {exc.args[0]!r}; "
                f"guard it with has(...) or make sure an earlier stage stores it"
            ) from None
        except RuntimeError as exc:
            raise ConditionError(self._runtime_message(facts, str(exc))) from None
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise ConditionError(
                f"condition `{self.source}` failed: {_first_sentence(str(exc))}"
            ) from None

    def _runtime_message(self, facts: Mapping[str, Any], raw: str) -> str:
        """Say which top-level name was missing, the commonest way a condition fails.

        Statewise sees which names the expression reads that the context lacks; the one CEL's
        message mentions is named, whatever its wording (a macro's own variable is absent from
        the context too, but CEL never blames it).
        """
        missing = [
            name
            for name in self.variables
            if name not in facts and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", raw)
        ]
        if missing:
            return (
                f"condition `{self.source}` read `{missing[0]}`, which is not in the context "
                f"yet; guard it with has(...) or make sure an earlier stage stores it"
            )
        return f"condition `{self.source}` failed: {_first_sentence(raw)}"

    def is_true(self, facts: Mapping[str, Any]) -> bool:
        """Evaluate as a guard: the result must be a bool, anything else is an error."""
        value = self.evaluate(facts)
        if not isinstance(value, bool):
            raise ConditionError(
                f"condition `{self.source}` gave {value!r}, not true or false; "
                f"write a comparison such as `{self.source} > 0`"
            )
        return value

    def read_values(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """Return the values this condition read, by the paths it wrote, for the audit trail.

        ``review.score > 80`` records ``{"review.score": 85}``, not the whole review, so the
        audit row says exactly what decided and stays small.
        """
        values: dict[str, Any] = {}
        for path in self.paths:
            found, value = _resolve(facts, path)
            if found:
                values[".".join(path)] = value
        return values


def compile_condition(source: str) -> Condition:
    """Compile ``source`` or raise ConditionSyntaxError with CEL's message."""
    if not source.strip():
        raise ConditionSyntaxError("condition is empty")
    try:
        program = cel.compile(source)
    except ValueError as exc:
        raise ConditionSyntaxError(_syntax_message(str(exc))) from None
    variables = tuple(v for v in program.variables() if "." not in v)
    return Condition(source, variables, program, _read_paths(source, variables))


_COMPREHENSION = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")


def local_names(source: str) -> frozenset[str]:
    """Names a comprehension macro binds (the ``x`` of ``lines.all(x, x.qty > 0)``).

    CEL lists them among the expression's variables, but no context key is meant by them.
    """
    return frozenset(_COMPREHENSION.findall(source))


_PATH = re.compile(r"(?<![\w.'\"])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


def _read_paths(source: str, variables: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Dotted paths the expression reads from its variables (``review.score``), in order."""
    without_strings = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "''", source)
    paths = (tuple(m.group(1).split(".")) for m in _PATH.finditer(without_strings))
    return tuple(dict.fromkeys(p for p in paths if p[0] in variables))


def _resolve(facts: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    value: Any = facts
    for name in path:
        if not isinstance(value, Mapping) or name not in value:
            return False, None
        value = value[name]
    return True, value


def _syntax_message(raw: str) -> str:
    """Statewise's "CEL syntax error" before CEL's text, keeping its pointer line.

    CEL's repeated ``ERROR: <input>:`` prefix is replaced by the position it carries, when
    this CEL release writes one.
    """
    marker = "ERROR: <input>:"
    if marker in raw:
        position, _, rest = raw.split(marker, 1)[1].partition(" ")
        return f"CEL syntax error at {position.rstrip(':')} {rest}".strip()
    return f"CEL syntax error: {raw}"


def _first_sentence(text: str) -> str:
    return text.split(". ")[0].rstrip(".")
