"""Which items are near or over their budgets, for ``statewise costs --budgets``.

Budgets live in the definitions and spend on the items, so the report reads the items that
have spent anything (a partial index keeps the others out of the scan) and measures each
against the budgets of its own workflow version.
"""

from __future__ import annotations

from dataclasses import dataclass

from statewise.actions.inspection import stored_definition
from statewise.definition.model import Definition
from statewise.engine.budget import NEAR, BudgetUse, budget_use
from statewise.engine.item import Item
from statewise.store.base import Store

_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ItemBudget:
    """One item's use of one of its budgets."""

    item: Item
    use: BudgetUse


async def budget_report(
    store: Store, workflow: str | None = None, near: float = NEAR
) -> list[ItemBudget]:
    """Every budget some item has used ``near`` (a share, 0 to 1) or more of, most used first."""
    definitions: dict[tuple[str, int], Definition | None] = {}
    found: list[ItemBudget] = []
    after = 0
    while page := await store.spending_items(workflow, limit=_PAGE, after=after):
        after = page[-1][0]
        for _, item in page:
            ref = (item.workflow, item.version)
            if ref not in definitions:
                definitions[ref] = await stored_definition(store, *ref)
            for use in budget_use(definitions[ref], item.spent):
                limited = use.token_limit is not None or use.cost_limit is not None
                if limited and use.share >= near:
                    found.append(ItemBudget(item, use))
    return sorted(found, key=lambda entry: -entry.use.share)
