"""Targets and the printed report: one table of figures, one of targets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

JSON = Any
MIB = 1024 * 1024

DEFINITIONS = {
    "transition": "one audit (history) row committed to the database; the item's start counts",
    "transitions_per_second": "history rows / wall time from the first start to the last commit",
    "peak_rss": "ru_maxrss of the scenario's own fresh process; delta = growth during the run",
    "db_bytes_per_transition": "(db file + WAL file) after PRAGMA wal_checkpoint(TRUNCATE), "
    "divided by history rows; includes items, context, history and indexes",
    "cpu_utilisation": "user + system CPU seconds of the scenario process / wall seconds",
    "ideal_seconds": "sum of every command's simulated latency / commands in flight "
    "(= command executions x 20 ms / 64 without jitter)",
    "baseline": "asyncio + sqlite3, WAL + synchronous=NORMAL, per transition one UPDATE items "
    "+ one INSERT history in its own transaction, same items and transition total as statewise",
    "durable_baseline": "a hand-written durable engine: the bench workflow's flow and commands "
    "run by hand, per transition one UPDATE of the item row carrying its whole context as JSON "
    "+ one INSERT of a history row with the step's output, in its own transaction; same items "
    "(about 1 KB each) and transition total as statewise",
}


@dataclass(frozen=True, slots=True)
class Target:
    """A figure the issue asks for, and whether this run met it."""

    name: str
    value: float
    limit: float
    at_least: bool

    @property
    def met(self) -> bool:
        """Whether the value is on the right side of the limit."""
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def as_dict(self) -> dict[str, JSON]:
        """JSON-ready, with the verdict."""
        return {**asdict(self), "met": self.met}


def figures_table(rows: Iterable[dict[str, JSON]]) -> Table:
    """One line per scenario run (the median of its repeats)."""
    table = Table(title="statewise benchmark", title_justify="left")
    for column in ("scenario", "engine", "items"):
        table.add_column(column, no_wrap=True)
    for column in (
        "transitions",
        "per item",
        "wall s",
        "transitions/s",
        "CPU %",
        "peak RSS MiB",
        "RSS delta MiB",
        "DB B/transition",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["spec"]["name"],
            row["spec"]["engine"],
            f"{row['spec']['items']:,}",
            f"{row['transitions']:,}",
            f"{row['transitions'] / row['spec']['items']:.2f}",
            f"{row['wall_seconds']:.2f}",
            f"{row['transitions_per_second']:,.0f}",
            f"{row['cpu_utilisation']:.0%}",
            f"{row['peak_rss_bytes'] / MIB:.1f}",
            f"{row['peak_rss_delta_bytes'] / MIB:.1f}",
            f"{row['db_bytes_per_transition']:.0f}",
        )
    return table


def targets_table(targets: Iterable[Target]) -> Table:
    """Each target with its value and verdict."""
    table = Table(title="targets", title_justify="left")
    table.add_column("target")
    table.add_column("value", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("verdict")
    for target in targets:
        verdict = "[green]met[/]" if target.met else "[red]MISSED[/]"
        sign = ">=" if target.at_least else "<="
        table.add_row(target.name, f"{target.value:.3g}", f"{sign} {target.limit:g}", verdict)
    return table


def print_report(
    console: Console, rows: list[dict[str, JSON]], targets: list[Target], notes: list[str]
) -> None:
    """Both tables and the notes that say how to read them."""
    console.print(figures_table(rows))
    console.print(targets_table(targets))
    for note in notes:
        console.print(f"  {note}", highlight=False)
