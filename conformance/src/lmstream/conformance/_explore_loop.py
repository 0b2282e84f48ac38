"""Bounded waits for the explorer's event loops (:mod:`lmstream.conformance.explore`): let the running loop
go on until some tasks are done (:func:`until_done`), until nothing is left to run (:func:`settle`), or for a
number of turns (:func:`turns`).

No wait outlives its ``deadline`` (a time of the loop's clock). A task still pending when nothing is left to
run (no callback ready, no live timer, twice in a row) can never finish, so :func:`until_done` gives up then
rather than at the deadline. A loop that cannot tell whether it is idle (not one of asyncio's own, e.g.
uvloop) is waited on by the clock alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

__all__ = ["settle", "turns", "until_done"]


def _loop_idle(loop: asyncio.AbstractEventLoop) -> bool | None:
    """Whether nothing is ready to run and no timer is pending (``None``: this loop cannot tell)."""
    ready = getattr(loop, "_ready", None)  # asyncio's own loops; others (uvloop) fall back to the clock
    scheduled = getattr(loop, "_scheduled", None)
    if ready is None or scheduled is None:
        return None
    return not ready and not any(not handle.cancelled() for handle in scheduled)


def _next_timer(loop: asyncio.AbstractEventLoop) -> float | None:
    ready = getattr(loop, "_ready", None)
    scheduled = getattr(loop, "_scheduled", None)
    if ready or not scheduled:
        return None
    live = [handle.when() for handle in scheduled if not handle.cancelled()]
    return min(live) if live else None


async def until_done(tasks: Sequence[asyncio.Future[Any]], deadline: float) -> bool:
    """Let the loop run until every task is done; give up when nothing is left to run (twice in a row: the
    tasks can never finish) or at ``deadline``. Returns whether all are done."""
    loop = asyncio.get_running_loop()
    quiet = 0
    while True:
        pending = [task for task in tasks if not task.done()]
        if not pending:
            return True
        now = loop.time()
        if now >= deadline:
            return False
        idle = _loop_idle(loop)
        timer = _next_timer(loop)
        if idle is None or timer is not None:
            until = deadline if timer is None else min(timer, deadline)
            await asyncio.wait(pending, timeout=max(0.0, until - now))
            quiet = 0
            continue
        quiet = quiet + 1 if idle else 0
        if quiet >= 2:
            return False
        await asyncio.sleep(0)


async def settle(deadline: float) -> None:
    """Let the loop run until nothing is left to run (or ``deadline``)."""
    loop = asyncio.get_running_loop()
    marker = loop.create_future()  # never done: run until quiet
    try:
        await until_done([asyncio.ensure_future(marker)], deadline)
    finally:
        marker.cancel()


async def turns(count: int) -> None:
    """Let the loop turn ``count`` times."""
    for _ in range(count):
        await asyncio.sleep(0)
