"""A `statewise worker` whose PostgreSQL connections are terminated again and again goes on.

The worker process names itself with an ``application_name`` of the test's own, so that
``pg_terminate_backend`` ends only its connections (pool, listener) on the shared server,
every few hundred milliseconds while it runs a few hundred items. Each termination arrives as
SQLSTATE 57P01 or a closed connection: an outage, retried; nothing may be lost.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

import postgres
from statewise.engine import ItemStatus

from .test_fleet import (
    PATH,
    Fleet,
    make_effect_tables,
    prepare,
    redone,
    run,
    settled_history,
    stop,
    wait_until_settled,
)

ITEMS = 300
KILLS = 15


@pytest.mark.stress
def test_a_worker_goes_on_when_its_connections_are_terminated(
    postgres_server: str, postgres_url: str, tmp_path: Path
) -> None:
    make_effect_tables(postgres_url)
    application = f"sw_drop_{uuid.uuid4().hex[:10]}"
    fleet = Fleet(f"{postgres_url}&application_name={application}", tmp_path, lease=2.0)
    run(
        prepare(postgres_url, "fleet", [(f"item-{n}", {"parts": ["a", "b"]}) for n in range(ITEMS)])
    )
    worker = fleet.spawn()
    terminated = rounds = 0
    try:
        deadline = time.monotonic() + 120
        while redone(postgres_url) is None:  # the worker is up and performing commands
            assert time.monotonic() < deadline and worker.poll() is None, fleet.log_text()
            time.sleep(0.1)
        while rounds < KILLS:
            time.sleep(0.3)
            found = postgres.terminate(postgres_server, application)
            terminated += found
            rounds += found > 0
            assert worker.poll() is None, fleet.log_text()
        wait_until_settled(postgres_url, [worker], time.monotonic() + 120)
        assert worker.poll() is None, fleet.log_text()
    finally:
        exits = stop([worker])
    assert exits == [0], fleet.log_text()
    assert terminated >= KILLS

    rows_by_item = settled_history(postgres_url)
    assert len(rows_by_item) == ITEMS
    for item, rows in rows_by_item:
        assert (item.state, item.status) == ("done", ItemStatus.DONE), item.key
        assert [r.seq for r in rows] == list(range(1, item.seq + 1)), item.key
        assert [r.to_state for r in rows if r.from_state != r.to_state] == PATH, item.key
