"""Reviews of an agent, decided by people on both stores, and `statewise quality` reading them.

Two reviewers deciding one task at once leave one review: the task's fence refuses the second
decision, so the counts the CLI reports stay right.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from typer.testing import CliRunner

from statewise.actions import Principal, TaskDesk
from statewise.cli import app
from statewise.definition.model import Role
from statewise.errors import TaskError
from statewise.store import open_store
from statewise.worker.runner import Runner

from .reviewing import registry, screening

ALICE = Principal("alice", Role.REVIEWER, ("fraud",))
BOB = Principal("bob", Role.REVIEWER)
RESCORED, RACED, AGREED, CLEARED = "inv%41/ключ?", "a/b", "naïve-日本", "calm"
AMOUNTS = {RESCORED: 0.55, RACED: 0.62, AGREED: 0.93, CLEARED: 0.2}


async def _decide_the_holds(url: str) -> None:
    """RESCORED is sent back once, then approved; RACED is approved by two people at once."""
    first, second = open_store(url), open_store(url)
    try:
        definition = screening()
        await first.save_workflow(definition, "screening.yaml", [])
        runner = Runner(first, [definition], registry)
        await runner.start(definition, [(k, {"amount": v}) for k, v in AMOUNTS.items()])
        await runner.run(max_wait=0)
        desk = TaskDesk(runner, registry)
        held = {task.key: task.id for task in await desk.inbox(ALICE)}
        assert set(held) == {RESCORED, RACED, AGREED}
        await desk.decide(held[RESCORED], ALICE, "rescore")
        await runner.run(max_wait=0)
        (again,) = [task.id for task in await desk.inbox(ALICE) if task.key == RESCORED]
        await desk.decide(again, ALICE, "approve")
        other = TaskDesk(Runner(second, [definition], registry), registry)
        raced = await asyncio.gather(
            desk.decide(held[RACED], ALICE, "approve"),
            other.decide(held[RACED], BOB, "approve"),
            return_exceptions=True,
        )
        assert [type(r) for r in raced if isinstance(r, Exception)] == [TaskError], raced
        await desk.decide(held[AGREED], ALICE, "reject")
        await runner.run(max_wait=0)
        assert await first.stuck_items() == []

        def reviews(key: str) -> list[object]:
            return [r.decision.get("review") for r in trails[key] if r.decision is not None]

        trails = {key: await first.history("screening", key) for key in AMOUNTS}
        assert reviews(RESCORED) == [
            {"agent": "scorer", "state": "scoring", "visit": 1, "verdict": "neither",
             "score": 0.55},
            {"agent": "scorer", "state": "scoring", "visit": 2, "verdict": "override",
             "score": 0.65},
        ]  # fmt: skip
        assert [r["verdict"] for r in reviews(RACED)] == ["override"]  # type: ignore[index]
        assert reviews(AGREED)[0] == {
            "agent": "scorer", "state": "scoring", "visit": 1, "verdict": "agree", "score": 0.93
        }  # fmt: skip
        assert reviews(CLEARED) == []
    finally:
        await first.close()
        await second.close()


def _quality(url: str, *options: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["quality", "--db", url, "--format", "json", *options])
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _bands(stage: dict[str, object]) -> list[tuple[object, ...]]:
    rows: list[dict[str, object]] = stage["bands"]  # type: ignore[assignment]
    return [(b["low"], b["high"], b["reviews"], b["agree"], b["override"]) for b in rows]


def test_reviews_are_recorded_once_each_and_the_cli_counts_them(url: str) -> None:
    asyncio.run(_decide_the_holds(url))

    report = _quality(url)
    (stage,) = report["stages"]  # type: ignore[misc]
    counts = [stage[k] for k in ("workflow", "agent", "state", "reviews", "agree", "override")]
    assert counts == ["screening", "scorer", "scoring", 4, 1, 2]
    assert stage["neither"] == 1 and stage["agreement"] == pytest.approx(1 / 3)
    assert [o["key"] for o in stage["overrides"]] == [RACED, RESCORED]  # newest first
    assert [(o["score"], o["visit"], o["task"]) for o in stage["overrides"]] == [
        (0.62, 1, "hold"), (0.65, 2, "hold")
    ]  # fmt: skip
    assert stage["overrides"][0]["actor"] in ("token:alice", "token:bob")  # the race's winner
    assert stage["band_width"] == 0.1  # scores within 0..1
    assert _bands(stage) == [(0.5, 0.6, 1, 0, 0), (0.6, 0.7, 2, 0, 2), (0.9, 1.0, 1, 1, 0)]
    today = time.time() // 86_400 * 86_400
    assert [(p["start"], p["reviews"]) for p in stage["trend"]] == [(today, 4)]

    wide = _quality(url, "--band", "0.25", "--bucket", "week", "--workflow", "screening")
    (stage,) = wide["stages"]  # type: ignore[misc]
    assert _bands(stage) == [(0.5, 0.75, 3, 0, 2), (0.75, 1.0, 1, 1, 0)]
    (week,) = stage["trend"]
    assert time.gmtime(week["start"]).tm_wday == 0 and week["agreement"] == pytest.approx(1 / 3)
    assert _quality(url, "--workflow", "other")["stages"] == []

    table = CliRunner().invoke(app, ["quality", "--db", url], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and RESCORED in table.output and RACED in table.output
    refused = CliRunner().invoke(app, ["quality", "--db", url, "--since", "-3d"])
    assert refused.exit_code == 2 and "--since" in refused.output
