"""Readiness on a real store: a quarantine flood and an unreachable store each fail /readyz."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from statewise.engine import fail_item
from statewise.observe.health import ReadinessPolicy, readiness, serve_probes
from statewise.store import StepCommit
from statewise.store.sqlite import SQLiteStore
from statewise.worker import ItemWriter
from worker.workflows import review_flow

NOW = 1_700_000_000.0


def test_more_failed_items_than_allowed_is_a_flood_and_a_closed_store_is_unreachable(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "health.sqlite")
    definition = review_flow()
    policy = ReadinessPolicy(failed_window=60, max_failed=2)

    async def scenario() -> None:
        writer = ItemWriter(store, [definition], clock=lambda: NOW - 30)
        await writer.start(definition, [(f"k{n}", {"score": 1}) for n in range(4)])
        for key in ("k0", "k1"):
            item = await store.get_item(definition.name, key)
            await store.commit([StepCommit(fail_item(item, "boom", NOW - 10), item.seq)])
        calm = await readiness(store, None, policy, NOW)
        assert calm.status_code == 200 and calm.body()["failed"] == []
        assert calm.body()["checks"]["workers"]["detail"] == "this process runs no workers"
        item = await store.get_item(definition.name, "k2")
        await store.commit([StepCommit(fail_item(item, "boom", NOW - 5), item.seq)])
        flood = await readiness(store, None, policy, NOW)
        assert (flood.status_code, flood.body()["failed"]) == (503, ["quarantine"])
        assert "3 item(s) failed in the last 60s (at most 2)" in str(flood.body())
        assert (await readiness(store, None, policy, NOW + 120)).ready  # the window moved on
        await store.close()
        gone = await readiness(store, None, policy, NOW)
        assert gone.status_code == 503 and gone.body()["failed"] == ["store", "quarantine"]

    asyncio.run(scenario())


def test_the_probe_server_answers_only_its_two_paths_and_survives_garbage(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "probes.sqlite")
    policy = ReadinessPolicy()

    async def ask(port: int, raw: bytes) -> tuple[int, dict[str, object]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)

    async def scenario() -> None:
        server = await serve_probes("127.0.0.1", 0, lambda: readiness(store, None, policy, NOW))
        port = server.sockets[0].getsockname()[1]
        try:
            assert await ask(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == (
                200,
                {"status": "alive"},
            )
            status, body = await ask(port, b"GET /readyz?verbose=%00 HTTP/1.1\r\n\r\n")
            assert (status, body["status"]) == (200, "ready")
            assert (await ask(port, b"POST /readyz HTTP/1.1\r\n\r\n"))[0] == 405
            missing = await ask(port, "GET /%2F..%00\u001f/ü HTTP/1.1\r\n\r\n".encode())
            assert missing[0] == 404 and missing[1]["error"] == "not_found"
            assert (await ask(port, b"\x00\xff garbage\r\n\r\n"))[0] == 404
            assert (await ask(port, b"\r\n\r\n"))[0] == 400
            assert (await ask(port, b"GET /healthz HTTP/1.1\r\n\r\n"))[0] == 200  # still up
        finally:
            server.close()
            await server.wait_closed()
            await store.close()

    asyncio.run(scenario())
