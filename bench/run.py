"""The statewise benchmark: ``python bench/run.py`` (full) or ``python bench/run.py --quick``.

Scenario A runs the bench workflow with instant commands for 1,000 and 10,000 items of about
1 KB and compares durable transitions/s with two hand-written asyncio + sqlite3 engines doing
the same number of transitions: the plain baseline (the commits alone) and the durable baseline
(the workflow run by hand, the whole context rewritten per transition). Scenario B gives every
command 20 ms of simulated model latency and compares wall time with the ideal for 64 commands
in flight (and, for information, the same with latencies spread over 10-30 ms). Scenario F
feeds the runner: at most 64 items admitted at a time, each finished item admitting the next
through ``Runner.start`` while the runner runs (as a service feeds its in-process runner), and
compares its wall time with the same items all started up front, run alternately in the same
benchmark, with instant commands and with 20 ms ones. Every scenario run is its own process,
so memory figures are clean; figures and machine facts go to ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from measure import machine_info
from report import DEFINITIONS, Target, print_report
from rich.console import Console
from workload import ITEM_BYTES, Spec

JSON = Any
BENCH = Path(__file__).resolve().parent
LATENCY = 0.020
JITTER = 0.5
IN_FLIGHT = 64
RATIO_TARGET = 0.5
DURABLE_TARGET = 1.0
BASELINES = ("baseline", "durable")
ENGINES = ("statewise", *BASELINES)
BYTES_TARGET = 1024
IDEAL_TARGET = 1.2
FED_TARGET = 1.1
FED_MODES = ("upfront", "fed")


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes of one benchmark mode."""

    mode: str
    a_sizes: tuple[int, ...]
    b_items: int
    f_items: int
    repeat: int
    output: Path


FULL = Plan("full", (1_000, 10_000), 1_000, 1_000, 3, BENCH / "results.json")
QUICK = Plan("quick", (250, 1_000), 320, 320, 1, BENCH / "results.quick.json")


class ScenarioFailed(RuntimeError):
    """A scenario process failed; its stderr says why."""


