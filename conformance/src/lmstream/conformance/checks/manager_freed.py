"""The manager check of what a finished stream leaves in memory (SM-36): once the application has dropped
the manager and everything it got from it, reference counting alone must free the manager.

The check drives a manager to each end a stream can have (completed; the engine failed, every result raising
its error; ``after`` failed; the consumer left early while the engine's close failed; the task driving
``completion()`` was cancelled; a stop, for a manager with ``aclose()``), drops every reference it holds, and
looks, with the cyclic garbage collector switched off, whether the manager (or, for a manager that cannot be
weakly referenced, the engine stream it was given) is gone. A survivor is held by a reference cycle; the
failure names the types of the objects that refer to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from types import FrameType
from typing import Any, Final, Literal

from lmstream.conformance.context import CheckContext, CheckTimeout
from lmstream.conformance.describe import script, seconds
from lmstream.conformance.model import CheckFailure, TargetKind
from lmstream.conformance.targets import ManagerTarget

from ._manager_support import ROLE, construct
from ._registry import check

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
Ending = Literal["completed", "engine error", "after error", "early stop", "cancelled", "stopped"]
_ENDINGS: Final[tuple[Ending, ...]] = (
    "completed",
    "engine error",
    "after error",
    "early stop",
    "cancelled",
    "stopped",
)
_WHAT: Final[dict[Ending, str]] = {
    "completed": "the stream completed and every result was read",
    "engine error": "the engine raised after 2 tokens and every result raised its error",
    "after error": "after raised and every result raised its error",
    "early stop": "the consumer left after 1 token (the engine's close failing, before Python 3.12), every "
    "result raised",
    "cancelled": "the task driving completion() was cancelled while the engine was blocked",
    "stopped": "aclose() stopped the stream while the engine was blocked, every result raised",
}
_CLOSE_FAILS: Final = sys.version_info < (3, 12)
"""Whether the early stop's engine close fails. From Python 3.12 a finished frame keeps the frame that
awaited it (``f_back``), so a failing close kept as the error's ``__cause__`` (SM-35) reaches the frame of
the manager's own close through its traceback, and no manager can free itself by reference counting then:
the early stop's close does not fail there: a limit of the rule on those versions, not of the check."""
_TURNS: Final = 5
"""Event-loop turns given after the references are dropped (callbacks the loop still holds run)."""


class EngineFailed(ConnectionResetError):
    """What the engine of the engine-error case raises."""


class CloseFailed(Exception):
    """What the engine's close raises in the early-stop case."""


class AfterFailed(Exception):
    """What ``after`` raises in the after-error case."""


async def _engine(ending: Ending, blocked: asyncio.Event) -> AsyncGenerator[str, None]:
    finished = False
    try:
        yield " Hel"
        yield "lo"
        if ending == "engine error":
            raise EngineFailed("the engine lost its connection")
        if ending in ("cancelled", "stopped"):
            blocked.set()
            await asyncio.Event().wait()  # blocked until the manager closes it
        yield ", world"
        finished = True
    finally:
        if ending == "early stop" and not finished and _CLOSE_FAILS:
            raise CloseFailed("the engine's close failed")


async def _failing_after(completion: object) -> None:
    raise AfterFailed("after failed")


async def _quietly(call: Awaitable[object]) -> None:
    """Await ``call``; whatever it raises is dropped here. This frame holds no reference to the manager, so
    an error it stores that passes through here makes no cycle of the check's own making."""
    with contextlib.suppress(Exception):
        await call


async def _apart(call: Awaitable[object]) -> None:
    """:func:`_quietly` in a task of its own. A frame keeps the frame that awaited it (``f_back``, on Python
    3.12+ once it has finished), so an error raised through a frame awaited from :func:`_drive` would reach
    the manager through ``_drive``'s locals; a task's frame has no such parent."""
    task = asyncio.ensure_future(_quietly(call))
    await asyncio.wait([task])
    del task


async def _read_to_the_end(iterator: AsyncIterator[object]) -> None:
    """The consumer's loop, over the iterator alone (not the manager: see :func:`_quietly`)."""
    with contextlib.suppress(StopAsyncIteration):
        while True:
            await anext(iterator)


