"""Definitions and commands shared by the runner and durability tests.

Definitions are built from the model dataclasses (no YAML), so these tests do not depend on
the loader. Run as a script, this module is the worker process that test_durability.py kills::

    python workflows.py DB WORKFLOW COUNT CONCURRENCY PAUSE

It starts COUNT items of WORKFLOW (idempotent, so every restart may do it again), prints
``ready`` and runs them until idle; ``stages`` commands log each attempt they begin to
DB.calls. It imports only what a worker needs, to start fast.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from statewise.conditions import compile_condition
from statewise.contract import CommandContext, CommandRegistry
from statewise.definition.model import (
    Command,
    Definition,
    Parallel,
    RetryPolicy,
    State,
    StateKind,
    Transition,
)
from statewise.store.sqlite import SQLiteStore
from statewise.worker.runner import Runner

# Retries that are quick and exact: 10 ms between attempts, no jitter.
FAST = RetryPolicy(attempts=3, backoff=0.01, multiplier=1.0, jitter=0.0, timeout=5.0)


# --- definition factories -------------------------------------------------------------------


def cmd(name: str, result: str | None = None, **policy: Any) -> Command:
    """Command ``name`` storing its result under ``result`` (default: its name), FAST retries."""
    return Command(name=name, result=result or name, retry=replace(FAST, **policy))


def to(
    target: str, when: str | None = None, *, on: str = "done", after: float | None = None
) -> Transition:
    """A transition to ``target`` on ``on``, guarded by CEL ``when``; ``after`` makes a timer."""
    guard = compile_condition(when) if when is not None else None
    return Transition(target=target, on=on, when=guard, after=after)


def orelse(target: str, *, on: str = "done") -> Transition:
    """The ``else`` transition on ``on``."""
    return Transition(target=target, on=on, is_else=True)


def run(name: str, command: Command | str, *transitions: Transition) -> State:
    """A normal state running ``command`` (a bare name stores its result under that name)."""
    command = cmd(command) if isinstance(command, str) else command
    return State(name=name, command=command, transitions=transitions)


def choose(name: str, *transitions: Transition) -> State:
    """A decision state: no command, the first ``done`` transition that holds wins."""
    return State(name=name, transitions=transitions)


def hold(name: str, *transitions: Transition) -> State:
    """A waiting state: stays until an external event or a timer."""
    return State(name=name, kind=StateKind.WAITING, transitions=transitions)


def fan_map(name: str, over: str, command: Command, concurrency: int, *then: Transition) -> State:
    """A parallel state with one branch per element of ``over``, at most ``concurrency`` at once."""
    parallel = Parallel(over=compile_condition(over), map_command=command, concurrency=concurrency)
    return State(name=name, kind=StateKind.PARALLEL, transitions=then, parallel=parallel)


def flow(name: str, *states: State) -> Definition:
    """Version 1 of ``name``, starting at the first state; undeclared targets become final."""
    table = {s.name: s for s in states}
    for target in ["escalated", *(t.target for s in states for t in s.transitions)]:
        table.setdefault(target, State(name=target, kind=StateKind.FINAL))
    return Definition(name=name, version=1, states=table, initial=states[0].name)


# --- the workflows --------------------------------------------------------------------------


def review_flow() -> Definition:
    """fetch -> route (on the score) -> review (waits for a human) -> publish -> published."""
    return flow(
        "review",
        run("fetch", "fetch", to("route")),
        choose("route", to("review", "fetch.score > 50"), orelse("rejected")),
        hold("review", to("publish", on="approve"), to("rejected", on="reject")),
        run("publish", "publish", to("published")),
    )


def deadline_flow(after: float) -> Definition:
    """An item waits for an answer; ``after`` seconds without one, it expires."""
    return flow(
        "deadline",
        hold("waiting", to("answered", on="answer"), to("expired", on="timeout", after=after)),
    )


def stages_flow() -> Definition:
    """The multi-stage workflow the kill test runs: a loop, a decision and a parallel map.

    Item ``n``: ``prepare`` runs twice when n % 3 == 0 (the loop back from ``check``); even
    items fan out over their ``parts`` two at a time, odd ones do a ``single`` command.
    """
    return flow(
        "stages",
        run("prepare", "prepare", to("check")),
        choose(
            "check",
            to("prepare", "prepare.n % 3 == 0 && visits.prepare < 2"),
            to("fanout", "prepare.n % 2 == 0"),
            orelse("single"),
        ),
        fan_map("fanout", "parts", cmd("work", "parts_done"), 2, to("finish")),
        run("single", cmd("work", "single_done"), to("finish")),
        run("finish", "finish", to("done")),
    )


def expected_path(n: int) -> list[str]:
    """The states item ``n`` of ``stages_flow`` enters, in order."""
    loop = ["prepare", "check"] * (2 if n % 3 == 0 else 1)
    return [*loop, "fanout" if n % 2 == 0 else "single", "finish", "done"]


def deadline_items(count: int) -> list[tuple[str, dict[str, Any]]]:
    """Business keys for ``deadline_flow``."""
    return [(f"item-{n}", {}) for n in range(count)]


def stages_items(count: int, **data: Any) -> list[tuple[str, dict[str, Any]]]:
    """Business keys and start data for ``stages_flow`` (``pause``, ``log``: see ``_pause``)."""
    return [(f"item-{n}", {"parts": ["a", "b", "c"], **data}) for n in range(count)]


# --- commands -------------------------------------------------------------------------------

registry = CommandRegistry()


async def _pause(call: CommandContext) -> None:
    """Log the attempt if the item's start data names a log file, then sleep as it says."""
    if "log" in call.context:
        with open(call.context["log"], "a") as log:
            log.write(call.idempotency_key + "\n")
    await asyncio.sleep(call.context.get("pause", 0.0))


@registry.command()
async def fetch(call: CommandContext) -> dict[str, Any]:
    """Echo the score the item was started with."""
    return {"score": call.context["score"]}


@registry.command()
def publish(call: CommandContext) -> dict[str, Any]:
    """Say who approved (a sync command: it runs in a thread)."""
    return {"approved_by": call.context["approve"]["by"]}


@registry.command()
async def prepare(call: CommandContext) -> dict[str, Any]:
    """The item's number, parsed from its key ``item-<n>``."""
    await _pause(call)
    return {"n": int(call.key.rsplit("-", 1)[1])}


@registry.command()
async def work(call: CommandContext) -> dict[str, Any]:
    """One unit of work, remembering which branch and input it was."""
    await _pause(call)
    return {"branch": call.branch, "input": call.input, "attempt": call.attempt}


@registry.command()
async def finish(call: CommandContext) -> dict[str, Any]:
    """The last stage."""
    await _pause(call)
    return {"ok": True}


WORKFLOWS = {"stages": stages_flow, "deadline": lambda: deadline_flow(1.0)}


async def _main(db: str, workflow: str, count: int, concurrency: int, pause: float) -> None:
    definition = WORKFLOWS[workflow]()
    log = str(Path(db).with_suffix(".calls"))
    items = (
        stages_items(count, pause=pause, log=log) if workflow == "stages" else deadline_items(count)
    )
    store = SQLiteStore(db)
    try:
        runner = Runner(store, [definition], registry, concurrency=concurrency)
        print("ready", flush=True)
        await runner.start(definition, items)
        await runner.run(max_wait=0.0 if workflow == "stages" else 60.0)
    finally:
        await store.close()


if __name__ == "__main__":
    db, workflow, count, concurrency, pause = sys.argv[1:]
    asyncio.run(_main(db, workflow, int(count), int(concurrency), float(pause)))
