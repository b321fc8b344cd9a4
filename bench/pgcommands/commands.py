"""Commands of the PostgreSQL worker benchmark, imported by name by each ``statewise worker``.

Every command awaits ``STATEWISE_BENCH_LATENCY`` seconds (read once at import; 0 or unset:
it returns at once) and returns the small result of ``stages.result``, which the engine
stores as ``context.<state>``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pgcommands.stages import STAGES, result
from statewise import CommandContext, CommandRegistry

LATENCY = float(os.environ.get("STATEWISE_BENCH_LATENCY", "0"))
registry = CommandRegistry()


def _register(stage: str) -> None:
    async def command(call: CommandContext) -> dict[str, Any]:
        if LATENCY > 0:
            await asyncio.sleep(LATENCY)
        return result(stage, call.key)

    registry.register(stage, command)


for _stage in STAGES:
    _register(_stage)
