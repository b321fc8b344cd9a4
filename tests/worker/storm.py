"""Roles of the many-writers test, each run as its own process on one SQLite file.

    python storm.py runner DB SECONDS          run until DB.stop exists (or SECONDS pass)
    python storm.py sender DB SEED COUNT ITEMS send COUNT random events to random items,
                                               once DB.go exists

The runner process holds the file's runner lock; senders commit steps beside it through
``Runner.send`` as ``statewise send`` does, each from its own connection.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path

from statewise.contract import CommandContext, CommandRegistry
from statewise.definition import loads
from statewise.errors import InvalidEventError, NotFoundError, StaleLeaseError
from statewise.store.sqlite import SQLiteStore
from statewise.worker.runner import Runner

STORM = """
workflow: storm
version: 1
events:
  approve: a reviewer approves
  reject: a reviewer rejects
  expedite: someone skips the slow processing
states:
  intake:
    kind: initial
    command: quick
    transitions:
      - to: review
  review:
    kind: waiting
    transitions:
      - on: approve
        to: process
      - on: reject
        to: rejected
      - after: 3s
        to: process
  process:
    command: {name: slow, result: processed}
    transitions:
      - on: expedite
        to: ship
      - to: ship
  ship:
    command: {name: quick, result: shipped}
    transitions:
      - to: shipped
  shipped: {kind: final}
  rejected: {kind: final}
"""
EVENTS = ("approve", "approve", "expedite", "expedite", "reject")
registry = CommandRegistry()


@registry.command()
async def quick(call: CommandContext) -> dict[str, str]:
    await asyncio.sleep(0.002)
    return {"by": call.idempotency_key}


@registry.command()
async def slow(call: CommandContext) -> dict[str, str]:
    # Long enough that the runner, holding its copy of an item in `process`, claims the
    # command an `expedite` queued for `ship` before this one ends: the once-fatal window.
    await asyncio.sleep(0.6)
    return {"by": call.idempotency_key}


def definition():  # type: ignore[no-untyped-def]
    return loads(STORM, file="storm.yaml", commands=registry.names())


async def run_until_stopped(db: Path, seconds: float) -> None:
    store = SQLiteStore(db)
    runner = Runner(store, [definition()], registry, concurrency=64)
    stop = asyncio.Event()

    async def watch() -> None:
        deadline = time.monotonic() + seconds
        while not db.with_suffix(".stop").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()

    async def announce() -> None:
        print("ready", flush=True)

    watcher = asyncio.create_task(watch())
    await runner.run(stop=stop, on_ready=announce)
    await watcher
    await store.close()


async def send_randomly(db: Path, seed: int, count: int, items: int) -> None:
    rng = random.Random(seed)
    store = SQLiteStore(db)
    runner = Runner(store, [definition()], registry)
    print("ready", flush=True)
    while not db.with_suffix(".go").exists():  # the test starts the items, then says go
        await asyncio.sleep(0.01)
    accepted = 0
    for _ in range(count):
        key = f"item-{rng.randrange(items)}"
        try:
            await runner.send("storm", key, rng.choice(EVENTS), {"seed": seed}, f"sender-{seed}")
            accepted += 1
        except (InvalidEventError, StaleLeaseError, NotFoundError):
            pass
        await asyncio.sleep(rng.uniform(0, 0.03))
    await store.close()
    print(f"accepted {accepted}", flush=True)


if __name__ == "__main__":
    role, db_path, *rest = sys.argv[1:]
    if role == "runner":
        asyncio.run(run_until_stopped(Path(db_path), float(rest[0])))
    else:
        seed, count, items = (int(value) for value in rest)
        asyncio.run(send_randomly(Path(db_path), seed, count, items))
