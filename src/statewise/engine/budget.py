"""Budgets per item: what an item has spent on model calls, and whether it may spend more.

Pure functions over the definition's budgets and the item's :class:`Spent`, so the step
decides before each agent call, with no I/O, whether the call may run and how many tokens it
may use. A budget is spent when ``tokens >= limit``, or ``cost >= limit`` for the calls whose
price is known: a model with no known price counts against token budgets only, and the item
remembers which models those were so its page can say so.

What an item spent is kept per state (the total is their sum): a workflow budget reads the
total, a stage budget the spend of its own state over all its visits.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from statewise.definition.model import Budget, Definition, State

JSON = Any
BUDGET_EVENT = "budget_exceeded"
"""The audit event of an item sent to a budget's ``on_exceeded`` state."""
NEAR = 0.8
"""The share of a budget from which a report calls an item near it."""
Scope = Literal["workflow", "state"]
Measure = Literal["tokens", "cost"]
_COST_DIGITS = 10  # as the price table rounds: float sums must not drift past a limit


@dataclass(frozen=True, slots=True)
class Spend:
    """Tokens and known cost (USD) of some model calls, and the models that had no price."""

    tokens: int = 0
    cost: float = 0.0
    unpriced: tuple[str, ...] = ()

    def plus(self, other: Spend) -> Spend:
        """Both spends together; each unpriced model is named once.

        The cost is capped at the largest float: two absurd reported costs must not add up to
        an infinity no store can keep.
        """
        return Spend(
            self.tokens + other.tokens,
            min(round(self.cost + other.cost, _COST_DIGITS), sys.float_info.max),
            tuple(dict.fromkeys((*self.unpriced, *other.unpriced))),
        )


NOTHING = Spend()


@dataclass(frozen=True, slots=True)
class Spent:
    """What one item has spent on model calls, by the state whose command spent it.

    Empty (and false) for an item that never called a model: the store keeps NULL for it.
    """

    states: Mapping[str, Spend] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.states)

    @property
    def total(self) -> Spend:
        """The item's whole spend, every state's summed."""
        total = NOTHING
        for spend in self.states.values():
            total = total.plus(spend)
        return total

    def of(self, state: str) -> Spend:
        """What the item spent in ``state`` over all its visits."""
        return self.states.get(state, NOTHING)

    def charged(self, state: str, usage: Mapping[str, JSON] | None) -> Spent:
        """What was spent plus what ``usage`` (one audit row's) cost, charged to ``state``."""
        spend = usage_spend(usage)
        if spend is None:
            return self
        return Spent({**self.states, state: self.of(state).plus(spend)})


NOTHING_SPENT = Spent()