def run_process(spec: Spec, workdir: Path) -> dict[str, JSON]:
    """Run one scenario in a fresh interpreter and read its figures back."""
    spec_file = workdir / f"{spec.name}.spec.json"
    result_file = workdir / f"{spec.name}.result.json"
    spec_file.write_text(json.dumps(asdict(spec)))
    completed = subprocess.run(
        [sys.executable, str(BENCH / "scenarios.py"), str(spec_file), str(result_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise ScenarioFailed(f"scenario {spec.name} failed:\n{completed.stderr}")
    result: dict[str, JSON] = json.loads(result_file.read_text())
    return result


def run_once(spec: Spec, attempt: int, workdir: Path, console: Console) -> dict[str, JSON]:
    """One run of ``spec`` on a fresh database."""
    name = f"{spec.name}-{spec.engine}-{attempt}"
    console.print(f"[dim]running {name} ({spec.items:,} items)...[/]")
    db_path = workdir / f"{name}.sqlite"
    return run_process(replace(spec, name=name, db_path=str(db_path)), workdir)


def median_run(spec: Spec, runs: list[dict[str, JSON]]) -> dict[str, JSON]:
    """The run with the median wall time, remembering every repeat's wall time."""
    ordered = sorted(runs, key=lambda run: float(run["wall_seconds"]))
    median = dict(ordered[(len(ordered) - 1) // 2])
    median["spec"] = {**median["spec"], "name": spec.name, "db_path": None}
    median["repeats_wall_seconds"] = [run["wall_seconds"] for run in runs]
    return median


def run_repeated(spec: Spec, workdir: Path, repeat: int, console: Console) -> dict[str, JSON]:
    """Run ``spec`` ``repeat`` times; keep the median run by wall time."""
    runs = [run_once(spec, attempt, workdir, console) for attempt in range(1, repeat + 1)]
    return median_run(spec, runs)


def scenario_a(plan: Plan, workdir: Path, console: Console) -> list[dict[str, JSON]]:
    """For each size: statewise, then both baselines doing the same transition total.

    Repeats alternate the engines so that all of them see the same background load.
    """
    found = []
    for items in plan.a_sizes:
        statewise = Spec(f"A-{items}", "statewise", items, "", concurrency=IN_FLIGHT)
        specs = {engine: replace(statewise, engine=engine) for engine in ENGINES}
        runs: dict[str, list[dict[str, JSON]]] = {engine: [] for engine in ENGINES}
        for attempt in range(1, plan.repeat + 1):
            runs["statewise"].append(run_once(statewise, attempt, workdir, console))
            total = runs["statewise"][-1]["transitions"]
            for engine in BASELINES:
                spec = replace(specs[engine], transitions=total)
                runs[engine].append(run_once(spec, attempt, workdir, console))
        medians = {engine: median_run(specs[engine], runs[engine]) for engine in ENGINES}
        mine = medians["statewise"]["transitions_per_second"]
        found.append(
            {
                "items": items,
                **medians,
                "ratio": mine / medians["baseline"]["transitions_per_second"],
                "durable_ratio": mine / medians["durable"]["transitions_per_second"],
            }
        )
    return found


def scenario_b(plan: Plan, workdir: Path, console: Console) -> list[dict[str, JSON]]:
    """Commands with simulated latency, ``IN_FLIGHT`` at once, against the ideal wall time.

    The first run is the target (every command sleeps exactly ``LATENCY``); the second, for
    information, spreads each latency uniformly over +-``JITTER`` around the same mean.
    """
    found = []
    for jitter, suffix in ((0.0, ""), (JITTER, "-jitter")):
        spec = Spec(
            f"B-{plan.b_items}{suffix}",
            "statewise",
            plan.b_items,
            "",
            latency=LATENCY,
            jitter=jitter,
            concurrency=IN_FLIGHT,
        )
        result = run_repeated(spec, workdir, plan.repeat, console)
        ideal = result["command_latency_seconds"] / IN_FLIGHT
        result["ideal_seconds"] = ideal
        result["ideal_ratio"] = result["wall_seconds"] / ideal
        result["ideal_ratio_run_only"] = result["run_seconds"] / ideal
        found.append(result)
    return found


def scenario_f(plan: Plan, workdir: Path, console: Console) -> list[dict[str, JSON]]:
    """Fed against started up front, instant and with ``LATENCY``; repeats alternate the two."""
    found = []
    for latency, suffix in ((0.0, ""), (LATENCY, "-20ms")):
        upfront = Spec(
            f"F-{plan.f_items}{suffix}-upfront",
            "statewise",
            plan.f_items,
            "",
            latency=latency,
            concurrency=IN_FLIGHT,
        )
        fed = replace(upfront, name=f"F-{plan.f_items}{suffix}-fed", window=IN_FLIGHT)
        specs = dict(zip(FED_MODES, (upfront, fed), strict=True))
        runs: dict[str, list[dict[str, JSON]]] = {mode: [] for mode in FED_MODES}
        for attempt in range(1, plan.repeat + 1):
            for mode, spec in specs.items():
                runs[mode].append(run_once(spec, attempt, workdir, console))
        medians = {mode: median_run(specs[mode], runs[mode]) for mode in specs}
        found.append(
            {
                "items": plan.f_items,
                "latency": latency,
                **medians,
                "fed_ratio": medians["fed"]["wall_seconds"] / medians["upfront"]["wall_seconds"],
            }
        )
    return found


def targets(a: list[dict[str, JSON]], b: dict[str, JSON], f: list[dict[str, JSON]]) -> list[Target]:
    """Every target of the issue, one per scenario size."""
    found = []
    for pair in a:
        items = f"{pair['items']:,}"
        found.append(
            Target(
                f"A {items}: statewise/baseline transitions/s",
                pair["ratio"],
                RATIO_TARGET,
                at_least=True,
            )
        )
        found.append(
            Target(
                f"A {items}: statewise/durable baseline transitions/s",
                pair["durable_ratio"],
                DURABLE_TARGET,
                at_least=True,
            )
        )
        found.append(
            Target(
                f"A {items}: DB bytes per transition",
                pair["statewise"]["db_bytes_per_transition"],
                BYTES_TARGET,
                at_least=False,
            )
        )
    found.append(
        Target(
            f"B {b['spec']['items']:,}: wall time / ideal",
            b["ideal_ratio"],
            IDEAL_TARGET,
            at_least=False,
        )
    )
    for pair in f:
        found.append(
            Target(
                f"{pair['fed']['spec']['name']}: fed / started up front, wall time",
                pair["fed_ratio"],
                FED_TARGET,
                at_least=False,
            )
        )
    return found


def notes(
    a: list[dict[str, JSON]], b: list[dict[str, JSON]], f: list[dict[str, JSON]]
) -> list[str]:
    """How to read the tables."""
    revised = ", ".join(f"{p['statewise']['items_revised']:,}/{p['items']:,}" for p in a)
    lines = [
        "transition = one history row committed (the start row included); "
        "wall = first start to last commit.",
        "peak RSS = ru_maxrss of the scenario's own fresh process; delta = growth during the run.",
        "CPU = user + system CPU time of the scenario process / wall time.",
        "DB B/transition = (db + WAL) after wal_checkpoint(TRUNCATE) / history rows.",
        f"items that took the revision loop once: {revised}; every item starts as "
        f"{ITEM_BYTES:,} B of JSON and each stage adds a small result.",
    ]
    for pair in a:
        rates = {engine: pair[engine]["transitions_per_second"] for engine in ENGINES}
        lines.append(
            f"A {pair['items']:,}: statewise {rates['statewise']:,.0f} transitions/s; "
            f"durable baseline {rates['durable']:,.0f}/s (statewise = "
            f"{pair['durable_ratio']:.2f} x); plain baseline {rates['baseline']:,.0f}/s "
            f"({pair['ratio']:.2f} x)."
        )
    for run in b:
        jitter = run["spec"]["jitter"]
        spread = f" +-{jitter:.0%}" if jitter else ""
        lines.append(
            f"{run['spec']['name']}: ideal = {run['command_executions']:,} command executions "
            f"sleeping {run['command_latency_seconds']:.2f} s in total ({LATENCY * 1000:.0f} ms"
            f"{spread} each) / {IN_FLIGHT} in flight = {run['ideal_seconds']:.2f} s; measured "
            f"{run['wall_seconds']:.2f} s = {run['ideal_ratio']:.2f} x ideal "
            f"(starting the items took {run['start_seconds']:.2f} s)."
        )
    for pair in f:
        lines.append(
            f"{pair['fed']['spec']['name']}: at most {IN_FLIGHT} items admitted at a time, the "
            f"next started as one finishes: {pair['fed']['wall_seconds']:.2f} s against "
            f"{pair['upfront']['wall_seconds']:.2f} s with all started up front "
            f"(= {pair['fed_ratio']:.2f} x); CPU {pair['fed']['cpu_seconds']:.2f} s against "
            f"{pair['upfront']['cpu_seconds']:.2f} s."
        )
    return lines


def git_revision() -> str:
    """The commit measured, marked dirty when src/ has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=BENCH.parent, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--", "src") else "")


def parse_args(argv: list[str]) -> tuple[Plan, Path | None, bool]:
    """The plan to run, where to keep databases, and whether missed targets fail the run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (< 1 minute), for CI")
    parser.add_argument("--repeat", type=int, help="runs per scenario; the median is reported")
    parser.add_argument("--output", type=Path, help="where to write the JSON results")
    parser.add_argument("--workdir", type=Path, help="keep the databases here (default: temp)")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = replace(plan, repeat=args.repeat or plan.repeat, output=args.output or plan.output)
    return plan, args.workdir, args.strict


def execute(plan: Plan, workdir: Path, console: Console) -> tuple[dict[str, JSON], list[Target]]:
    """Run both scenarios and gather every figure into one document."""
    began = time.time()
    a = scenario_a(plan, workdir, console)
    b = scenario_b(plan, workdir, console)
    f = scenario_f(plan, workdir, console)
    found = targets(a, b[0], f)
    rows = [p[engine] for p in a for engine in ENGINES] + b + [p[m] for p in f for m in FED_MODES]
    print_report(console, rows, found, notes(a, b, f))
    document = {
        "mode": plan.mode,
        "repeat": plan.repeat,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(began)),
        "duration_seconds": time.time() - began,
        "revision": git_revision(),
        "machine": machine_info(),
        "definitions": DEFINITIONS,
        "scenario_a": a,
        "scenario_b": b,
        "scenario_f": f,
        "targets": [t.as_dict() for t in found],
    }
    return document, found


def main(argv: list[str]) -> int:
    """Run the benchmark; 1 when a scenario failed, 2 when ``--strict`` and a target missed."""
    plan, workdir, strict = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 150)
    with tempfile.TemporaryDirectory(prefix="statewise-bench-") as temporary:
        where = workdir or Path(temporary)
        where.mkdir(parents=True, exist_ok=True)
        try:
            document, found = execute(plan, where, console)
        except ScenarioFailed as exc:
            console.print(f"[red]benchmark failed[/]: {exc}", highlight=False)
            return 1
    plan.output.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"results written to {plan.output}")
    missed = [t.name for t in found if not t.met]
    return 2 if strict and missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