async def _drive(manager: Any, ending: Ending, blocked: asyncio.Event) -> None:
    """Bring ``manager`` to ``ending``, then read its results. No error passes through this frame, which
    holds the manager: the application's frames an error passes through are the application's business,
    and this check judges only the cycles of the manager's own making."""
    if ending == "early stop":
        iterator = aiter(manager)
        await _apart(anext(iterator))
        close = getattr(iterator, "aclose", None)  # SM-10's check judges an iterator without one
        if close is not None:
            await _apart(close())
        del iterator, close
    elif ending == "cancelled":
        driver = asyncio.ensure_future(manager.completion())
        await blocked.wait()
        driver.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait([driver])
        del driver
    elif ending == "stopped":
        consumer = asyncio.ensure_future(_read_to_the_end(aiter(manager)))
        await blocked.wait()
        await _apart(manager.aclose())
        with contextlib.suppress(BaseException):
            await asyncio.wait([consumer])
        if consumer.done() and not consumer.cancelled():
            consumer.exception()  # retrieved: not judged here
        del consumer
    else:
        await _apart(_read_to_the_end(aiter(manager)))
    await _apart(manager.completion())
    await _apart(manager.message())


def _referrers(obj: object) -> str:
    """The types of what refers to ``obj``, this check's own frames left out."""
    mine = (_referrers.__code__, _left_alive.__code__)
    kinds = sorted(
        {
            f"the frame of {r.f_code.co_name}()" if isinstance(r, FrameType) else type(r).__name__
            for r in gc.get_referrers(obj)
            if getattr(r, "f_code", None) not in mine and getattr(r, "cr_code", None) not in mine
        }
    )
    return ", ".join(kinds) or "nothing visible"


async def _left_alive(target: ManagerTarget, ctx: CheckContext, ending: Ending) -> str | None:
    """Run one ending with the collector off; what is still alive once everything is dropped, or ``None``."""
    blocked = asyncio.Event()
    stream = _engine(ending, blocked)
    keywords: dict[str, Callable[[Any], Awaitable[None]]] = (
        {"after": _failing_after} if ending == "after error" else {}
    )
    manager: Any = construct(target, stream, ROLE, **keywords)
    if ending == "stopped" and not callable(getattr(manager, "aclose", None)):
        return None
    try:
        watched = weakref.ref(manager)
        what = "the manager"
    except TypeError:  # no __weakref__ slot: the engine stream it was given stands for it
        watched = weakref.ref(stream)
        what = "the engine stream (the manager cannot be weakly referenced)"
    del stream
    bound = ctx.grace / len(_ENDINGS)  # a conforming manager takes a few event-loop turns
    try:
        await ctx.bounded(_drive(manager, ending, blocked), what=f"the {ending} to end", timeout=bound)
    except CheckTimeout:
        ctx.note(
            f"{_WHAT[ending]}: the stream did not end within {seconds(bound)}, so what it leaves was not "
            "judged (other checks judge the hang)"
        )
        return None
    del manager
    await ctx.settle(_TURNS)
    left = watched()
    if left is None:
        return None
    found = f"{what} was still alive, held by a reference cycle (referred to by: {_referrers(left)})"
    del left
    return found


_EXPECTED = (
    "once the stream has ended, however it ended, and the manager and every result and error it handed "
    "out are dropped, reference counting alone frees the manager (no cycle through it, the errors it "
    "keeps, their tracebacks or its frames)"
)


def _reproduction(ctx: CheckContext) -> str:
    imports, expression = ctx.target_reference()
    return script(
        [*imports, "import gc", "import weakref"],
        [
            "async def engine():",
            "    yield ' Hel'",
            "    yield 'lo'",
            "    raise ConnectionResetError('lost')",
            f"manager = {expression}(engine(), {ROLE!r})",
            "for call in (manager.completion, manager.message, manager.completion):",
            "    try:",
            "        await call()",
            "    except ConnectionResetError:",
            "        pass",
            "watched = weakref.ref(manager)",
            "gc.disable()",
            "del manager",
            "await asyncio.sleep(0)",
            "print('freed' if watched() is None else 'kept alive by a cycle')",
            "gc.enable()",
        ],
    )


@check(
    "SM-36",
    _MANAGER,
    summary="completed, failed, left early, cancelled or stopped, then dropped: freed without the collector",
)
async def finished_manager_is_freed_without_the_collector(target: ManagerTarget, ctx: CheckContext) -> None:
    enabled = gc.isenabled()
    gc.collect()  # what earlier checks left in cycles is not this check's to see
    gc.disable()
    try:
        for ending in _ENDINGS:
            found = await _left_alive(target, ctx, ending)
            if found is not None:
                raise CheckFailure(
                    f"{_WHAT[ending]}; with everything dropped and the cyclic collector off, {found}",
                    expected=_EXPECTED,
                    reproduction=_reproduction(ctx),
                )
    finally:
        if enabled:
            gc.enable()
