"""The checks of a stop of a loop blocked in the engine, for consumers shaped as real applications shape
them (SM-24): a web framework's streaming response iterates the manager through an async generator of its
own (a *relay*); older code steps it with a generator-based ``@types.coroutine``; a helper coroutine wraps
each step; and a manager may be built without a lock or an ``after`` at all. In every shape the stop must not
wait for the engine's next item.
"""

from __future__ import annotations

import types
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget

from ._registry import check
from ._stop_snippets import RESULT, stop_reproduction
from ._stop_support import BLOCKED, LATER, PROMPT, AfterProbe, Rig, make_rig, spawn_stoppers, until

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER


async def _relay(manager: Any) -> AsyncGenerator[Any, None]:
    """A streaming response's body: the manager's tokens, relayed."""
    async for token in manager:
        yield token


@types.coroutine
def _generator_step(iterator: Any) -> Generator[Any, Any, Any]:
    """One step, as a generator-based coroutine awaits it."""
    step: Generator[Any, Any, Any] = iterator.__anext__().__await__()
    result: Any = yield from step
    return result


async def _wrapped_step(iterator: Any) -> Any:
    async def inner() -> Any:
        return await anext(iterator)

    return await inner()


class _Seen:
    """What a consumer of one shape received, and how its loop ended."""

    def __init__(self) -> None:
        self.tokens: list[object] = []
        self.error: BaseException | None = None
        self.ended = False


async def _through_relay(manager: Any, seen: _Seen) -> None:
    async for token in _relay(manager):
        seen.tokens.append(token)


async def _by_steps(manager: Any, seen: _Seen, step: Callable[[Any], Awaitable[Any]]) -> None:
    iterator: AsyncIterator[Any] = aiter(manager)
    while True:
        try:
            token = await step(iterator)
        except StopAsyncIteration:
            return
        seen.tokens.append(token)


async def _generator_steps(manager: Any, seen: _Seen) -> None:
    await _by_steps(manager, seen, _generator_step)


async def _wrapped_steps(manager: Any, seen: _Seen) -> None:
    await _by_steps(manager, seen, _wrapped_step)


async def _plain(manager: Any, seen: _Seen) -> None:
    async for token in manager:
        seen.tokens.append(token)


_SHAPES: Final[dict[str, tuple[Callable[[Any, _Seen], Awaitable[None]], bool, tuple[str, ...]]]] = {
    "through a relaying async generator (a streaming response's body)": (
        _through_relay,
        True,
        (
            "async def relay():",
            "    async for token in manager:",
            "        yield token",
            "async def consume():",
            "    async for token in relay():",
            "        tokens.append(token)",
        ),
    ),
    "with a generator-based @types.coroutine step": (
        _generator_steps,
        True,
        (
            "@types.coroutine",
            "def step(iterator):",
            "    return (yield from iterator.__anext__().__await__())",
            "async def consume():",
            "    iterator = aiter(manager)",
            "    while True:",
            "        tokens.append(await step(iterator))",
        ),
    ),
    "with each step wrapped in two coroutines": (
        _wrapped_steps,
        True,
        (
            "async def step(iterator):",
            "    async def inner():",
            "        return await anext(iterator)",
            "    return await inner()",
            "async def consume():",
            "    iterator = aiter(manager)",
            "    while True:",
            "        tokens.append(await step(iterator))",
        ),
    ),
    "of a manager built without a lock or an after": (
        _plain,
        False,
        ("async def consume():", "    async for token in manager:", "        tokens.append(token)"),
    ),
}


async def _consume(shape: Callable[[Any, _Seen], Awaitable[None]], manager: Any, seen: _Seen) -> None:
    try:
        await shape(manager, seen)
    except StopAsyncIteration:
        pass
    except Exception as exc:
        seen.error = exc
    finally:
        seen.ended = True


@check(
    "SM-24",
    _MANAGER,
    summary="aclose() with the engine blocked ends a loop through a relay, a @types.coroutine step, ...",
)
async def stop_ends_a_blocked_loop_whatever_its_shape(target: ManagerTarget, ctx: CheckContext) -> None:
    expected = (
        "a stop during iteration ends the consumer's loop, however the consumer steps it, at its next step "
        "and without an exception, even while the engine is blocked awaiting its next item"
    )
    for where in _SHAPES:
        await _one_shape(target, ctx, where, expected)


async def _one_shape(target: ManagerTarget, ctx: CheckContext, where: str, expected: str) -> None:
    shape, extras, lines = _SHAPES[where]
    rig = await make_rig(target, ctx, BLOCKED, lock=extras, after=AfterProbe() if extras else None)
    seen = _Seen()
    task = ctx.spawn(_consume(shape, rig.manager, seen), name=f"lmstream consumer {where}")
    if not await until(ctx, lambda: rig.probe.blocked or seen.ended, timeout=LATER) or seen.ended:
        error = describe_exception(seen.error) if seen.error else "no error"
        raise CheckSkipped(
            f"the consumer iterating {where} never got the engine blocked ({len(seen.tokens)} token(s), "
            f"{error}): see the SM-1 to SM-17 checks"
        )
    stoppers = spawn_stoppers(ctx, rig)
    prompt = await until(ctx, lambda: seen.ended, timeout=PROMPT)
    if not prompt:
        rig.probe.release()
    await ctx.wait_tasks([task, *stoppers], timeout=LATER)
    problem = None
    if not prompt:
        problem = (
            f"the consumer's loop had not ended {seconds(PROMPT)} after aclose(): the stop waited for the "
            "engine's next item"
        )
    elif seen.error is not None:
        problem = f"the consumer's loop raised {describe_exception(seen.error)}"
    elif len(seen.tokens) > 2:
        problem = f"the consumer received {seen.tokens[2:]!r} after the stop"
    elif not await until(ctx, rig.engine_closed, timeout=LATER):
        problem = f"the engine stream had not been closed {seconds(LATER)} after the stop"
    if problem is not None:
        raise CheckFailure(
            "aclose() from another task with the engine blocked after 2 tokens, the consumer iterating "
            f"{where}: {problem}",
            expected=expected,
            reproduction=_reproduction(ctx, rig, lines, extras),
        )


def _reproduction(ctx: CheckContext, rig: Rig, lines: tuple[str, ...], extras: bool) -> str:
    return stop_reproduction(
        ctx,
        rig.items,
        [
            "tokens = []",
            *lines,
            "consumer = asyncio.create_task(consume())",
            "await until_blocked(probe)",
            "stop = asyncio.create_task(manager.aclose())",
            "done, _ = await asyncio.wait([consumer], timeout=0.1)",
            "print('ended at once:', bool(done), tokens)  # True",
            "probe.release()",
            "await asyncio.wait([stop], timeout=1)",
            RESULT,
        ],
        lock=extras,
        after=extras,
        imports=["import types"],
    )
