"""What an alert delivery sends, how it is signed, and one HTTP attempt at sending it.

Two presets: ``json``, statewise's own body, and ``chat``, ``{"text": ...}``, which Slack
incoming webhooks and Microsoft Teams' incoming webhook connectors both accept as a message.

A signed request carries ``X-Statewise-Timestamp`` (Unix seconds) and
``X-Statewise-Signature: sha256=<hex>``, the HMAC-SHA256 under the destination's secret of
``<timestamp>.<raw body>``. Signing the timestamp with the body lets a receiver refuse a
replayed request: it checks the signature, then that the timestamp is recent
(:func:`verify` is what a receiver in Python does).

Sending uses the standard library's HTTP client in a thread, so a worker needs nothing more
installed; only a 2xx answer counts as delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from statewise.definition.durations import format_duration
from statewise.definition.model import Destination, Preset
from statewise.store.alerting import AlertEpisode, DeliveryKind

SIGNATURE_HEADER = "X-Statewise-Signature"
TIMESTAMP_HEADER = "X-Statewise-Timestamp"
REPLAY_TOLERANCE = 300.0
"""Seconds a receiver should accept a timestamp away from its own clock (:func:`verify`)."""
_ERROR_CHARS = 300
BODY_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Request:
    """One webhook request, ready to send: where, the raw body, and its headers."""

    url: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt got: the HTTP status (None when none came) and the error, if any."""

    status: int | None
    error: str | None = None
    body: bytes = b""
    """The start of the response body (at most ``BODY_BYTES``), for whoever sent it to read."""
    timed_out: bool = False
    """No answer came within the timeout."""

    @property
    def delivered(self) -> bool:
        """Only a 2xx answer is a delivery."""
        return self.error is None and self.status is not None and 200 <= self.status < 300


class DestinationError(Exception):
    """A destination's URL or secret cannot be had here: a variable unset, a URL not http(s)."""


def request_for(
    destination: Destination,
    episode: AlertEpisode,
    kind: DeliveryKind,
    now: float,
    *,
    public_url: str = "",
    environ: Mapping[str, str] = os.environ,
) -> Request:
    """The request telling ``destination`` that ``episode`` opened or resolved.

    Raises DestinationError when a variable it names is unset or its URL is not http(s).
    """
    url, secret = address(destination, environ)
    payload = (
        chat_body(episode, kind, public_url)
        if destination.preset is Preset.CHAT
        else json_body(episode, kind, public_url)
    )
    return signed_request(url, secret, payload, now)


def address(
    destination: Destination, environ: Mapping[str, str] = os.environ
) -> tuple[str, str | None]:
    """The destination's URL and its secret (None: requests go unsigned), read here and now.

    Raises DestinationError when a variable it names is unset or its URL is not http(s).
    """
    url = destination.url or _variable(environ, destination.url_env, "URL")
    if not url.lower().startswith(("http://", "https://")):
        raise DestinationError(f"the URL in {destination.url_env} is not an http(s) address")
    secret = None
    if destination.secret_env is not None:
        secret = _variable(environ, destination.secret_env, "secret")
    return url, secret


def signed_request(
    url: str,
    secret: str | None,
    payload: Any,
    now: float,
    headers: Mapping[str, str] | None = None,
) -> Request:
    """``payload`` as a JSON POST to ``url``, signed under ``secret`` when there is one."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    sent = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "statewise"}
    sent.update(headers or {})
    if secret is not None:
        timestamp = str(int(now))
        sent[TIMESTAMP_HEADER] = timestamp
        sent[SIGNATURE_HEADER] = sign(secret.encode(), timestamp, body)
    return Request(url, body, sent)


def _variable(environ: Mapping[str, str], name: str | None, what: str) -> str:
    value = environ.get(name or "", "")
    if not value:
        raise DestinationError(
            f"the environment variable {name} (the destination's {what}) is unset"
        )
    return value


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` under ``secret``."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float,
    tolerance: float = REPLAY_TOLERANCE,
) -> bool:
    """Whether a received request is authentic and fresh (what a receiver checks)."""
    try:
        fresh = abs(now - int(timestamp)) <= tolerance
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def links(episode: AlertEpisode, public_url: str) -> dict[str, str]:
    """Where a person looks next: the alerts page, and the state's items when it has one."""
    base = public_url.rstrip("/")
    found = {"alerts": f"{base}/dashboard/alerts"}
    if episode.state:
        query = urlencode({"workflow": episode.workflow, "state": episode.state}, quote_via=quote)
        found["items"] = f"{base}/dashboard/items?{query}"
    return found


