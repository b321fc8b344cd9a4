"""Reading back: context as changes, audit rows, counts, listings, costs, broken invariants."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statewise.conditions import compile_condition
from statewise.definition.model import Transition
from statewise.engine import CommandSucceeded, HistoryRecord, ItemStatus, SetContext, start, step
from statewise.engine.builder import RESULT_IGNORED
from statewise.errors import NotFoundError
from statewise.store import CostRow, StateCount, StuckItem
from statewise.store.sql import SQLStore

from .conftest import Query
from .helpers import ORDERS, T0, commit, fetched, in_review, noted, orders, run, started

# --- context --------------------------------------------------------------------------------


def test_context_is_written_as_changes_and_resetting_a_parent_drops_its_children(
    store: SQLStore, query: Query
) -> None:
    first = started("k", {"review": {"score": 1}, "keep": True})
    branches = noted(
        first.item,
        SetContext(("translate",), {}),
        SetContext(("translate", "de"), "Hallo"),
        SetContext(("translate", "fr"), "Bonjour"),
        SetContext(("review", "score"), 2),
    )
    reset = noted(branches.item, SetContext(("translate",), {"es": "Hola"}))
    run(commit(store, first, branches))
    paths = sorted(p for (p,) in query("SELECT path FROM context"))

    assert run(store.get_item(None, "k")).context == branches.item.context
    assert branches.item.context["translate"] == {"de": "Hallo", "fr": "Bonjour"}
    assert paths == [
        "keep",
        "review",
        "review\x1fscore",
        "translate",
        "translate\x1fde",
        "translate\x1ffr",
    ]

    run(commit(store, reset))

    assert run(store.get_item(None, "k")).context == {
        "review": {"score": 2},
        "keep": True,
        "translate": {"es": "Hola"},
    }
    assert [p for (p,) in query("SELECT path FROM context WHERE path LIKE 'tr%'")] == ["translate"]


_NAMES = st.sampled_from(["a", "b", "c"])
_VALUES = st.recursive(
    st.none() | st.integers(-3, 3) | st.text("xy", max_size=2),
    lambda inner: st.dictionaries(_NAMES, inner, max_size=3),
    max_leaves=6,
)
_PATCHES = st.lists(
    st.builds(SetContext, st.lists(_NAMES, min_size=1, max_size=3).map(tuple), _VALUES),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_PATCHES, min_size=1, max_size=4), data=st.dictionaries(_NAMES, _VALUES))
def test_decoding_the_stored_context_equals_applying_the_patches(
    store: SQLStore, steps: list[list[SetContext]], data: dict[str, Any]
) -> None:
    key = f"k{run(store.pending_commands())}"  # every example starts one more item
    results = [started(key, data)]
    for patches in steps:
        results.append(noted(results[-1].item, *patches))
    run(commit(store, *results))

    assert run(store.get_item(None, key)).context == results[-1].item.context


# --- audit rows -----------------------------------------------------------------------------


def test_history_rows_round_trip_exactly(store: SQLStore) -> None:
    full = HistoryRecord(
        seq=2,
        at=T0 + 0.125,
        from_state="intake",
        to_state="review",
        event="approve",
        event_kind="external",
        actor="alice",
        transition=1,
        condition="review.score > 80 && visits.enrich < 3",
        values={"review": {"score": 91.5, "tags": ["a", "ü"]}, "visits": {"enrich": 0}},
        command="fetch",
        branch="de",
        attempt=0,
        duration=0.0,
        error={"kind": "transient", "message": "timed out"},
        note="retry in 0.01s",
        usage={"model": "m", "input_tokens": 3, "cost": None},
    )
    first, other = started("k"), started("k2")
    moved = fetched(other.item)
    run(commit(store, first, noted(first.item, record=full), other, moved))

    assert run(store.history("orders", "k")) == [*first.history, full]
    assert run(store.history(None, "k2")) == [*other.history, *moved.history]


def usage(
    agent: str, model: str, cost: float | None, tokens: int = 10, requests: int = 2
) -> HistoryRecord:
    row = HistoryRecord(0, T0, "intake", "intake", "done", "command")
    call = {"agent": agent, "model": model, "input_tokens": tokens, "output_tokens": 1}
    call["latency"], call["requests"] = 0.25, requests
    return replace(row, usage={**call, "cost": cost})


def test_costs_sum_only_priced_calls_and_count_the_unpriced_ones(store: SQLStore) -> None:
    a, b = started("a"), started("b", definition=orders("other"))
    calls = [
        usage("writer", "gpt", 0.25),
        usage("writer", "gpt", None),
        usage("writer", "gpt", 0.5),
        usage("critic", "local", None, tokens=7, requests=1),
    ]
    steps = [a]
    for call in calls:
        steps.append(noted(steps[-1].item, record=call))
    run(commit(store, *steps, b, noted(b.item, record=usage("writer", "gpt", 1.0))))

    # `calls` counts the attempts (audit rows), `requests` the HTTP requests they made.
    assert run(store.costs("orders")) == [
        CostRow("orders", "intake", "critic", "local", 1, 7, 1, None, 1, 0.25, requests=1),
        CostRow("orders", "intake", "writer", "gpt", 3, 30, 3, 0.75, 1, 0.75, requests=6),
    ]
    assert [(r.workflow, r.cost, r.unpriced_calls) for r in run(store.costs())] == [
        ("orders", None, 1),
        ("orders", 0.75, 1),
        ("other", 1.0, 0),
    ]


# --- listings -------------------------------------------------------------------------------


def test_state_counts_and_list_items_filter_and_order(store: SQLStore) -> None:
    run(commit(store, started("new"), started("other", definition=orders("other"))))
    run(in_review(store, "r1", "r2"))

    assert run(store.state_counts("orders")) == [
        StateCount("orders", 1, "intake", ItemStatus.ACTIVE, 1, T0),
        StateCount("orders", 1, "review", ItemStatus.WAITING, 2, T0 + 1),
    ]
    assert [(c.workflow, c.state, c.count) for c in run(store.state_counts())] == [
        ("orders", "intake", 1),
        ("orders", "review", 2),
        ("other", "intake", 1),
    ]

    def keys(**filters: Any) -> list[str]:
        return [i.key for i in run(store.list_items(**filters))]

    assert keys() == ["new", "other", "r1", "r2"]
    assert keys(workflow="orders", state="intake") == ["new"]
    assert keys(status=ItemStatus.WAITING) == ["r1", "r2"]
    assert keys(status=ItemStatus.WAITING, limit=1, offset=1) == ["r2"]
    assert keys(state="approved") == []
    assert all(i.context == {} for i in run(store.list_items()))


def test_get_item_says_what_is_missing_or_ambiguous(store: SQLStore) -> None:
    run(commit(store, started("dup", {"n": 1}), started("dup", {"n": 2}, orders("other"))))

    with pytest.raises(NotFoundError, match=r"^no item with key 'nope'$"):
        run(store.get_item(None, "nope"))
    with pytest.raises(NotFoundError, match=r"no item with key 'dup' in workflow 'third'"):
        run(store.get_item("third", "dup"))
    with pytest.raises(NotFoundError, match=r"several workflows \(orders, other\); name one"):
        run(store.history(None, "dup"))
    assert run(store.get_item("other", "dup")).context == {"n": 2}
    items = run(store.get_items([("orders", "dup"), ("other", "dup"), ("orders", "nope")]))
    assert {ref: i.context for ref, i in items.items()} == {
        ("orders", "dup"): {"n": 1},
        ("other", "dup"): {"n": 2},
    }
    assert run(store.get_items([])) == {}


def test_live_items_of_versions_without_a_definition_are_listed(store: SQLStore) -> None:
    stored, gone = orders(), orders(version=7)
    run(store.save_workflow(stored, "orders.yaml", []))
    run(commit(store, started("known"), started("lost", {"n": 1}, gone)))
    run(in_review(store, "waiting"))  # on the stored version: not listed

    (lost,) = run(store.unknown_version_items(10))
    assert (lost.key, lost.version, lost.context) == ("lost", 7, {"n": 1})
    assert run(store.unknown_version_items(0)) == []


def test_stuck_items_are_active_items_with_no_command_and_no_timer(
    store: SQLStore, query: Query
) -> None:
    run(commit(store, started("fine"), started("broken")))
    run(in_review(store, "waits"))
    assert run(store.stuck_items()) == []

    query("DELETE FROM outbox WHERE item_id = (SELECT id FROM items WHERE key = 'broken')")

    assert run(store.stuck_items()) == [StuckItem("orders", "broken", "intake", 1)]


def test_the_response_cache_keeps_the_first_response(store: SQLStore) -> None:
    assert run(store.cached_response("k")) is None
    run(store.cache_response("k", "first"))
    run(store.cache_response("k", "second"))
    assert run(store.cached_response("k")) == "first"


# --- failures -------------------------------------------------------------------------------


def test_failures_say_why_each_failed_item_failed_past_late_results(store: SQLStore) -> None:
    intake = replace(
        ORDERS.states["intake"],
        transitions=(Transition("review", when=compile_condition("fetch.vaule > 1")),),
    )
    broken = replace(ORDERS, name="broken", states={**ORDERS.states, "intake": intake})
    first = start(broken, "a", {}, T0)
    failed = step(broken, first.item, CommandSucceeded("intake", 1, 1, {"value": 2}), T0 + 1)
    late = CommandSucceeded("intake", 1, 1, {"value": 3}, usage={"cost": 0.1})
    ignored_late = step(broken, failed.item, late, T0 + 2)  # recorded for its cost only
    assert (failed.item.status, ignored_late.history[0].event) == (
        ItemStatus.FAILED,
        RESULT_IGNORED,
    )
    run(commit(store, first, failed, ignored_late, started("b")))

    found = run(store.failures([("broken", "a"), ("orders", "b"), ("orders", "none")]))

    assert list(found) == [("broken", "a")]
    assert found["broken", "a"]["kind"] == "condition"
    assert "`fetch.vaule > 1`" in found["broken", "a"]["message"]
    assert run(store.failures([])) == {}
