"""A store outage answers 503 with Retry-After, never 400 or 500, and changes nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from statewise.store import open_store
from statewise.store.sqlite import SQLiteStore

from .conftest import Server, run_server


@pytest.fixture
def impatient_server(tmp_path: Path) -> Iterator[Server]:
    """A service whose store waits only 50 ms for SQLite's write lock."""
    yield from run_server(
        f"sqlite:///{tmp_path / 'service.sqlite'}",
        open_service_store=lambda url: SQLiteStore(
            url.removeprefix("sqlite:///"), busy_timeout=0.05
        ),
    )


def test_a_locked_store_answers_503_with_retry_after_and_the_retry_succeeds(
    impatient_server: Server,
) -> None:
    path = impatient_server.store_url.removeprefix("sqlite:///")
    body = {"workflow": "review", "key": "new%41?-ü", "data": {"amount": 5}}
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with impatient_server.client("operator") as client:
            refused = client.post("/api/items", json=body)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "store_unavailable"
            assert "briefly unavailable" in refused.json()["message"]
            assert impatient_server.store_url.removeprefix("sqlite:///") not in refused.text
            assert int(refused.headers["Retry-After"]) >= 1
            holder.execute("ROLLBACK")
            accepted = client.post("/api/items", json=body)
            assert accepted.status_code == 201, accepted.text
    finally:
        holder.close()

    async def check() -> None:
        store = open_store(impatient_server.store_url)
        try:
            keys = [i.key for i in await store.list_items(workflow="review", limit=100)]
            assert keys.count(body["key"]) == 1
            assert await store.stuck_items() == []
        finally:
            await store.close()

    asyncio.run(check())