def status_of(kind: DeliveryKind) -> str:
    """``firing`` for an opening message, ``resolved`` for the closing one."""
    return "firing" if kind is DeliveryKind.OPENED else "resolved"


def json_body(episode: AlertEpisode, kind: DeliveryKind, public_url: str) -> dict[str, Any]:
    """The ``json`` preset: every figure of the episode, for a program to act on."""
    return {
        "alert": episode.rule,
        "status": status_of(kind),
        "workflow": episode.workflow,
        "state": episode.state or None,
        "observed": episode.observed,
        "threshold": episode.threshold,
        "episode": episode.id,
        "opened_at": episode.opened_at,
        "resolved_at": episode.resolved_at,
        "detail": dict(episode.detail),
        "links": links(episode, public_url),
    }


def chat_body(episode: AlertEpisode, kind: DeliveryKind, public_url: str) -> dict[str, str]:
    """The ``chat`` preset: one line a person reads in Slack or Teams, with the alerts link."""
    verdict = "FIRING" if kind is DeliveryKind.OPENED else "resolved"
    keys = episode.detail.get("keys")
    named = f"; items: {', '.join(str(k) for k in keys)}" if keys else ""
    text = (
        f"[{verdict}] {episode.rule} on {_where(episode)}: {headline(episode)}{named} "
        f"(episode {episode.id}) {links(episode, public_url)['alerts']}"
    )
    return {"text": _chat_escaped(text)}


def _where(episode: AlertEpisode) -> str:
    return f"{episode.workflow}/{episode.state}" if episode.state else episode.workflow


def headline(episode: AlertEpisode) -> str:
    """What the figures mean, in the words of the rule's kind."""
    seen, limit = episode.observed, episode.threshold
    window = episode.detail.get("window")
    within = f" in the last {format_duration(float(window))}" if window else ""
    if episode.rule == "entered":
        return f"{seen:g} item(s) entered{within}"
    if episode.rule == "stuck":
        return f"{seen:g} item(s) active with no pending work"
    if episode.rule == "failure_rate":
        return f"{seen:.0%} of attempts failed{within} (threshold {limit:.0%})"
    if episode.rule == "max_age":
        waited, most = format_duration(round(seen)), format_duration(round(limit))
        return f"the oldest item waited {waited} (threshold {most})"
    return f"{seen:g} item(s) there (threshold {limit:g})"


def _chat_escaped(text: str) -> str:
    """Slack reads ``<``, ``>`` and ``&`` as markup; a key holding them must show as typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def post(request: Request, timeout: float) -> Answer:
    """POST the request once; the answer's status, or why none came. Never raises."""
    return await asyncio.to_thread(_post, request, timeout)


def _post(request: Request, timeout: float) -> Answer:
    http = urllib.request.Request(
        request.url, data=request.body, headers=dict(request.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as response:
            return Answer(response.status, body=response.read(BODY_BYTES))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, f"HTTP {exc.code} {exc.reason}"[:_ERROR_CHARS], _body(exc))
    except urllib.error.URLError as exc:
        late = isinstance(exc.reason, TimeoutError)
        return Answer(None, str(exc.reason)[:_ERROR_CHARS], timed_out=late)
    except TimeoutError as exc:
        return Answer(None, (str(exc) or "timed out")[:_ERROR_CHARS], timed_out=True)
    except (OSError, ValueError) as exc:
        return Answer(None, (str(exc) or type(exc).__name__)[:_ERROR_CHARS])


def _body(error: urllib.error.HTTPError) -> bytes:
    """What a refusal said, when it said anything readable."""
    try:
        return error.read(BODY_BYTES) if error.fp is not None else b""
    except (OSError, ValueError):
        return b""
