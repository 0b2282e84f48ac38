"""Closing the engine's stream (ES-5) from the manager's exit paths, quietly at any shutdown.

Two things make a plain ``await stream.aclose()`` noisy where a plain async-generator wrapper, which never
closes its engine, is silent:

* **An engine generator that was never started.** Its ``aclose()`` is its first iteration, so the event
  loop's first-iteration hook registers it then; after ``loop.shutdown_asyncgens()`` that hook warns
  (``ResourceWarning: asynchronous generator ... was scheduled after loop.shutdown_asyncgens() call``).
  Such a generator has run no code and holds nothing: it is closed with the loop's hooks set aside
  (:func:`sys.set_asyncgen_hooks`), so nobody registers it, and the close completes at once.
* **An engine generator the loop closes too.** ``loop.shutdown_asyncgens()`` closes every async generator
  started in the loop, at once: the manager's iterator and the engine's. When the manager's exit path
  closes the engine as well (at that shutdown, or just before it, from the finalizer of an iterator that a
  cancelled consumer dropped), one of the two closes finds the engine "already running" and the loop
  reports an error. So the manager leaves the close to whoever is doing it when the engine is running
  already or that shutdown has begun, and otherwise takes the engine off the loop's list of generators to
  shut down before closing it itself.

asyncio has no public API for either (``loop._asyncgens`` and ``loop._asyncgens_shutdown_called`` are the
base event loop's own); both are read defensively, and without them the close is a plain ``aclose()``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterable, Awaitable
from types import AsyncGeneratorType
from typing import Any, TypeGuard

__all__ = ["close_stream"]


async def close_stream(
    target: AsyncIterable[Any] | None, loop: asyncio.AbstractEventLoop | None, *, started: bool
) -> None:
    """Await ``target.aclose()``, if it has one (see the module docstring for when it is skipped).

    :param loop: the loop the stream ran on, if known.
    :param started: whether the manager iterated ``target`` (so, for a generator, the loop knows it).
    """
    if _is_native(target):
        gen = target
        if gen.ag_running:
            return  # someone is closing (or stepping) it right now: a second close could only fail
        if not started:
            await _aclose_unregistered(gen)
            return
        if loop is not None:
            if getattr(loop, "_asyncgens_shutdown_called", False):
                return  # loop.shutdown_asyncgens() is closing it, with every other generator of the loop
            registered = getattr(loop, "_asyncgens", None)
            if registered is not None:
                registered.discard(gen)  # this close is the one: the loop's shutdown must not start another
    aclose = getattr(target, "aclose", None)
    if aclose is not None:
        await aclose()


def _aclose_unregistered(gen: AsyncGeneratorType[Any, Any]) -> Awaitable[None]:
    """``gen.aclose()``, created with the thread's async-generator hooks set aside: a generator the manager
    never started is not registered with the loop by its own close (see the module docstring). A generator
    that was started already keeps the hooks it had; for it this is a plain ``aclose()``."""
    hooks = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=None, finalizer=None)
    try:
        return gen.aclose()
    finally:
        sys.set_asyncgen_hooks(*hooks)


def _is_native(target: object) -> TypeGuard[AsyncGeneratorType[Any, Any]]:
    """Whether ``target`` is an async generator (its items of any type)."""
    return isinstance(target, AsyncGeneratorType)
