"""The catalog refresh on real stores: it loads again only when the stored versions change.

A round that finds the same stamps reads one small query and loads nothing; a deploy (a new
version, or the same one with other command modules) makes the next round load and adopt;
a load that fails for a reason other than an outage is not tried again until the store
changes once more, and the rounds go on after it.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from actions.conftest import REVIEW_YAML, registry
from statewise.definition import loads
from statewise.errors import ConfigurationError
from statewise.store import Store, open_store
from statewise.worker.catalog import Catalog, load_catalog
from statewise.worker.refresh import CatalogRefresh, refreshing

V2 = REVIEW_YAML.replace("version: 1", "version: 2")
V3 = REVIEW_YAML.replace("version: 1", "version: 3")


@pytest.fixture
def url(db: str) -> str:
    """One empty store of each kind (tests/conftest.py's db)."""
    return db


class _Loads:
    """Loads the catalog as `statewise worker --commands actions.conftest`, counting calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.failure: Exception | None = None
        self.adopted: list[Catalog] = []

    async def __call__(self, store: Store) -> Catalog:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        return await load_catalog(store, ["actions.conftest"], stored_modules=False)


async def _deploy(store: Store, source: str, modules: list[str] | None = None) -> None:
    definition = loads(source, file="review.yaml", commands=registry.names())
    await store.save_workflow(definition, "review.yaml", modules or [])


async def _refresh(store: Store, loads_: _Loads) -> CatalogRefresh:
    await _deploy(store, REVIEW_YAML)
    return CatalogRefresh(store, await loads_(store), loads_, loads_.adopted.append)


def test_a_round_loads_again_only_when_the_stored_versions_change(url: str) -> None:
    async def scenario() -> None:
        store = open_store(url)
        try:
            loads_ = _Loads()
            refresh = await _refresh(store, loads_)
            assert await refresh.refresh() is False and loads_.calls == 1
            await _deploy(store, V2)
            assert await refresh.refresh() is True and loads_.calls == 2
            assert [c.held() for c in loads_.adopted] == [["review@1", "review@2"]]
            assert await refresh.refresh() is False and loads_.calls == 2
            await _deploy(store, V2, ["other.module"])  # same content, other modules
            assert await refresh.refresh() is True and loads_.calls == 3
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_failed_load_waits_for_the_next_change_and_the_rounds_go_on(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        store = open_store(url)
        try:
            loads_ = _Loads()
            refresh = await _refresh(store, loads_)
            loads_.failure = ConfigurationError("the agent plugin 'ai' cannot be imported")
            await _deploy(store, V2)
            async with refreshing(refresh, 0.02):
                await asyncio.sleep(0.3)  # many rounds; the failing load is tried once
            assert loads_.calls == 2 and loads_.adopted == []
            loads_.failure = None
            await _deploy(store, V3)
            async with refreshing(refresh, 0.02):
                while not loads_.adopted:
                    await asyncio.sleep(0.02)
            assert loads_.adopted[-1].held() == ["review@1", "review@2", "review@3"]
            assert refresh.catalog is loads_.adopted[-1]
        finally:
            await store.close()

    caplog.set_level(logging.INFO, logger="statewise.worker")
    asyncio.run(scenario())
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "the stored workflows could not be loaded again: the agent plugin 'ai' cannot be imported"
    ]
    assert any("now holds review@3" in r.getMessage() for r in caplog.records)
