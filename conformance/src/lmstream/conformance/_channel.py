"""The worker's messages to its supervisor: one JSON object a line, on a descriptor that is not stdout.

The worker writes with :class:`Sender` to a file descriptor of its own: in a forked worker a fresh pipe,
in a spawned one the process's original stdout, which the worker moves off fd 1 before any code of the
target runs (fd 1 then holds a capture file, see :mod:`lmstream.conformance._output`). Every line starts
with a token chosen per run, so that bytes a target writes there by accident are ignored, never parsed.

:class:`Receiver` reads the lines with a deadline: ``select()`` on POSIX; on Windows, where ``select()``
takes sockets only, a daemon thread of the supervisor reads the pipe into a queue.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import threading
import time
from collections.abc import Mapping
from typing import Final, Union, cast

__all__ = ["CLOSED", "Closed", "Message", "Receiver", "Sender", "new_token"]

Message = dict[str, object]
"""One message: a JSON object whose ``"t"`` names its type (``"ready"``, ``"start"``, ``"result"``...)."""

_write = os.write  # bound now: a target that replaces os.write or json.dumps cannot silence the worker
_dumps = json.dumps
_CHUNK: Final = 65536
_LINE_LIMIT: Final = 8 * 1024 * 1024
"""A line longer than this is dropped: only the target can have written it."""


class Closed:
    """The type of :data:`CLOSED`: the worker's end of the channel is closed (it exited, or closed it)."""

    def __repr__(self) -> str:
        return "CLOSED"


CLOSED: Final = Closed()

Received = Union[Message, Closed, None]  # noqa: UP007 - a runtime alias on Python 3.10
"""A message, :data:`CLOSED`, or ``None`` when nothing came before the timeout."""


def new_token() -> str:
    """A fresh per-run token (hex)."""
    return os.urandom(8).hex()


class Sender:
    """Write messages to ``fd`` (thread-safe: the worker's main thread and its watchdog both send).

    :ivar broken: whether a write failed (the supervisor is gone, or the target closed the descriptor);
        later sends do nothing.
    """

    def __init__(self, fd: int, token: str) -> None:
        self._fd = fd
        self._prefix = token.encode("ascii")
        self._lock = threading.Lock()
        self.broken = False

    def send(self, message: Mapping[str, object]) -> bool:
        """Send one message; ``False`` when the channel is broken."""
        data = self._prefix + _dumps(message, separators=(",", ":")).encode("ascii") + b"\n"
        with self._lock:
            if self.broken:
                return False
            try:
                view = memoryview(data)
                while view:
                    view = view[_write(self._fd, view) :]
            except OSError:
                self.broken = True
                return False
        return True


class Receiver:
    """Read :class:`Sender`'s messages from ``fd`` (the supervisor's end; closed by :meth:`close`)."""

    def __init__(self, fd: int, token: str, *, use_thread: bool | None = None) -> None:
        self._fd = fd
        self._prefix = token.encode("ascii")
        self._buffer = bytearray()
        self._eof = False
        self._queue: queue.Queue[bytes] | None = None
        if use_thread if use_thread is not None else os.name == "nt":
            self._queue = queue.Queue()
            threading.Thread(target=self._pump, name="lmstream channel reader", daemon=True).start()

    def receive(self, timeout: float) -> Received:
        """The next message, :data:`CLOSED` at the end, or ``None`` if none came within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._parse_one()
            if message is not None:
                return message
            if self._eof:
                return CLOSED
            chunk = self._read(max(0.0, deadline - time.monotonic()))
            if chunk is None:
                return None
            if not chunk:
                self._eof = True
            self._buffer += chunk

    def close(self) -> None:
        """Close the descriptor (a reader thread ends at its next read)."""
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _parse_one(self) -> Message | None:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > _LINE_LIMIT:
                    del self._buffer[:]
                return None
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if not line.startswith(self._prefix):
                continue
            try:
                value: object = json.loads(line[len(self._prefix) :])
            except ValueError:
                continue
            if isinstance(value, dict):
                message = {str(k): v for k, v in cast(dict[object, object], value).items()}
                if isinstance(message.get("t"), str):
                    return message

    def _read(self, timeout: float) -> bytes | None:
        if self._queue is not None:
            try:
                return self._queue.get(timeout=max(timeout, 0.0)) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                return None
        try:
            ready, _, _ = select.select([self._fd], [], [], max(timeout, 0.0))
        except (OSError, ValueError):
            return b""
        if not ready:
            return None
        try:
            return os.read(self._fd, _CHUNK)
        except OSError:
            return b""

    def _pump(self) -> None:
        assert self._queue is not None
        while True:
            try:
                chunk = os.read(self._fd, _CHUNK)
            except OSError:
                chunk = b""
            self._queue.put(chunk)
            if not chunk:
                return
