"""/healthz and /readyz of a live service, and a runner that crashes and is restarted.

The crash is injected into the service's real SQLite store: while armed, claiming timers
raises, which ends the runner's run the way a bug would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from statewise.store import open_store
from statewise.store.sqlite import SQLiteStore
from statewise.worker.supervisor import RestartPolicy

from .conftest import Server, run_server


class CrashingStore(SQLiteStore):
    """A real store whose timer claims raise while ``crashes`` is above zero."""

    crashes = 0

    async def claim_timers(self, *args: Any, **kwargs: Any) -> Any:
        if self.crashes > 0:
            self.crashes -= 1
            raise RuntimeError("injected crash")
        return await super().claim_timers(*args, **kwargs)


@pytest.fixture
def crashing(tmp_path: Path) -> Iterator[tuple[Server, list[CrashingStore]]]:
    opened: list[CrashingStore] = []

    def open_crashing(url: str) -> CrashingStore:
        opened.append(CrashingStore(url.removeprefix("sqlite:///")))
        return opened[-1]

    for server in run_server(
        f"sqlite:///{tmp_path / 'service.sqlite'}",
        open_service_store=open_crashing,
        restarts=RestartPolicy(restarts=3, delay=1.0),
    ):
        yield server, opened


def wait_for(check: Callable[[], httpx.Response | None], timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while (answer := check()) is None:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return answer


def readyz_answers(client: httpx.Client, status: int) -> httpx.Response:
    """Poll /readyz until it answers ``status``."""
    return wait_for(lambda: r if (r := client.get("/readyz")).status_code == status else None)


def test_healthz_answers_without_a_token(server: Server) -> None:
    with server.client() as anonymous:
        alive = anonymous.get("/healthz")
        assert (alive.status_code, alive.json()) == (200, {"status": "alive"})
        ready = anonymous.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["workers"] == {"ok": True, "detail": "running"}
        assert ready.json()["failed"] == []


def test_a_crashed_runner_makes_readyz_503_until_it_is_restarted_and_work_goes_on(
    crashing: tuple[Server, list[CrashingStore]],
) -> None:
    server, (store,) = crashing
    with server.client() as probe, server.client("operator") as operator:
        readyz_answers(probe, 200)
        store.crashes = 1
        down = readyz_answers(probe, 503)
        assert down.json()["failed"] == ["workers"]
        assert (
            "restarting: RuntimeError: injected crash" in down.json()["checks"]["workers"]["detail"]
        )
        assert probe.get("/healthz").status_code == 200  # alive all along
        started = operator.post(
            "/api/items",
            json={"workflow": "review", "key": "after%2Fcrash-ü", "data": {"amount": 95}},
        )
        assert started.status_code == 201, started.text
        readyz_answers(probe, 200)

        def approved() -> httpx.Response | None:
            found = operator.get("/api/items", params={"workflow": "review", "status": "done"})
            keys = [item["key"] for item in found.json()["items"]]
            return found if "after%2Fcrash-ü" in keys else None

        wait_for(approved)

    async def check() -> list[Any]:
        reader = open_store(server.store_url)
        try:
            return await reader.stuck_items()
        finally:
            await reader.close()

    assert asyncio.run(check()) == []
