"""A local webhook receiver: a real HTTP server that records what it is sent.

Tests point a workflow's destinations at it to see the signed requests a state's webhook
sends, retries included (it can refuse the first N with a status of choice); ``statewise demo``
points every destination whose URL variable is unset at one, so the demo runs offline and
shows what each system received. Each URL variable gets its own path (``/cms_webhook_url``),
so one server tells the systems apart. It uses only the standard library, and its own thread.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from statewise.observe.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the receiver saw it, and the status it answered with."""

    system: str
    headers: Mapping[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def idempotency_key(self) -> str | None:
        """The ``Idempotency-Key`` header, which a real receiver de-duplicates on."""
        return self.headers.get("Idempotency-Key")

    def signed_by(self, secret: str) -> bool:
        """Whether the signature is the HMAC of timestamp and body under ``secret``."""
        timestamp = self.headers.get(TIMESTAMP_HEADER, "")
        signature = self.headers.get(SIGNATURE_HEADER, "")
        return bool(signature) and sign(secret.encode(), timestamp, self.body) == signature


@dataclass
class Receiver:
    """The running receiver: its base URL, what it was sent, and failures still to give."""

    url: str
    systems: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    failures: int = 0
    failure_status: int = 503
    failure_delay: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def deliveries(self) -> list[Received]:
        """The requests it accepted (answered 2xx)."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def received_by(self, system: str) -> list[Received]:
        """The accepted requests of one system (the URL variable's name, lower-cased)."""
        return [r for r in self.deliveries if r.system == system]

    def fail(self, count: int, status: int = 503, delay: float = 0.0) -> None:
        """Answer the next ``count`` requests with ``status``, ``delay`` seconds late.

        A delay longer than the sender's timeout makes it time out instead.
        """
        with self._lock:
            self.failures, self.failure_status, self.failure_delay = count, status, delay

    def _answer(self, system: str, headers: Mapping[str, str], body: bytes) -> tuple[int, float]:
        with self._lock:
            status, delay = 200, 0.0
            if self.failures > 0:
                self.failures -= 1
                status, delay = self.failure_status, self.failure_delay
            self.requests.append(Received(system, headers, body, status))
            return status, delay


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender that hung up before the answer (it timed out) is what a test asked for."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            system = self.path.strip("/").split("?", 1)[0]
            status, delay = receiver._answer(system, dict(self.headers.items()), body)
            time.sleep(delay)
            answer = json.dumps({"received": 200 <= status < 300, "system": system}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the receiver's record is what a test or the demo reads."""

    return Handler


@contextmanager
def webhook_receiver(
    urls: Iterable[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    fail_first: int = 0,
    status: int = 503,
) -> Iterator[Receiver]:
    """Serve a receiver on a free local port while the block runs.

    Each name in ``urls`` is set as an environment variable to the receiver's URL for that
    system (``http://127.0.0.1:PORT/<name lower-cased>``); ``env`` sets other variables
    (``{"CMS_WEBHOOK_SECRET": "s3cret"}``). Every variable is restored on exit. The first
    ``fail_first`` requests are answered with ``status``.
    """
    server = _Server(("127.0.0.1", 0), BaseHTTPRequestHandler)
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}")
    receiver.fail(fail_first, status)
    server.RequestHandlerClass = _handler(receiver)
    settings = {name: f"{receiver.url}/{name.lower()}" for name in urls}
    receiver.systems = {name.lower(): name for name in settings}
    settings.update(env or {})
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
