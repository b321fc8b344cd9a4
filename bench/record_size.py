"""What the complete record costs on disk: ``python bench/record_size.py``.

Issue 14 made every audit row keep what its step consumed (results, event data, decisions,
start data; large ones once per item in ``payloads``), the guards an ``else`` passed over, and
more about each agent call. This measures the bytes per transition that adds, before and after,
in one run:

* **before** is the code of commit ``BEFORE`` (``git archive BEFORE src``, unpacked into a
  temporary directory), **after** the ``src`` of this checkout. Each runs in a fresh
  interpreter with ``PYTHONPATH`` on its own ``src``; the schema each database ends up with is
  checked, so a run can never measure the other's code by mistake.
* Two workloads, the same for both: the bench workflow (``scenarios.py``, instant commands,
  ``--items`` items of about 1 KB) and ``statewise demo --no-serve`` (the five example
  processes on the offline model, 95 items).
* **bytes per transition** = the bytes of every row of every table and index (SQLite's
  ``dbstat`` payload, summed over all pages; without ``dbstat``, page_count x page_size after
  VACUUM) divided by the number of history rows. The file size after VACUUM is reported too.

The target is after <= 2 x before on both workloads; ``--strict`` exits 2 when it is missed.
Figures go to ``bench/results-record.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BEFORE = "f2bffb8"
TARGET = 2.0
OUTPUT = BENCH / "results-record.json"
# Tables whose rows are the audit trail; the rest (items, context, ...) are shown for scale.
RECORD_TABLES = ("history", "payloads")


@dataclass(frozen=True, slots=True)
class Size:
    """One database's footprint, measured after its run."""

    transitions: int
    row_bytes: int
    file_bytes: int
    by_table: dict[str, int]
    seconds: float

    @property
    def per_transition(self) -> float:
        """Row bytes per history row: the figure the target is about."""
        return self.row_bytes / self.transitions


def unpack_before(into: Path) -> Path:
    """``src`` at commit BEFORE, unpacked under ``into``; returns that ``src``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BEFORE, "src"], capture_output=True, check=True
    ).stdout
    archive_file = into / "before.tar"
    archive_file.write_bytes(archive)
    with tarfile.open(archive_file) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_child(command: list[str], src: Path, what: str) -> float:
    """Run ``command`` with ``PYTHONPATH`` on ``src``; its wall seconds, or fail loudly."""
    began = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{what} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def bench_workload(src: Path, db: Path, items: int) -> float:
    """The bench workflow's scenario A run, ``items`` items, on ``db``."""
    spec = {"name": "record", "engine": "statewise", "items": items, "db_path": str(db)}
    spec_file, result_file = db.with_suffix(".spec.json"), db.with_suffix(".result.json")
    spec_file.write_text(json.dumps(spec))
    command = [sys.executable, str(BENCH / "scenarios.py"), str(spec_file), str(result_file)]
    return run_child(command, src, f"the bench workload on {src}")


def demo_workload(src: Path, db: Path) -> float:
    """``statewise demo --no-serve`` on ``db``."""
    command = [
        sys.executable, "-m", "statewise", "demo", "--no-serve", "--db", str(db),
        "--examples", str(REPO / "examples"),
    ]  # fmt: skip
    return run_child(command, src, f"the demo on {src}")


def measure(db: Path, seconds: float, keeps_outputs: bool) -> Size:
    """Row bytes by table (``dbstat``), file bytes after VACUUM, history rows."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(history)")}
        if ("output" in columns) != keeps_outputs:
            raise SystemExit(f"{db}: the run did not use the code it was meant to measure")
        (transitions,) = conn.execute("SELECT COUNT(*) FROM history").fetchone()
        by_table = _row_bytes(conn)
        conn.execute("VACUUM")
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    file_bytes = int(pages) * int(page_size)
    row_bytes = sum(by_table.values()) if by_table else file_bytes
    return Size(int(transitions), row_bytes, file_bytes, by_table, round(seconds, 2))


def _row_bytes(conn: sqlite3.Connection) -> dict[str, int]:
    """Payload bytes per table and index; empty when SQLite was built without ``dbstat``."""
    try:
        rows = conn.execute("SELECT name, SUM(payload) FROM dbstat GROUP BY name").fetchall()
    except sqlite3.Error:
        return {}
    return {str(name): int(size) for name, size in rows if size}


def compare(before: Size, after: Size) -> dict[str, Any]:
    """The two sizes side by side, with the ratio the target is about."""
    ratio = after.per_transition / before.per_transition
    return {
        "before": {**asdict(before), "bytes_per_transition": round(before.per_transition, 1)},
        "after": {**asdict(after), "bytes_per_transition": round(after.per_transition, 1)},
        "ratio": round(ratio, 3),
        "record_bytes_per_transition": {
            "before": _record_share(before),
            "after": _record_share(after),
        },
        "met": ratio <= TARGET,
    }


def _record_share(size: Size) -> float:
    """Bytes of the audit trail alone (history, its index, payloads) per transition."""
    kept = sum(v for k, v in size.by_table.items() if k.startswith(RECORD_TABLES))
    return round(kept / size.transitions, 1)


def report(results: dict[str, Any]) -> None:
    print(f"{'workload':<10} {'':>6} {'transitions':>11} {'B/transition':>12} "
          f"{'record B/tr':>11} {'file KiB':>9} {'seconds':>8}")  # fmt: skip
    for name, found in results["workloads"].items():
        for side in ("before", "after"):
            size = found[side]
            print(
                f"{name:<10} {side:>6} {size['transitions']:>11} "
                f"{size['bytes_per_transition']:>12.1f} "
                f"{found['record_bytes_per_transition'][side]:>11.1f} "
                f"{size['file_bytes'] / 1024:>9.0f} {size['seconds']:>8.1f}"
            )
        verdict = "met" if found["met"] else "MISSED"
        print(f"{name:<10} after/before = {found['ratio']:.2f} (target <= {TARGET}: {verdict})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=300, help="bench workload items")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo workload")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    args = parser.parse_args()
    workloads: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="record-size-") as tmp:
        work = Path(tmp)
        sources = {"before": unpack_before(work), "after": REPO / "src"}
        runs = {"bench": lambda src, db: bench_workload(src, db, args.items)}
        if not args.no_demo:
            runs["demo"] = demo_workload
        for name, run in runs.items():
            sizes = {}
            for side, src in sources.items():
                db = work / f"{name}-{side}.sqlite"
                print(f"running the {name} workload on the code {side} ...", flush=True)
                sizes[side] = measure(db, run(src, db), keeps_outputs=side == "after")
            workloads[name] = compare(sizes["before"], sizes["after"])
    results = {
        "before": BEFORE,
        "bench_items": args.items,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sqlite": sqlite3.sqlite_version,
        "workloads": workloads,
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    missed = [name for name, found in workloads.items() if not found["met"]]
    return 2 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
