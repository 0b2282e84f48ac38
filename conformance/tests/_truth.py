"""The measured truth about ES-5, independent of the suite: drive an engine as the ES-5 check does (the
first item, then ``aclose()``) and look, at the moment ``aclose()`` returned, at what the network layer
holds. Nothing here is a test.

* In memory (``httpx.MockTransport``): whether every response body the transport handed out was closed
  (:attr:`conformance.tests._replay.Body.closed`, set by httpx when the response is closed).
* Over sockets: whether every connection to the local server opened by the stream is closed or closing:
  asyncio transports (``is_closing()``) and plain sockets (a sync client's), found with :mod:`gc` by their
  peer port. That is the socket layer, below httpx and the SDKs, so it does not share the suite's way of
  seeing responses.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import socket
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from . import _replay


@dataclass(frozen=True)
class Truth:
    """What was open when ``aclose()`` returned: of ``opened`` responses or connections, ``left_open``."""

    opened: int
    left_open: int

    @property
    def closed(self) -> bool:
        return self.opened > 0 and self.left_open == 0


def _peer_port(thing: object) -> int | None:
    try:
        if isinstance(thing, asyncio.BaseTransport):
            peer = thing.get_extra_info("peername")
        elif isinstance(thing, socket.socket):
            peer = thing.getpeername()
        else:
            return None
    except OSError:
        return None
    address = cast(tuple[object, ...], peer) if isinstance(peer, tuple) else ()
    return int(cast(int, address[1])) if len(address) >= 2 else None


def open_connections(port: int) -> list[object]:
    """The transports and sockets connected to ``port`` that are neither closed nor closing now."""
    found: list[object] = []
    transport_fds: set[int] = set()
    objects = gc.get_objects()
    for thing in objects:
        if isinstance(thing, asyncio.BaseTransport) and _peer_port(thing) == port:
            sock = thing.get_extra_info("socket")
            if sock is not None:
                transport_fds.add(sock.fileno())
            if not thing.is_closing():
                found.append(thing)
    for thing in objects:
        if (
            isinstance(thing, socket.socket)
            and thing.fileno() != -1
            and thing.fileno() not in transport_fds
            and _peer_port(thing) == port
        ):
            found.append(thing)
    return found


async def _close_client(engine: object) -> None:
    """Close what the engine holds (kani's ``close()``, or its client's): nothing outlives the test."""
    closer = getattr(engine, "close", None)
    if not callable(closer):
        client = getattr(engine, "client", None)
        closer = getattr(client, "aclose", None) or getattr(client, "close", None)
    if callable(closer):
        result = closer()
        if inspect.isawaitable(result):
            await result


async def _measure(
    make: Callable[[], object], messages: Sequence[object], port: int | None, timeout: float
) -> tuple[int, int]:
    """(responses opened, left open) in memory; (0, connections left open) over sockets."""
    gc.collect()
    before_bodies = len(_replay.BODIES)
    before = {id(c) for c in open_connections(port)} if port is not None else set[int]()
    engine = make()
    stream = cast(Any, engine).stream(list(messages))
    iterator = cast(AsyncIterator[object], stream.__aiter__())
    try:
        await asyncio.wait_for(iterator.__anext__(), timeout)
        await asyncio.wait_for(cast(Any, iterator).aclose(), timeout)
        # The moment aclose() returned: nothing else has run since.
        if port is None:
            bodies = _replay.BODIES[before_bodies:]
            return len(bodies), sum(1 for b in bodies if not b.closed)
        return 0, sum(1 for c in open_connections(port) if id(c) not in before)
    finally:
        await _close_client(engine)


def measure(
    make: Callable[[], object],
    messages: Sequence[object],
    *,
    server: _replay.LocalServer | None = None,
    tag: str = "",
    timeout: float = 5.0,
) -> Truth:
    """Open a stream with ``make()``, read one item, ``aclose()`` it, and say what was still open at that
    moment: in memory (``server`` is ``None``), or over the local server's sockets, where ``make`` must
    send its requests under the path ``/<tag>`` (the server counts the connections per tag)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # what a leaking engine leaves is collected here
        opened, left_open = asyncio.run(_measure(make, messages, server.port if server else None, timeout))
        gc.collect()
    if server is not None:
        _, opened = server.wait_left(tag, timeout=0.0)
    return Truth(opened, left_open)
