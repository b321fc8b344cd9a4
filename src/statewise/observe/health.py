"""Liveness and readiness as orchestrators probe them: ``/healthz`` and ``/readyz``.

``/healthz`` says the process answers: no store call, no token, nothing to wait for, so a
probe every second costs nothing. ``/readyz`` says the process can do its job:

- ``store``: the store answers a small read within ``store_timeout`` seconds;
- ``workers``: the process's runner is running, when the process is meant to run one (its
  supervisor's state: a crashed runner waiting for its restart, or one refused the SQLite
  lock, is not ready);
- ``quarantine``: at most ``max_failed`` items failed in the last ``failed_window`` seconds;
  more is a flood (a bad deployment failing everything) that should stop traffic.

Any failed check answers 503, and the body names each check with what it found. The service
mounts both on its app; ``statewise worker --health-port`` serves them with ``serve_probes``,
a minimal HTTP/1.1 responder, so a worker needs no web framework.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from statewise.errors import StatewiseError
from statewise.store.base import Store
from statewise.worker.supervisor import RunnerState, Supervisor

LIVE: dict[str, Any] = {"status": "alive"}
_REQUEST_TIMEOUT = 5.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class ReadinessPolicy:
    """The thresholds of ``/readyz``; see the module docstring."""

    failed_window: float = 600.0
    max_failed: int = 50
    store_timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check: its name, whether it passed, and what it found."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """Every check of one probe; ready when all passed."""

    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        """Whether every check passed."""
        return all(check.ok for check in self.checks)

    @property
    def status_code(self) -> int:
        """200 when ready, 503 (Service Unavailable) when not, as orchestrators expect."""
        return 200 if self.ready else 503

    def body(self) -> dict[str, Any]:
        """``{status, failed: [names], checks: {name: {ok, detail}}}``."""
        return {
            "status": "ready" if self.ready else "not ready",
            "failed": [check.name for check in self.checks if not check.ok],
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


async def readiness(
    store: Store, supervisor: Supervisor | None, policy: ReadinessPolicy, now: float
) -> Readiness:
    """Probe the store and read the supervisor; never raises, whatever the store does."""
    reached, flood = await _store_checks(store, policy, now)
    return Readiness((reached, workers_check(supervisor), flood))


def workers_check(supervisor: Supervisor | None) -> Check:
    """Ready when the runner runs, or when this process runs no runner at all."""
    if supervisor is None:
        return Check("workers", True, "this process runs no workers")
    if supervisor.state is RunnerState.RUNNING:
        return Check("workers", True, "running")
    cause = f": {supervisor.cause}" if supervisor.cause else ""
    return Check("workers", False, f"{supervisor.state.value}{cause}")


async def _store_checks(store: Store, policy: ReadinessPolicy, now: float) -> tuple[Check, Check]:
    since = now - policy.failed_window
    try:
        failed = await asyncio.wait_for(store.failed_since(since), policy.store_timeout)
    except TimeoutError:
        unreachable = f"no answer within {policy.store_timeout:g}s"
    except StatewiseError as exc:
        unreachable = str(exc)
    else:
        flood = Check(
            "quarantine",
            failed <= policy.max_failed,
            f"{failed} item(s) failed in the last {policy.failed_window:g}s "
            f"(at most {policy.max_failed})",
        )
        return Check("store", True, "reachable"), flood
    return Check("store", False, unreachable), Check("quarantine", False, "unknown: no store")


Probe = Callable[[], Awaitable[Readiness]]


async def serve_probes(host: str, port: int, probe: Probe) -> asyncio.Server:
    """Answer ``GET /healthz`` and ``GET /readyz`` on ``host:port`` (one request a connection)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), _REQUEST_TIMEOUT)
            while (await asyncio.wait_for(reader.readline(), _REQUEST_TIMEOUT)).strip():
                pass  # headers: nothing in them changes the answer
            status, body = await _route(line.decode("latin-1").split(), probe)
            writer.write(_response(status, body))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass  # a probe that hung up or never finished its request gets no answer
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port)


async def _route(request: list[str], probe: Probe) -> tuple[int, dict[str, Any]]:
    if len(request) < 2:
        return 400, {"error": "bad_request", "message": "expected GET /healthz or GET /readyz"}
    method, path = request[0], request[1].split("?", 1)[0]
    if path not in ("/healthz", "/readyz"):
        return 404, {"error": "not_found", "message": f"{path} is not /healthz or /readyz"}
    if method != "GET":
        return 405, {"error": "method_not_allowed", "message": f"{path} answers GET only"}
    if path == "/healthz":
        return 200, LIVE
    found = await probe()
    return found.status_code, found.body()


def _response(status: int, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + payload
