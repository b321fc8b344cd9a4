"""Local HTTP servers that speak the OpenAI chat-completions and Anthropic messages protocols.

The real pydantic-ai client code (and the real OpenAI and Anthropic SDKs under it) talks to
these over a socket, so the tests exercise the same request building, response parsing and
error mapping a production call does. Each server is scripted per test with a queue of replies
and records every request it got, so a test can assert what was sent.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One canned HTTP response; ``body`` is JSON-encoded unless it is already text."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request the server got."""

    path: str
    headers: dict[str, str]
    body: Any


Handler = Callable[[Received], Reply]


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that takes bursts of connections and clients that give up."""

    daemon_threads = True
    # Dozens of clients may connect at once; the default backlog of 5 would refuse some.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up before its reply was written (it timed out) is no error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeProvider:
    """A scriptable model endpoint on 127.0.0.1 with an ephemeral port."""

    def __init__(self) -> None:
        self.replies: deque[Reply | Handler] = deque()
        self.fallback: Handler | None = None
        self.requests: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        # Requests whose client hung up while the reply was held back (Reply.delay).
        self.disconnected: list[Received] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def root(self) -> str:
        """The server's address; Anthropic's SDK appends ``/v1/messages`` to it."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """The OpenAI-style base URL; the SDK appends ``/chat/completions``."""
        return f"{self.root}/v1"

    def reply(self, *replies: Reply | Handler) -> None:
        """Queue replies, served in order, one per request."""
        self.replies.extend(replies)

    def always(self, handler: Handler) -> None:
        """Answer every request the queued replies do not cover with ``handler``."""
        self.fallback = handler

    def bodies(self) -> list[Any]:
        """The JSON bodies of every request so far."""
        return [request.body for request in self.requests]

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def stop_unstarted(self) -> None:
        """Close the socket of a server that was never started (its port then refuses)."""
        self._server.server_close()

    def respond(self, received: Received, connection: socket.socket | None = None) -> Reply:
        """The next scripted reply, else the fallback (else a 500 that says the script ran out).

        A delayed reply is held while watching ``connection``: a client that closes it in the
        meantime (a request cancelled at its timeout) is recorded in ``disconnected``, as a
        real server notices a dropped request and stops generating.
        """
        with self._lock:
            self.requests.append(received)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            scripted = self.replies.popleft() if self.replies else self.fallback
        try:
            if scripted is None:
                return Reply({"error": {"message": "no scripted reply left"}}, status=500)
            reply = _echo_model(received, scripted(received) if callable(scripted) else scripted)
            if reply.delay and not _held(connection, reply.delay):
                with self._lock:
                    self.disconnected.append(received)
            return reply
        finally:
            with self._lock:
                self.in_flight -= 1


def _held(connection: socket.socket | None, seconds: float) -> bool:
    """Wait ``seconds``; False as soon as the client closes ``connection`` instead."""
    if connection is None:
        time.sleep(seconds)
        return True
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([connection], [], [], left)  # wakes on a hang-up
        if readable:
            if not connection.recv(1, socket.MSG_PEEK):
                return False
            time.sleep(min(left, 0.01))  # bytes of a next request: not a hang-up
    return True


def _echo_model(received: Received, reply: Reply) -> Reply:
    """Name the requested model in the reply, as real servers do (prices depend on it)."""
    asked = received.body.get("model") if isinstance(received.body, dict) else None
    if asked and isinstance(reply.body, dict) and "model" in reply.body:
        return replace(reply, body={**reply.body, "model": asked})
    return reply


def _handler_for(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            reply = provider.respond(received, self.connection)
            if any(gone is received for gone in provider.disconnected):
                return  # nobody is left to read the reply
            streamed = _streams(received, reply)
            payload = _sse(reply.body) if streamed else _text(reply.body)
            data = payload.encode("utf-8")
            self.send_response(reply.status)
            default_type = "text/event-stream" if streamed else "application/json"
            self.send_header("content-type", reply.headers.get("content-type", default_type))
            self.send_header("content-length", str(len(data)))
            for name, value in reply.headers.items():
                if name != "content-type":
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    return _Handler


def message_text(message: dict[str, Any]) -> str:
    """The text of a Chat Completions message, which the protocol lets a client send either
    as a string or as a list of text parts; which one pydantic-ai sends is its own choice."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part.get("type") == "text")