def usage_spend(usage: Mapping[str, JSON] | None) -> Spend | None:
    """What one usage record cost, or None when it spent nothing.

    Reads the fields ``statewise.ai.usage.usage_record`` writes (``input_tokens``,
    ``output_tokens``, ``cost``, ``model``); anything else a command reports is ignored, so a
    plain command's own usage can never break a step. Tokens with no ``cost`` are unpriced.
    """
    if not usage:
        return None
    tokens = _count(usage.get("input_tokens")) + _count(usage.get("output_tokens"))
    cost = usage.get("cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        return Spend(tokens, float(cost)) if tokens or cost else None
    if not tokens:
        return None
    return Spend(tokens, 0.0, (str(usage.get("model") or "an unnamed model"),))


def _count(value: JSON) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


@dataclass(frozen=True, slots=True)
class Exceeded:
    """One budget found spent: which, how far, and where the item goes instead.

    ``limit`` is None for a run a command cut short on its own with no budget declared.
    """

    scope: Scope
    state: str
    measure: Measure
    spent: float
    limit: float | None
    target: str

    @property
    def name(self) -> str:
        """``workflow`` or ``state NAME``, as people read it."""
        return "workflow" if self.scope == "workflow" else f"state {self.state!r}"

    def note(self, cut_short: bool = False) -> str:
        """The audit row's explanation: which budget, spent against limit, where to."""
        what = "the run was cut short: " if cut_short else ""
        if self.limit is None:
            return f"{what}no budget is declared; sent to {self.target!r}"
        return (
            f"{what}{self.name} {self.measure} budget spent: {_figure(self.measure, self.spent)} "
            f"of {_figure(self.measure, self.limit)}; sent to {self.target!r}"
        )

    def detail(self) -> dict[str, JSON]:
        """The audit row's ``budget`` field."""
        return {
            "scope": self.scope,
            "state": self.state,
            "measure": self.measure,
            "spent": self.spent,
            "limit": self.limit,
        }


def _figure(measure: Measure, value: float) -> str:
    return f"{value:,.0f} tokens" if measure == "tokens" else f"{value:.4f} USD"


def _budgets(
    definition: Definition, state: State, spent: Spent
) -> Iterator[tuple[Scope, Budget, Spend]]:
    """The budgets an agent call in ``state`` must keep within, the state's own first."""
    if state.budget is not None:
        yield "state", state.budget, spent.of(state.name)
    if definition.budget is not None:
        yield "workflow", definition.budget, spent.total


def _target(definition: Definition, budget: Budget) -> str:
    return budget.on_exceeded or definition.escalation


def exceeded(definition: Definition, state: State, spent: Spent) -> Exceeded | None:
    """The first budget an agent call in ``state`` would break, or None: it may run.

    A cost limit counts only calls whose price is known, so an unpriced model's calls are
    held to the token limits alone.
    """
    for scope, budget, used in _budgets(definition, state, spent):
        target = _target(definition, budget)
        if budget.tokens is not None and used.tokens >= budget.tokens:
            return Exceeded(scope, state.name, "tokens", used.tokens, budget.tokens, target)
        if budget.cost is not None and used.cost >= budget.cost:
            return Exceeded(scope, state.name, "cost", used.cost, budget.cost, target)
    return None


def tokens_left(definition: Definition, state: State, spent: Spent) -> int | None:
    """How many tokens the next agent call in ``state`` may use; None: no token budget."""
    left = [
        budget.tokens - used.tokens
        for _, budget, used in _budgets(definition, state, spent)
        if budget.tokens is not None
    ]
    return min(left) if left else None


def cut_short(definition: Definition, state: State, spent: Spent) -> Exceeded:
    """Where a run cut short by its token allowance goes, ``spent`` including the run.

    The budget it broke, if its usage shows one; else the token budget that gave the
    smallest allowance (the one that stopped it); else, for a command that stopped itself
    with no budget declared, the escalation state.
    """
    broken = exceeded(definition, state, spent)
    if broken is not None:
        return broken
    tightest = sorted(
        (
            (budget.tokens - used.tokens, scope, budget, used)
            for scope, budget, used in _budgets(definition, state, spent)
            if budget.tokens is not None
        ),
        key=lambda entry: entry[0],
    )
    total = spent.of(state.name).tokens
    if not tightest:
        return Exceeded("state", state.name, "tokens", total, None, definition.escalation)
    _, scope, budget, used = tightest[0]
    return Exceeded(
        scope, state.name, "tokens", used.tokens, budget.tokens, _target(definition, budget)
    )


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """What an item spent against one budget (or in one state without one), for people.

    ``state`` is None for the workflow's total. ``unpriced`` names the models whose calls
    had no known price: their cost is not in ``cost`` and a cost limit does not see them.
    """

    state: str | None
    tokens: int
    cost: float
    token_limit: int | None = None
    cost_limit: float | None = None
    unpriced: tuple[str, ...] = ()

    @property
    def share(self) -> float:
        """The largest fraction of a limit used (0 without limits); 1 or more is spent."""
        shares = [0.0]
        if self.token_limit:
            shares.append(self.tokens / self.token_limit)
        if self.cost_limit:
            shares.append(self.cost / self.cost_limit)
        return max(shares)

    @property
    def reached(self) -> bool:
        """Whether a limit is reached: the next agent call under it is refused."""
        return self.share >= 1.0

    @property
    def warning(self) -> str | None:
        """Why a cost limit does not see everything, when a model had no known price."""
        if self.cost_limit is None or not self.unpriced:
            return None
        models = ", ".join(self.unpriced)
        noun = "model" if len(self.unpriced) == 1 else "models"
        verb = "has" if len(self.unpriced) == 1 else "have"
        return (
            f"cost budget not enforced: {noun} {models} {verb} no known price "
            f"(their calls count against the token budget only)"
        )


def budget_use(definition: Definition | None, spent: Spent) -> list[BudgetUse]:
    """The workflow's total, then each state that has a budget or spent, against its limits."""
    budget = definition.budget if definition is not None else None
    rows = []
    total = spent.total
    if budget is not None or spent:
        rows.append(_use(None, total, budget))
    states = definition.states.values() if definition is not None else ()
    budgeted = {s.name: s.budget for s in states if s.budget is not None}
    for name in dict.fromkeys([*budgeted, *spent.states]):
        rows.append(_use(name, spent.of(name), budgeted.get(name)))
    return rows


def _use(state: str | None, spend: Spend, budget: Budget | None) -> BudgetUse:
    return BudgetUse(
        state=state,
        tokens=spend.tokens,
        cost=spend.cost,
        token_limit=None if budget is None else budget.tokens,
        cost_limit=None if budget is None else budget.cost,
        unpriced=spend.unpriced,
    )
