"""An event loop that can tell when nothing is left to run, for the explorer
(:class:`~lmstream.conformance.stateful.ManagerMachine`): :func:`quiet_loop` and :class:`Quiet`.

A task still pending when the loop has nothing to run, and no timer due before the wait's deadline, can
only be woken by I/O; the explorer's scripted engines do none, so such a task is stuck (a hang), and
:meth:`Quiet.until_done` says so at once rather than at its deadline. The loop is a
:class:`asyncio.SelectorEventLoop` over a selector that sees, through the selector interface asyncio
documents, how long the loop means to sleep; no private attribute of the loop is read.

Every wait is still bounded by the clock: the deadline is the backstop (a timer of the target's own, or a
thread it waits on, is waited for until then).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = ["Quiet", "quiet_loop"]

_SLACK = 0.001
"""A timer due this close to the deadline is the wait's own (or as good as)."""


class _Selector(selectors.BaseSelector):
    """The default selector, and a watch: when the loop is about to sleep until the watched deadline (or
    forever) and no I/O is ready, it resolves the watch's future instead."""

    def __init__(self) -> None:
        self._inner = selectors.DefaultSelector()
        self.until: float | None = None
        self.idle: asyncio.Future[None] | None = None

    def register(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        idle, until = self.idle, self.until
        if idle is None or until is None or idle.done() or timeout == 0:
            return self._inner.select(timeout)
        if timeout is not None and time.monotonic() + timeout < until - _SLACK:
            return self._inner.select(timeout)  # a timer is due before the deadline: not quiet yet
        ready = self._inner.select(0)
        if not ready:
            idle.set_result(None)  # its callbacks run in this same turn of the loop
        return ready


class Quiet:
    """The bounded waits of one :func:`quiet_loop`. Use them inside the loop."""

    def __init__(self, selector: _Selector) -> None:
        self._selector = selector

    async def until_done(self, tasks: Sequence[asyncio.Future[Any]], timeout: float) -> bool:
        """Let the loop run until every one of ``tasks`` is done; give up when nothing is left to run (they
        cannot finish) or after ``timeout`` seconds. Returns whether all are done."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        pending = [task for task in tasks if not task.done()]
        idle: asyncio.Future[None] = loop.create_future()
        self._selector.until, self._selector.idle = until, idle
        try:
            while not idle.done():
                left = until - loop.time()
                if left <= 0:
                    break
                await asyncio.wait([*pending, idle], timeout=left, return_when=asyncio.FIRST_COMPLETED)
                pending = [task for task in pending if not task.done()]
                if not pending and tasks:
                    return True
        finally:
            self._selector.until = self._selector.idle = None
            idle.cancel()
        return all(task.done() for task in tasks)

    async def settle(self, timeout: float) -> None:
        """Let the loop run until nothing is left to run (at most ``timeout`` seconds)."""
        await self.until_done([], timeout)


def quiet_loop() -> tuple[asyncio.AbstractEventLoop, Quiet]:
    """A new event loop (not set as the current one) and its bounded waits."""
    selector = _Selector()
    return asyncio.SelectorEventLoop(selector), Quiet(selector)
