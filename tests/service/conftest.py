"""A real statewise service on 127.0.0.1: uvicorn in a thread, a real store, real tokens."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from actions.conftest import REVIEW_YAML, registry
from statewise.definition.model import Role
from statewise.observe.alerting import AlertSettings
from statewise.service import ServiceContext, create_app
from statewise.service.auth import hash_secret, new_secret
from statewise.store import Store, open_store
from statewise.worker.catalog import Catalog
from statewise.worker.refresh import Load
from statewise.worker.runner import Runner
from statewise.worker.supervisor import RestartPolicy

__all__ = ["REVIEW_YAML", "Server", "login_csrf", "stuck_items"]


@dataclass
class Server:
    """A running service: its address, one token per role, and its store's URL."""

    url: str
    tokens: dict[str, str]
    store_url: str

    def client(self, role: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def stuck_items(store_url: str) -> list[object]:
    """The store's broken invariants: active items with no command, timer or wait.

    Read on a thread of its own, so it works beside Playwright, which holds this one's loop.
    """

    async def read() -> list[object]:
        store = open_store(store_url)
        try:
            return list(await store.stuck_items())
        finally:
            await store.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()


def login_csrf(client: httpx.Client) -> str:
    """Open the sign-in page (which sets the CSRF cookie) and read the form's CSRF value."""
    page = client.get("/dashboard/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _prepare(store_url: str, items: int, workflow: str = REVIEW_YAML) -> dict[str, str]:
    from statewise.definition import loads

    store = open_store(store_url)
    try:
        review = loads(workflow, file="review.yaml", commands=registry.names())
        await store.save_workflow(review, "review.yaml", [])
        runner = Runner(store, [review], registry)
        await runner.start(review, [(f"order-{n}", {"amount": 50}) for n in range(items)])
        await runner.run(max_wait=0)
        tokens = {}
        for role in Role:
            secret = new_secret()
            await store.create_token(role.value, role, hash_secret(secret), time.time())
            tokens[role.value] = secret
        secret = new_secret()
        await store.create_token(
            "billing", Role.REVIEWER, hash_secret(secret), time.time(), ["billing"]
        )
        tokens["billing"] = secret
        return tokens
    finally:
        await store.close()


def run_server(
    store_url: str,
    items: int = 3,
    workers: bool = True,
    workflow: str = REVIEW_YAML,
    catalog: Callable[[Store], Awaitable[Catalog]] | None = None,
    open_service_store: Callable[[str], Store] = open_store,
    restarts: RestartPolicy | None = None,
    prune_every: float | None = None,
    reload: Load | None = None,
    refresh_every: float | None = None,
    alerts: AlertSettings | None = None,
) -> Iterator[Server]:
    """Start the service on a free port with ``items`` started on ``workflow``; stop it after.

    ``catalog`` loads what the service holds, as ``statewise serve`` does; by default it
    holds ``workflow`` with the test registry. ``open_service_store`` opens the service's own
    store (a test may tune it, e.g. shorten a SQLite busy timeout); the preparation uses a
    plain one. ``restarts`` is how the service restarts its workers, ``prune_every`` how
    often it applies the retention policies (None: never). With ``reload``, the service
    loads its catalog again that way when the stored versions change, checked every
    ``refresh_every`` seconds and on a request for a version it does not hold. ``alerts``
    runs the alert rounds beside (None: not).
    """
    tokens = asyncio.run(_prepare(store_url, items, workflow))
    port = _free_port()
    holder: dict[str, uvicorn.Server] = {}

    async def serve() -> None:
        from statewise.definition import loads

        store = open_service_store(store_url)
        review = loads(workflow, file="review.yaml", commands=registry.names())
        held = await catalog(store) if catalog else Catalog([review], registry)
        ctx = ServiceContext(
            store,
            held,
            workers=workers,
            restarts=restarts or RestartPolicy(),
            prune_every=prune_every,
            reload=reload,
            refresh_every=refresh_every,
            alerts=alerts,
        )
        config = uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning")
        holder["server"] = server = uvicorn.Server(config)
        try:
            await server.serve()
        finally:
            await store.close()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not (holder.get("server") and holder["server"].started):
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    try:
        yield Server(f"http://127.0.0.1:{port}", tokens, store_url)
    finally:
        holder["server"].should_exit = True
        thread.join(30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from run_server(f"sqlite:///{tmp_path / 'service.sqlite'}")
