"""The network, replayed: recorded-looking server-sent events of the OpenAI and Anthropic APIs, served
through :class:`httpx.MockTransport` or by a small HTTP server on 127.0.0.1.

Nothing here is a test. Both ways record, for the tests' own measurement of the truth, whether each
response body was closed by the client: :data:`BODIES` lists every replayed body (``closed`` is set when
httpx closes it), and :class:`LocalServer` records when each connection's client went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, cast

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
    base: dict[str, object] = {"id": "chatcmpl-Bx1", "object": "chat.completion.chunk", "created": 1760000000}
    base |= {
        "model": "gpt-4.1-nano-2025-04-14",
        "system_fingerprint": "fp_38343a2f8f",
        "service_tier": "default",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return base | {"choices": [choice], "usage": None}

    events = [_sse(chunk({"role": "assistant", "content": "", "refusal": None}))]
    events += [_sse(chunk({"content": token})) for token in TEXT]
    events.append(_sse(chunk({}, "stop")))
    usage: dict[str, object] = {
        "prompt_tokens": 27,
        "completion_tokens": len(TEXT),
        "total_tokens": 27 + len(TEXT),
    }
    events.append(_sse({**base, "choices": list[object](), "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_message_events() -> list[bytes]:
    """A Messages API stream: message_start, a text block with one delta per token, message_delta with the
    usage, message_stop (and a ping, as the API sends)."""
    message: dict[str, object] = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 27, "output_tokens": 1},
    }
    events = [
        _sse({"type": "message_start", "message": message}, "message_start"),
        _sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
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
class _Connection:
    tag: str
    left: bool = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self._server.idle_timeout)
        self.record: _Connection | None = None

    def finish(self) -> None:
        if self.record is not None:
            with self._server.changed:
                self.record.left = True
                self._server.changed.notify_all()
        with contextlib.suppress(OSError):  # the client reset the connection
            super().finish()

    def do_GET(self) -> None:  # /left?tag=T&timeout=S: wait (bounded) until T's connections have all left
        query = dict(part.split("=", 1) for part in self.path.partition("?")[2].split("&") if "=" in part)
        tag, timeout = query.get("tag", ""), float(query.get("timeout", "0.5"))
        with self._server.changed:
            self._server.changed.wait_for(lambda: self._server.open(tag) == 0, timeout=timeout)
            body = json.dumps({"open": self._server.open(tag), "seen": self._server.seen(tag)}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_POST(self) -> None:
        if self.record is None:
            self.record = _Connection(self.path.strip("/").split("/", 1)[0])
            with self._server.changed:
                self._server.connections.append(self.record)
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            for index, event in enumerate(events_for(self.path)):
                if index >= 2:  # the first events at once, then as a model would generate them
                    time.sleep(self._server.interval)
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client went away mid-stream
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, interval: float, idle_timeout: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.interval = interval
        self.idle_timeout = idle_timeout
        self.changed = threading.Condition()
        self.connections: list[_Connection] = []

    def open(self, tag: str) -> int:
        return sum(1 for c in self.connections if c.tag == tag and not c.left)

    def seen(self, tag: str) -> int:
        return sum(1 for c in self.connections if c.tag == tag)

    def handle_error(self, request: object, client_address: object) -> None:
        return  # a client that resets its connection is what some tests are about: not an error here


def serve(interval: float = 0.002, idle_timeout: float = 10.0) -> None:
    """Run the server until standard input closes, after printing its port (the child side of
    :class:`LocalServer`)."""
    server = _Server(interval, idle_timeout)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # until the parent closes it (or dies)
    server.shutdown()
    server.server_close()


class LocalServer:
    """A small HTTP/1.1 server on 127.0.0.1 that streams the replayed events over real sockets, run in a
    child process (so that its threads are not the check's), started and stopped by the ``with`` block.

    Each request's first path segment is its *tag*: :meth:`wait_left` tells whether the connections of a
    tag have all been closed by the client, which is how the tests measure that a response was closed.
    """

    def __init__(self, *, start_timeout: float = 20.0) -> None:
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalServer:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], self._start_timeout)
        if not ready:
            self.__exit__()
            raise RuntimeError(f"the local SSE server did not start within {self._start_timeout} s")
        self.port = int(self._process.stdout.readline())
        return self

    def __exit__(self, *exc_info: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()

    def wait_left(self, tag: str, timeout: float = 0.5) -> tuple[int, int]:
        """Wait at most ``timeout`` for every connection tagged ``tag`` to be closed by its client; return
        (how many are still open, how many there were)."""
        with httpx.Client(timeout=timeout + 5) as client:
            answer = client.get(f"{self.url}/left", params={"tag": tag, "timeout": timeout}).json()
        return int(answer["open"]), int(answer["seen"])


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
    "serve",
    "server_url",
]


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve()
