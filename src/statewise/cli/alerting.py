"""The alert options ``statewise serve`` and ``statewise worker`` share: on or off, how often."""

from __future__ import annotations

from typing import Annotated

import typer

from statewise.cli.common import fail
from statewise.definition.durations import format_duration, parse_duration
from statewise.observe.alerting import ALERT_EVERY, AlertSettings

MAX_EVERY = 86400.0

AlertsOption = Annotated[
    bool,
    typer.Option(
        "--alerts/--no-alerts",
        help="Judge the workflows' alert rules every --alerts-every and deliver their "
        "episodes to the declared destinations (default), or leave that to other processes.",
    ),
]
AlertsEveryOption = Annotated[
    str, typer.Option(help="How often to judge the alert rules and send due deliveries (30s).")
]
DEFAULT_ALERTS_EVERY = format_duration(ALERT_EVERY)


def alert_settings(alerts: bool, every: str) -> AlertSettings | None:
    """The alert rounds' settings; None with --no-alerts."""
    if not alerts:
        return None
    try:
        seconds = parse_duration(every)
    except (ValueError, OverflowError) as exc:
        fail(f"--alerts-every: {exc}", 2)
    if not 0 < seconds <= MAX_EVERY:
        fail(f"--alerts-every must be a duration above 0 and at most 1d, not {every!r}", 2)
    return AlertSettings(every=seconds)
