"""The network, replayed: recorded-looking server-sent events of the OpenAI and Anthropic APIs, served
through :class:`httpx.MockTransport` or by a small HTTP server on 127.0.0.1.

Nothing here is a test. Both ways record, for the tests' own measurement of the truth, whether each
response body was closed by the client: :data:`BODIES` lists every replayed body (``closed`` is set when
httpx closes it), and :class:`LocalServer` records when each connection's client went away.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import httpx

SERVER_ENV: Final = "LMSTREAM_TEST_SSE_SERVER"
"""The environment variable that gives the socket engines the local server's base URL."""

TEXT: Final = ("Hel", "lo", ", ", "world", "!")
"""The reply every replayed stream carries, token by token."""


def _sse(data: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def openai_chat_events() -> list[bytes]:
    """A chat completions stream as the API sends it with ``stream_options={"include_usage": True}``:
    a first chunk with the role and an empty content, one chunk per token, the finish reason, the usage,
    then ``[DONE]``."""
    base = {"id": "chatcmpl-Bx1", "object": "chat.completion.chunk", "created": 1760000000}
    base |= {"model": "gpt-4.1-nano-2025-04-14", "system_fingerprint": "fp_38343a2f8f", "service_tier": "default"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return base | {"choices": [choice], "usage": None}

    events = [_sse(chunk({"role": "assistant", "content": "", "refusal": None}))]
    events += [_sse(chunk({"content": token})) for token in TEXT]
    events.append(_sse(chunk({}, "stop")))
    usage = {"prompt_tokens": 27, "completion_tokens": len(TEXT), "total_tokens": 27 + len(TEXT)}
    events.append(_sse(base | {"choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_message_events() -> list[bytes]:
    """A Messages API stream: message_start, a text block with one delta per token, message_delta with the
    usage, message_stop (and a ping, as the API sends)."""
    message = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 27, "output_tokens": 1},
    }
    events = [
        _sse({"type": "message_start", "message": message}, "message_start"),
        _sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
             "content_block_start"),
        _sse({"type": "ping"}, "ping"),
    ]
    for token in TEXT:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}}
        events.append(_sse(delta, "content_block_delta"))
    events.append(_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
    events.append(
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(TEXT)},
            },
            "message_delta",
        )
    )
    events.append(_sse({"type": "message_stop"}, "message_stop"))
    return events


def plain_events() -> list[bytes]:
    """A provider-neutral stream for engines on plain httpx: one ``{"token": ...}`` event per token."""
    return [_sse({"token": token}) for token in TEXT] + [b"data: [DONE]\n\n"]


def events_for(path: str) -> list[bytes]:
    """The events the replayed API sends for a request path."""
    if path.endswith("/chat/completions"):
        return openai_chat_events()
    if path.endswith("/messages"):
        return anthropic_message_events()
    return plain_events()


# ---------------------------------------------------------------------------------------------- in memory
@dataclass
class Body(httpx.AsyncByteStream, httpx.SyncByteStream):
    """One response body, event by event; ``closed`` says whether httpx closed it (the truth the tests
    compare the suite's verdict with). Async reads give the loop a turn between events, as a network
    would."""

    url: str
    events: list[bytes]
    closed: bool = False
    sent: int = 0
    closed_at: float | None = field(default=None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self.events:
            if self.closed:
                return
            await asyncio.sleep(0)
            self.sent += 1
            yield event

    def __iter__(self) -> Iterator[bytes]:
        for event in self.events:
            if self.closed:
                return
            self.sent += 1
            yield event

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.closed_at = time.monotonic()


BODIES: list[Body] = []
"""Every body :func:`replay` served, in order (the tests read and clear it)."""


def replay(request: httpx.Request) -> httpx.Response:
    """The :class:`httpx.MockTransport` handler: a 200 ``text/event-stream`` with the API's events."""
    body = Body(str(request.url), events_for(request.url.path))
    BODIES.append(body)
    headers = {"content-type": "text/event-stream; charset=utf-8", "x-request-id": "req_replayed"}
    return httpx.Response(200, headers=headers, stream=body)


def mock_transport() -> httpx.MockTransport:
    return httpx.MockTransport(replay)


# ---------------------------------------------------------------------------------------------- sockets
@dataclass
class Connection:
    """One client connection the local server accepted."""

    opened_at: float
    left_at: float | None = None
    requests: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)
        self.record = Connection(time.monotonic())
        with self.server.lock:
            self.server.connections.append(self.record)

    def finish(self) -> None:
        self.record.left_at = time.monotonic()
        try:
            super().finish()
        except OSError:
            pass

    def do_POST(self) -> None:
        self.record.requests += 1
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for index, event in enumerate(events_for(self.path)):
                if index >= 2:  # the first events at once, then as a model would generate them
                    time.sleep(self.server.interval)
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client went away mid-stream
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet


class LocalServer(ThreadingHTTPServer):
    """An HTTP/1.1 server on 127.0.0.1 that streams the replayed events over real sockets, with
    ``interval`` seconds between events; a context manager that starts it in a thread and stops it
    (bounded: idle connections time out after ``idle_timeout``)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, *, interval: float = 0.002, idle_timeout: float = 5.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.interval = interval
        self.idle_timeout = idle_timeout
        self.lock = threading.Lock()
        self.connections: list[Connection] = []
        self._thread = threading.Thread(target=self.serve_forever, name="lmstream test SSE server", daemon=True)

    def handle_error(self, request: object, client_address: object) -> None:
        return  # a client that resets its connection is what some tests are about: not an error here

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)

    def open_connections(self) -> int:
        with self.lock:
            return sum(1 for c in self.connections if c.left_at is None)


def server_url() -> str:
    """The local server's base URL, from :data:`SERVER_ENV` (the socket engines' factories read it)."""
    url = os.environ.get(SERVER_ENV)
    if not url:
        raise RuntimeError(f"{SERVER_ENV} is not set: start conformance.tests._replay.LocalServer first")
    return url


__all__ = [
    "BODIES",
    "SERVER_ENV",
    "TEXT",
    "Body",
    "LocalServer",
    "anthropic_message_events",
    "events_for",
    "mock_transport",
    "openai_chat_events",
    "plain_events",
    "replay",
    "server_url",
]
