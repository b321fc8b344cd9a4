"""Stored definitions are immutable: a changed file under a stored version is refused."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from statewise.definition import fingerprint
from statewise.errors import VersionConflictError
from statewise.store.sql import SQLStore

from .conftest import OpenStore
from .helpers import ORDERS, run

# ``on:`` is a YAML 1.1 boolean key: the hash must still sort the document's keys.
V1 = "name: orders\nversion: 1\nstates:\n  intake: {final: true}\n  wait: {on: go}\n"
REFORMATTED = (
    "# a comment\nname:   orders\nversion: 1\nstates: {intake: {final: true}, wait: {on: go}}\n"
)
EDITED = "name: orders\nversion: 1\nstates:\n  intake: {final: false}\n  wait: {on: go}\n"


def test_the_same_content_keeps_its_first_source_and_takes_the_new_command_modules(
    store: SQLStore,
) -> None:
    run(store.save_workflow(replace(ORDERS, source=V1), "orders.yaml", ["a"]))
    run(store.save_workflow(replace(ORDERS, source=REFORMATTED), "moved.yaml", ["a", "b"]))

    (saved,) = run(store.workflows())
    assert (saved.name, saved.version, saved.source, saved.file, saved.commands) == (
        "orders",
        1,
        V1,
        "orders.yaml",
        ("a", "b"),
    )
    assert (
        saved.content_hash == fingerprint.content_hash(V1) == fingerprint.content_hash(REFORMATTED)
    )


def test_changed_content_under_a_stored_version_is_refused_with_what_differs(
    open_store: OpenStore,
) -> None:
    first, second = open_store(), open_store()
    run(first.save_workflow(replace(ORDERS, source=V1), "orders.yaml", ["a"]))

    with pytest.raises(VersionConflictError) as raised:
        run(second.save_workflow(replace(ORDERS, source=EDITED), "orders.yaml", ["b"]))

    message = str(raised.value)
    assert "workflow 'orders' version 1 is already stored" in message
    assert "bump `version` in orders.yaml" in message
    assert "-  intake: {final: true}\n+  intake: {final: false}" in message
    (saved,) = run(first.workflows())
    assert (saved.source, saved.commands) == (V1, ("a",))
    run(second.save_workflow(replace(ORDERS, version=2, source=EDITED), "orders.yaml", ["b"]))
    assert [w.version for w in run(first.workflows())] == [1, 2]


def test_of_writers_saving_one_new_version_with_different_content_one_wins(
    open_store: OpenStore,
) -> None:
    stores = [open_store() for _ in range(4)]
    sources = [V1, EDITED, V1, EDITED]

    def save(index: int) -> str:
        definition = replace(ORDERS, source=sources[index])
        try:
            run(stores[index].save_workflow(definition, f"f{index}.yaml", []))
        except VersionConflictError:
            return "refused"
        return sources[index]

    with ThreadPoolExecutor(len(stores)) as pool:
        outcomes = list(pool.map(save, range(len(stores))))

    (saved,) = run(stores[0].workflows())
    assert sorted(outcomes) == sorted([saved.source, saved.source, "refused", "refused"])
