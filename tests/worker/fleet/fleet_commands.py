"""Commands of the fleet crash test, imported by each ``statewise worker`` process by name.

Every command records its attempt in ``attempts`` (each delivery, duplicates included) and its
effect in ``effects`` keyed by the idempotency key (``ON CONFLICT DO NOTHING``): the way a
command with a real side effect de-duplicates it. The test reads both tables afterwards.
The PostgreSQL connection comes from FLEET_DSN and FLEET_SCHEMA.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import psycopg

from statewise import CommandContext, CommandRegistry, TransientError

registry = CommandRegistry()
_connection: dict[int, psycopg.AsyncConnection[Any]] = {}


async def _db() -> psycopg.AsyncConnection[Any]:
    loop = id(asyncio.get_running_loop())
    if loop not in _connection:
        _connection[loop] = await psycopg.AsyncConnection.connect(
            os.environ["FLEET_DSN"],
            autocommit=True,
            options=f"-c search_path={os.environ['FLEET_SCHEMA']}",
        )
    return _connection[loop]


async def _effect(call: CommandContext, pause: float) -> dict[str, Any]:
    db = await _db()
    await db.execute("INSERT INTO attempts (idempotency_key) VALUES (%s)", (call.idempotency_key,))
    await asyncio.sleep(pause)
    await db.execute(
        "INSERT INTO effects (idempotency_key) VALUES (%s) ON CONFLICT DO NOTHING",
        (call.idempotency_key,),
    )
    return {"key": call.idempotency_key}


@registry.command()
async def prepare(call: CommandContext) -> dict[str, Any]:
    # Longer than the others, so that a random kill is likely to land in the middle of a
    # command even when a loaded machine runs few of them at once.
    return await _effect(call, 0.05)


@registry.command()
async def part(call: CommandContext) -> dict[str, Any]:
    if call.attempt == 1 and int(call.key.removeprefix("item-")) % 5 == 0:
        raise TransientError("the part service is busy (first attempt of every fifth item)")
    return await _effect(call, 0.01)


@registry.command()
async def finish(call: CommandContext) -> dict[str, Any]:
    return await _effect(call, 0.005)


@registry.command()
async def linger(call: CommandContext) -> dict[str, Any]:
    """The stale-worker test's command: long enough to be frozen in the middle of it."""
    return await _effect(call, float(call.context.get("pause", 1.0)))
