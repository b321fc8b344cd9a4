"""How dashboard pages are rendered: one Jinja environment, its filters, and ``page``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from statewise.actions.inspection import output_reason, output_summary, values_text
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
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def _took(seconds: float) -> str:
    """A step's run time: milliseconds under a second, else as ``age_text`` says it."""
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else age_text(seconds)


def _pretty(value: Any) -> str:
    """A step's output in full, indented; the page escapes it."""
    return json.dumps(value, indent=2, ensure_ascii=False)


templates.env.globals.update(
    clock=_clock,
    age=lambda at: age_text(time.time() - at),
    took=_took,
    pretty=_pretty,
    summary=output_summary,
    reason=output_reason,
    values_text=values_text,
)
# Every key, workflow or search text put into a URL goes through this filter.
templates.env.filters["segment"] = segment


def page(request: Request, name: str, session: Session | None, **values: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"session": session, "title": name.split(".")[0], **values}
    )
