"""Processes and meters of the PostgreSQL worker benchmark, shared by both engines.

A run owns one fresh schema (made by ``open_store``, so statewise and the raw baseline write
the very same tables and indexes) and tags every connection of its engine with an
``application_name``, so the CPU its PostgreSQL backends spend can be read from ``/proc``
apart from anything else the server is doing. ``CpuMeter`` snapshots the worker processes,
those backends and the whole machine before and after the measured window.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pgcommands.stages import STAGES

BENCH = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 60.0
LISTEN_GRACE = 0.5


@dataclass(frozen=True, slots=True)
class Database:
    """Where a run writes: the server, its schema, and the tag of the engine's connections."""

    dsn: str
    schema: str

    @property
    def tag(self) -> str:
        """``application_name`` of every connection the measured engine opens."""
        return f"bench_{self.schema}"[:63]

    @property
    def store_url(self) -> str:
        """statewise's URL: the schema, a pool of 10, the tag passed on to libpq."""
        joiner = "&" if "?" in self.dsn else "?"
        return f"{self.dsn}{joiner}schema={self.schema}&pool_max=10&application_name={self.tag}"

    def connect(self, *, tagged: bool = False) -> psycopg.Connection[Any]:
        """A plain autocommit connection in the run's schema (tagged: counted as the engine's)."""
        return psycopg.connect(
            self.dsn,
            autocommit=True,
            options=f"-c search_path={self.schema}",
            application_name=self.tag if tagged else "bench_meter",
        )

    def drop(self) -> None:
        """Drop the run's schema and everything in it."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


def _process_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(fields[11]) + int(fields[12])


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot; iowait counts as idle."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def backend_pids(db: Database) -> list[int]:
    """The server processes serving the engine's connections right now."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (db.tag,)
        ).fetchall()
    return [int(pid) for (pid,) in rows]


@dataclass
class CpuMeter:
    """CPU seconds of the workers, of their server backends and of the machine, over a window."""

    db: Database
    workers: Sequence[int]
    began: dict[int, int] = field(default_factory=dict)
    machine: tuple[int, int] = (0, 0)
    wall: float = 0.0

    def start(self) -> None:
        """Snapshot every process seen now; backends that appear later start from zero."""
        self.began = {pid: _process_ticks(pid) for pid in [*self.workers, *backend_pids(self.db)]}
        self.machine = _machine_ticks()
        self.wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        """CPU seconds since ``start``: workers, backends; machine busy as a fraction."""
        backends = backend_pids(self.db)
        busy, total = _machine_ticks()
        spent = {
            pid: (_process_ticks(pid) - self.began.get(pid, 0)) / TICKS
            for pid in [*self.workers, *backends]
        }
        cores = os.cpu_count() or 1
        return {
            "worker_cpu_seconds": sum(spent[pid] for pid in self.workers),
            "backend_cpu_seconds": sum(spent[pid] for pid in backends if pid not in self.workers),
            "machine_busy": (busy - self.machine[0]) / max(total - self.machine[1], 1),
            "machine_cores": cores,
        }


class Fleet:
    """Worker processes of one engine; each says when it is ready to take work."""

    def __init__(self, logs: Path, name: str) -> None:
        self.logs = logs
        self.name = name
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, command: list[str], env: dict[str, str]) -> None:
        """Start one worker, its output in a log file of its own."""
        log = self.logs / f"{self.name}-{len(self.processes) + 1}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(process)

    @property
    def pids(self) -> list[int]:
        """The workers' process ids."""
        return [p.pid for p in self.processes]

    def wait_ready(self, marker: str) -> None:
        """Until every worker's log holds ``marker``, then a moment for it to start listening."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(marker in self._log(n) for n in range(len(self.processes))):
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} workers not ready:\n{self.tail()}")
            time.sleep(0.05)
        time.sleep(LISTEN_GRACE)

    def pause(self) -> None:
        """SIGSTOP every (idle, ready) worker, so that all of them start together later."""
        for process in self.processes:
            process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT every worker: the measured run begins."""
        for process in self.processes:
            process.send_signal(signal.SIGCONT)

    def check_alive(self) -> None:
        """Fail if a worker has exited."""
        dead = [p for p in self.processes if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a {self.name} worker exited early:\n{self.tail()}")

    def stop(self) -> list[int]:
        """SIGTERM every worker and wait for it; their exit codes."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        return [process.wait(60) for process in self.processes]

    def kill(self) -> None:
        """After a failure: make sure nothing is left running."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()

    def tail(self) -> str:
        """The end of every worker's log, for error messages."""
        return "\n".join(self._log(n)[-1500:] for n in range(len(self.processes)))

    def _log(self, n: int) -> str:
        return (self.logs / f"{self.name}-{n + 1}.log").read_text(errors="replace")


def worker_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of worker processes: ``pgcommands`` importable, plus ``extra``."""
    path = [str(BENCH), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), **extra}


def statewise_command(db: Database, concurrency: int) -> list[str]:
    """The real ``statewise worker`` command line, commands imported by module name."""
    return [
        sys.executable, "-m", "statewise", "worker", "--db", db.store_url,
        "--commands", "pgcommands.commands", "--concurrency", str(concurrency),
        "--lease", "30", "--drain", "5",
    ]  # fmt: skip


def raw_command(db: Database, concurrency: int, latency: float) -> list[str]:
    """The raw baseline's worker process."""
    return [
        sys.executable, str(BENCH / "rawpg.py"), db.dsn, db.schema, str(concurrency),
        str(latency), db.tag,
    ]  # fmt: skip


def wait_all_done(db: Database, items: int, deadline: float, check: Callable[[], None]) -> float:
    """Poll until all ``items`` are done; the time of the last history row (the last commit)."""
    with db.connect() as conn:
        while True:
            (done,) = conn.execute("SELECT count(*) FROM items WHERE status = 'done'").fetchone()
            if done == items:
                break
            check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done:,} of {items:,} items done in time")
            time.sleep(0.05)
        first, last = conn.execute("SELECT min(at), max(at) FROM history WHERE seq > 1").fetchone()
    return float(first), float(last)


def analyze(db: Database) -> None:
    """Give the planner statistics of the started items, as a database in service has."""
    with db.connect() as conn:
        conn.execute("ANALYZE items, outbox, context, history, timers")


def verify(db: Database, items: int) -> dict[str, int]:
    """Every item done with one history row per stage plus its start, and no work left."""
    with db.connect() as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("items", "history", "context", "outbox", "timers")
        }
        (short,) = conn.execute(
            "SELECT count(*) FROM items WHERE status <> 'done' OR seq <> %s",
            (len(STAGES) + 1,),
        ).fetchone()
    expected = {
        "items": items,
        "history": items * (len(STAGES) + 1),
        "context": items * (len(STAGES) + 1),
        "outbox": 0,
        "timers": 0,
    }
    if counts != expected or short:
        raise RuntimeError(f"the run did not do the workflow's work: {counts} vs {expected}")
    return counts


def drop_all(databases: Iterable[Database]) -> None:
    """Drop every schema a benchmark made, even after a failure."""
    for db in databases:
        db.drop()
