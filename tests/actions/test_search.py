"""Key search: one rule on both stores, literal and case-sensitive; a NUL is refused.

A bulk operation acts on what the search matches, so a search that matched too much (a NUL
ending SQLite's pattern, ``%`` or ``_`` as wildcards, case folded on one store only) would
cancel items nobody asked for.
"""

from __future__ import annotations

import asyncio

import pytest

from statewise.actions import bulk
from statewise.definition.model import Definition
from statewise.engine.events import Operation
from statewise.engine.item import ItemStatus
from statewise.errors import InvalidInputError
from statewise.store import open_store
from statewise.store.base import ItemFilter, Store
from statewise.worker.runner import Runner

from .conftest import registry

KEYS = ["inv%41", "invA", "INVA", "a_b", "axb", "naïve", "NAÏVE", "back\\slash", "x"]
MATCHES = {
    "%": {"inv%41"},
    "_": {"a_b"},
    "inv": {"inv%41", "invA"},
    "INV": {"INVA"},
    "a": {"a_b", "axb", "naïve", "back\\slash"},
    "ï": {"naïve"},
    "\\": {"back\\slash"},
    "%41": {"inv%41"},
}


async def _keys(store: Store, q: str) -> set[str]:
    where = ItemFilter(key_contains=q)
    found = {item.key for item, _ in await store.find_items(where, limit=100)}
    assert await store.count_items(where) == len(found)
    return found


@pytest.mark.parametrize("q", ["\x00", "inv\x00", "\x00%"])
def test_a_nul_in_the_search_is_refused_before_any_store_sees_it(q: str) -> None:
    with pytest.raises(InvalidInputError, match="NUL"):
        ItemFilter(key_contains=q)


def test_search_is_literal_and_case_sensitive_on_both_stores(url: str, review: Definition) -> None:
    async def main() -> None:
        store, other = open_store(url), open_store(url)
        try:
            await store.save_workflow(review, "review.yaml", [])
            runner = Runner(store, [review], registry)
            await runner.start(review, [(key, {"amount": 50}) for key in KEYS])
            await runner.run(max_wait=0)
            for q, expected in MATCHES.items():
                assert await _keys(store, q) == expected, q
            # A second writer cancels by a wildcard-looking search: exactly that item goes.
            second = Runner(other, [review], registry)
            report = await bulk(
                second,
                ItemFilter(key_contains="%"),
                Operation.CANCEL,
                reason="literal %",
                actor="cli:ops",
                dry_run=False,
            )
            assert report.matched == report.changed == 1
            cancelled = ItemFilter(status=ItemStatus.CANCELLED)
            assert [i.key for i, _ in await store.find_items(cancelled)] == ["inv%41"]
            assert await store.stuck_items() == []
        finally:
            await store.close()
            await other.close()

    asyncio.run(main())
