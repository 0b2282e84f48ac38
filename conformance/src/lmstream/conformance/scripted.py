"""Scripted engine streams: exactly the items, pauses, blocks and errors a check wants, observed as they run.

A *script* is a sequence of steps. :class:`Pause`, :class:`Block` and :class:`Fail` are commands; every
other step is an item, yielded as it is (a ``str`` token, a completion, or anything else, to break the
contract on purpose). :func:`scripted_stream` runs a script as a real async generator (what engines
usually are) and records what happened in a :class:`StreamProbe`, so a manager check can assert, for
instance, that no item was requested ahead of the consumer (SM-2) or that the engine stream was closed and
its cleanup ran (SM-10).

Requests are counted as a consumer sees them: ``probe.requests`` is the number of ``__anext__()`` calls the
generator has begun, including the one that ends the stream. After the consumer has received token ``k``
(1-based), a manager without read-ahead has made exactly ``k`` requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Block", "Fail", "Pause", "StreamProbe", "scripted_stream"]


@dataclass(frozen=True)
class Pause:
    """Sleep this many seconds (``asyncio.sleep``) before the next step."""

    seconds: float


@dataclass(frozen=True)
class Fail:
    """Raise this exception (the very object) from the stream."""

    error: BaseException


@dataclass(frozen=True)
class Block:
    """Wait until :meth:`StreamProbe.release` is called (forever, if nobody calls it): an engine blocked
    awaiting its next item from the network.

    :ivar opaque: wait through an awaitable that does not say what it awaits (a plain object with
        ``send``/``throw``, as a C extension's awaitable is), instead of an :class:`asyncio.Event`: nothing
        outside can follow the chain of awaits to the future the stream's task waits on.
    """

    opaque: bool = False


class _Opaque(Generator[Any, None, None]):
    """An awaitable that does not say what it awaits: it waits on the first of two futures it holds in a
    tuple, so that nothing outside can tell which of them (if either) it waits on."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._futures: tuple[asyncio.Future[None], ...] = (loop.create_future(), loop.create_future())

    def release(self) -> None:
        if not self._futures[0].done():
            self._futures[0].set_result(None)

    def __await__(self) -> Generator[Any, None, None]:
        return self

    def send(self, value: None) -> Any:
        future = self._futures[0]
        if future.done():
            raise StopIteration(None)
        future._asyncio_future_blocking = True  # what Future.__await__ does: the task waits on it
        return future

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        raise typ if val is None else val


@dataclass
class StreamProbe:
    """What one scripted stream did. Read it; only :meth:`release` changes anything from outside.

    :ivar requests: ``__anext__()`` calls begun (see the module docstring).
    :ivar yielded: the items yielded, in order.
    :ivar blocked: whether the stream is waiting at a :class:`Block` right now.
    :ivar ended: the script ran to its end (the stream ended normally).
    :ivar closed: the stream received ``GeneratorExit`` (``aclose()``, or finalization).
    :ivar cancelled: the stream received ``CancelledError``.
    :ivar raised: the exception the stream ended with (a :class:`Fail`'s, or one thrown in), if any.
    :ivar cleanup_started: the stream's ``finally`` block began.
    :ivar cleanup_ran: the stream's ``finally`` block ran to its end (all its ``cleanup_turns`` included).
    """

    requests: int = 0
    yielded: list[object] = field(default_factory=list[object])
    blocked: bool = False
    ended: bool = False
    closed: bool = False
    cancelled: bool = False
    raised: BaseException | None = None
    cleanup_started: bool = False
    cleanup_ran: bool = False
    _gate: asyncio.Event | None = field(default=None, repr=False)

    _opaque: list[_Opaque] = field(default_factory=list[_Opaque], repr=False)

    def release(self) -> None:
        """Let a stream waiting at a :class:`Block` (or reaching one later) go on."""
        if self._gate is None:
            self._gate = asyncio.Event()
        self._gate.set()
        for waiting in self._opaque:
            waiting.release()

    async def wait_for_release(self, *, opaque: bool = False) -> None:
        """What a :class:`Block` step does: wait until :meth:`release` (returns at once if it was called)."""
        if self._gate is None:
            self._gate = asyncio.Event()
        if self._gate.is_set():
            return
        self.blocked = True
        try:
            if opaque:
                waiting = _Opaque()
                self._opaque.append(waiting)
                await waiting
            else:
                await self._gate.wait()
        finally:
            self.blocked = False


async def scripted_stream(
    script: Iterable[object],
    probe: StreamProbe | None = None,
    *,
    pause: float | None = 0.0,
    cleanup_turns: int = 0,
) -> AsyncGenerator[Any, None]:
    """Run ``script`` as an async generator, recording into ``probe``.

    :param pause: seconds to ``asyncio.sleep`` before each item (``0``: one event-loop turn, as a network
        read would take; ``None``: none, the stream then never suspends between items).
    :param cleanup_turns: event-loop turns the stream's cleanup (its ``finally``) takes, as closing a
        provider connection does; while it runs the generator is running, so an ``__anext__()`` then
        raises "asynchronous generator is already running".
    """
    probe = StreamProbe() if probe is None else probe
    probe.requests += 1
    try:
        for step in script:
            if isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Block):
                await probe.wait_for_release(opaque=step.opaque)
            elif isinstance(step, Fail):
                raise step.error
            else:
                if pause is not None:
                    await asyncio.sleep(pause)
                probe.yielded.append(step)
                yield step
                probe.requests += 1
        probe.ended = True
    except GeneratorExit:
        probe.closed = True
        raise
    except asyncio.CancelledError:
        probe.cancelled = True
        raise
    except BaseException as exc:
        probe.raised = exc
        raise
    finally:
        probe.cleanup_started = True
        for _ in range(cleanup_turns):
            await asyncio.sleep(0)
        probe.cleanup_ran = True
