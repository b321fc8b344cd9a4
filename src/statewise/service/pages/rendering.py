"""How dashboard pages are rendered: one Jinja environment, its filters, and ``page``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from statewise.actions.inspection import (
    output_reason,
    output_summary,
    tool_calls_text,
    values_text,
)
from statewise.definition.model import Role
from statewise.service.paths import segment
from statewise.store.base import Session

HERE = Path(__file__).parent.parent
templates = Jinja2Templates(directory=HERE / "templates")


def age_text(seconds: float) -> str:
    """A duration as a person reads it: ``4.2s``, ``3.1m``, ``2.0h``, ``1.5d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{max(seconds, 0):.1f}s"


def _clock(at: float) -> str:
    """A moment as the dashboard shows it, always with its zone: ``2026-12-07 17:00:00 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _due(at: float) -> str:
    """A due time relative to now, as a person reads it: ``due in 3.0h``, ``overdue 2.0h``."""
    left = at - time.time()
    return f"due in {age_text(left)}" if left >= 0 else f"overdue {age_text(-left)}"


def _may(session: Session | None, role: str) -> bool:
    """Whether the signed-in session's role may use what ``role`` may (nav links, forms)."""
    return session is not None and session.token.role.allows(Role(role))


def _took(seconds: float) -> str:
    """A step's run time: milliseconds under a second, else as ``age_text`` says it."""
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else age_text(seconds)


def pretty(value: Any) -> str:
    r"""A step's output (or an item's context) in full, indented; the page escapes it.

    Non-ASCII stays text (``São Paulo``, not an escape such as ``\u00e3``); values JSON
    cannot hold (a stored timestamp) show as their text.
    """
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _json_line(value: Any) -> str:
    """Form data on one line, non-ASCII as text: Jinja's ``tojson`` escapes it for scripts."""
    return json.dumps(value, ensure_ascii=False, default=str)


templates.env.globals.update(
    clock=_clock,
    age=lambda at: age_text(time.time() - at),
    took=_took,
    pretty=pretty,
    json_line=_json_line,
    due=_due,
    may=_may,
    summary=output_summary,
    reason=output_reason,
    values_text=values_text,
    tool_calls=tool_calls_text,
)
# Every key, workflow or search text put into a URL goes through this filter.
templates.env.filters["segment"] = segment


def page(request: Request, name: str, session: Session | None, **values: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"session": session, "title": name.split(".")[0], **values}
    )