def _text(body: Any) -> str:
    return body if isinstance(body, str) else json.dumps(body)


def _streams(received: Received, reply: Reply) -> bool:
    """Whether to answer as an Anthropic event stream: asked for, and the reply is a message."""
    asked = isinstance(received.body, dict) and received.body.get("stream") is True
    return (
        asked and reply.status == 200 and isinstance(reply.body, dict) and "content" in reply.body
    )


def _sse(message: dict[str, Any]) -> str:
    """A messages-API reply as the server-sent events Anthropic streams it with."""
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**message["usage"], "output_tokens": 0},
    }
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            opened = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            opened = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        events += [
            ("content_block_start", {"index": index, "content_block": opened}),
            ("content_block_delta", {"index": index, "delta": delta}),
            ("content_block_stop", {"index": index}),
        ]
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events += [
        (
            "message_delta",
            {"delta": stop, "usage": {"output_tokens": message["usage"]["output_tokens"]}},
        ),
        ("message_stop", {}),
    ]
    return "".join(
        f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n" for name, data in events
    )


@contextmanager
def serving() -> Iterator[FakeProvider]:
    """A started FakeProvider, stopped afterwards."""
    provider = FakeProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


# OpenAI chat-completions replies ---------------------------------------------------------------

_OPENAI_USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}


def openai_completion(
    message: dict[str, Any],
    *,
    finish_reason: str = "stop",
    usage: dict[str, int] | None = None,
    model: str = "gpt-4o-mini",
) -> Reply:
    """A chat completion with one choice carrying ``message``."""
    return Reply(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {"index": 0, "finish_reason": finish_reason, "message": message, "logprobs": None}
            ],
            "usage": usage or _OPENAI_USAGE,
        }
    )


def openai_tool_call(name: str, arguments: Any, *, call_id: str = "call_1", **kw: Any) -> Reply:
    """The assistant calls one tool (a function tool or the output tool)."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
    return openai_completion(
        {"role": "assistant", "content": None, "tool_calls": [call]},
        finish_reason="tool_calls",
        **kw,
    )


def openai_text(content: str, **kw: Any) -> Reply:
    """The assistant answers with plain content (text, or JSON under a response_format)."""
    return openai_completion({"role": "assistant", "content": content}, **kw)


# Anthropic messages replies --------------------------------------------------------------------


def anthropic_message(
    content: list[dict[str, Any]],
    *,
    stop_reason: str = "end_turn",
    usage: dict[str, int] | None = None,
    model: str = "claude-sonnet-4-6",
) -> Reply:
    """A messages-API response with the given content blocks."""
    return Reply(
        {
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage or {"input_tokens": 80, "output_tokens": 30},
        }
    )


def anthropic_tool_use(name: str, arguments: dict[str, Any], *, call_id: str = "toolu_1") -> Reply:
    """The assistant calls one tool with a ``tool_use`` block."""
    block = {"type": "tool_use", "id": call_id, "name": name, "input": arguments}
    return anthropic_message([block], stop_reason="tool_use")


def anthropic_text(text: str) -> Reply:
    """The assistant answers with one text block."""
    return anthropic_message([{"type": "text", "text": text}])


# Failures --------------------------------------------------------------------------------------


def error(status: int, message: str = "failed", **headers: str) -> Reply:
    """An error response in the shape both APIs use (``{"error": {...}}``)."""
    kind = {429: "rate_limit_error", 401: "authentication_error"}.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": message, "code": kind}}
    return Reply(body, status=status, headers={k.replace("_", "-"): v for k, v in headers.items()})


def malformed() -> Reply:
    """A 200 whose body is not JSON at all."""
    return Reply("{this is not json", status=200)


def malformed_stream() -> Reply:
    """A 200 event stream whose first event's data is not JSON (Anthropic streams replies)."""
    return Reply(
        "event: message_start\ndata: {this is not json\n\n",
        headers={"content-type": "text/event-stream"},
    )
