"""Exactness: a changed threshold, replayed from the record, equals a real run of the change.

Fifty claims run for real through the runner (the reviewer decides the ones sent to review),
the threshold goes from 70 to 60 in a copy of the workflow, the change is simulated from the
record, and then the changed workflow really runs the same claims on an empty store. The
prediction must equal the real run item by item: where each ends, and the path it took.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from statewise.actions.simulation import Selection, simulate
from statewise.replay.record import spend_of
from statewise.store import open_store

from .records import (
    SCREENING_YAML,
    claim_items,
    claims,
    run_for_real,
    screener,
    screening,
    screening_items,
)

COUNT = 50


def test_a_lower_threshold_replayed_from_the_record_equals_its_real_run(
    urls: tuple[str, str],
) -> None:
    record_url, fresh_url = urls
    items = claim_items(COUNT)

    async def main() -> None:
        before = await run_for_real(record_url, claims(70), items)
        changed = claims(60, version=2)
        store = open_store(record_url)
        try:
            seqs = {i.key: i.seq for i in await store.list_items(workflow="claims", limit=COUNT)}
            report, advice = await simulate(store, changed, Selection(), time.time())
            after = await store.list_items(workflow="claims", limit=COUNT)
            assert {i.key: i.seq for i in after} == seqs  # the replay wrote nothing
            assert await store.stuck_items() == []
        finally:
            await store.close()
        real = await run_for_real(fresh_url, changed, items)

        predicted = {i.key: (*i.after, i.after_path) for i in report.items}
        assert predicted == real
        assert {i.key: (*i.before, i.before_path) for i in report.items} == before
        assert report.needs == [] and report.skipped == ()
        # The change is not empty: claims scoring 60-69 now skip the review, nothing else moves.
        moved = {i.key for i in report.changed}
        assert moved == {k for k, (_, _, path) in before.items() if path != real[k][2]}
        assert moved and all(
            i.difference is not None
            and i.difference.before.state == "review"
            and i.difference.after.state == "auto_approved"
            and i.difference.after.condition == "assess.score >= 60"
            for i in report.changed
        )
        queues = {q: (b, a) for q, b, a in report.queues}
        reviews_before = sum(1 for _, _, path in before.values() if "review" in path)
        assert queues == {"claims": (reviews_before, reviews_before - len(moved))}
        assert advice == []  # the review grades no agent stage

    asyncio.run(main())


BUDGET = "    on_exhausted: over_budget\n    budget: {tokens: 1200, on_exceeded: over_budget}\n"
CHANGES = {
    "threshold": (">= 0.5", ">= 0.7", 4),
    "budget": ("    on_exhausted: over_budget\n", BUDGET, 4),
    "join": ("join: all", "join: any", 0),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_changed_agent_stage_replayed_equals_its_real_run_and_its_cost(
    urls: tuple[str, str], change: str
) -> None:
    """The screening workflow adds parallel branches, a priced agent and a rescore loop."""
    record_url, fresh_url = urls
    items = screening_items()
    old, new, moving = CHANGES[change]
    assert old in SCREENING_YAML
    changed = screening(SCREENING_YAML.replace(old, new))

    async def main() -> None:
        await run_for_real(record_url, screening(), items, screener)
        store = open_store(record_url)
        try:
            report, _ = await simulate(store, changed, Selection(), time.time())
        finally:
            await store.close()
        real = await run_for_real(fresh_url, changed, items, screener)
        assert {i.key: (*i.after, i.after_path) for i in report.items} == real
        assert len(report.changed) == moving and report.needs == []
        store = open_store(fresh_url)
        try:
            spent = [spend_of(await store.history("screening", key)) for key, _ in items]
        finally:
            await store.close()
        assert report.cost_after.tokens == sum(s.tokens for s in spent)
        assert report.cost_after.cost == pytest.approx(sum(s.cost for s in spent))

    asyncio.run(main())
