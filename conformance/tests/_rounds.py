"""Deliberately broken round streams, one per way of breaking a round requirement (SM-18 to SM-20), and the
set of requirement IDs the suite must fail each one on (exactly that set: nothing else may fail).

Nothing here is a test. Each factory has the RoundStreamFactory signature ``(next_step, role)`` and hands
out the reference manager (:class:`lmstream.reference.StreamManager`), except :func:`kani_round`, which is
kani's ``full_round_stream`` loop with kani's own managers. The conforming baseline is
:func:`lmstream.reference.round_stream`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, TypeGuard

from kani.models import ChatMessage as KaniMessage
from kani.models import ChatRole
from kani.streaming import DummyStream
from kani.streaming import StreamManager as KaniStreamManager

from lmstream.reference import StreamManager
from lmstream.spec import StreamState

NextStep = Callable[[Any], Awaitable[Any]]


def _is_stream(step: object) -> TypeGuard[AsyncIterable[Any]]:
    return isinstance(step, AsyncIterable)


def _manager(step: object, role: object) -> StreamManager[Any]:
    """The reference manager of one step: an engine stream, or a finished message."""
    if _is_stream(step):
        return StreamManager(step, role)
    return StreamManager.from_message(step)  # type: ignore[arg-type]  # a scripted message, by shape


async def _leave(manager: StreamManager[Any]) -> None:
    """Stop ``manager`` as the round is left: an early stop (reason incomplete), as the reference round does
    (SM-20); ``aclose()`` would make it a stop (reason stopped)."""
    await manager._stop(StreamState.INCOMPLETE)  # pyright: ignore[reportPrivateUsage]  # the reference's early stop


# ------------------------------------------------------------------------------------------------ SM-18
async def early_next_step_round(next_step: NextStep, role: object) -> AsyncIterator[StreamManager[Any]]:
    """Asks next_step for the following step as soon as it makes a manager, before handing that manager
    out, with the completion it has by then (the one before): a prefetch that outruns the round."""
    previous: object = None
    step = await next_step(None)
    while step is not None:
        manager = _manager(step, role)
        upcoming = await next_step(previous)
        try:
            yield manager
            previous = await manager.completion()
        except BaseException:
            await _leave(manager)
            raise
        step = upcoming


async def message_not_completion_round(
    next_step: NextStep, role: object
) -> AsyncIterator[StreamManager[Any]]:
    """Hands next_step the previous *message* (kani's loop keeps ``await manager.message()``), not the
    completion."""
    previous: object = None
    while (step := await next_step(previous)) is not None:
        manager = _manager(step, role)
        try:
            yield manager
            previous = await manager.message()
        except BaseException:
            await _leave(manager)
            raise


async def no_drain_round(next_step: NextStep, role: object) -> AsyncIterator[StreamManager[Any]]:
    """Closes a manager the consumer skipped instead of draining it, and goes on without its completion."""
    previous: object = None
    while (step := await next_step(previous)) is not None:
        manager = _manager(step, role)
        try:
            yield manager
            if manager.state is StreamState.PENDING:
                await _leave(manager)
                previous = None
            else:
                previous = await manager.completion()
        except BaseException:
            await _leave(manager)
            raise


# ------------------------------------------------------------------------------------------------ SM-19
async def swallowing_round(next_step: NextStep, role: object) -> AsyncIterator[StreamManager[Any]]:
    """Ends the round silently when a manager fails, as if it had succeeded."""
    previous: object = None
    while (step := await next_step(previous)) is not None:
        manager = _manager(step, role)
        try:
            yield manager
        except BaseException:
            await _leave(manager)
            raise
        try:
            previous = await manager.completion()
        except Exception:
            return


async def continuing_round(next_step: NextStep, role: object) -> AsyncIterator[StreamManager[Any]]:
    """Goes on to the next step when a manager fails, with no completion."""
    previous: object = None
    while (step := await next_step(previous)) is not None:
        manager = _manager(step, role)
        try:
            yield manager
        except BaseException:
            await _leave(manager)
            raise
        try:
            previous = await manager.completion()
        except Exception:
            previous = None


# ------------------------------------------------------------------------------------------------ SM-20
async def kani_shaped_round(next_step: NextStep, role: object) -> AsyncIterator[StreamManager[Any]]:
    """kani's ``full_round_stream`` loop (yield the manager, then await its result) over the reference
    manager: leaving the round does nothing to the manager in flight."""
    previous: object = None
    while (step := await next_step(previous)) is not None:
        manager = _manager(step, role)
        yield manager
        previous = await manager.completion()


async def shielded_drain_round(next_step: NextStep, role: object) -> AsyncIterator[StreamManager[Any]]:
    """Drains a skipped manager in a task of its own, shielded so that the drain survives a cancellation of
    the round's consumer, which then leaves the manager running."""
    previous: object = None
    while (step := await next_step(previous)) is not None:
        manager = _manager(step, role)
        try:
            yield manager
        except BaseException:
            await _leave(manager)
            raise
        previous = await asyncio.shield(asyncio.ensure_future(manager.completion()))


# ------------------------------------------------------------------------------------------------ kani
async def kani_round(next_step: NextStep, role: object) -> AsyncIterator[Any]:
    """kani's ``full_round_stream`` loop with kani's own managers (``StreamManager``, and ``DummyStream`` for
    a finished message), as ``Kani._full_round`` does it."""
    previous: object = None
    while (step := await next_step(previous)) is not None:
        manager: KaniStreamManager
        if _is_stream(step):
            manager = KaniStreamManager(step, role=role)  # type: ignore[arg-type]  # kani types the role as ChatRole
        else:
            text: str | None = getattr(step, "text", None)
            manager = DummyStream(KaniMessage(role=ChatRole.FUNCTION, content=text, name="tool"))
        yield manager
        previous = await manager.completion()


BROKEN: dict[str, tuple[Callable[..., AsyncIterator[Any]], set[str]]] = {
    "asks next_step early": (early_next_step_round, {"SM-18"}),
    "passes the message, not the completion": (message_not_completion_round, {"SM-18"}),
    "closes a skipped manager instead of draining it": (no_drain_round, {"SM-18"}),
    "ends silently on an error": (swallowing_round, {"SM-19"}),
    "goes on after an error": (continuing_round, {"SM-19"}),
    "kani's loop over the reference manager": (kani_shaped_round, {"SM-20"}),
    "drains in a shielded task": (shielded_drain_round, {"SM-20"}),
    # kani hands tool results out as its own messages, with ChatRole roles (SM-33).
    "kani's loop and managers": (kani_round, {"SM-19", "SM-20", "SM-33"}),
}
"""Each broken round factory, by what it does wrong, and exactly the requirements it must fail."""
