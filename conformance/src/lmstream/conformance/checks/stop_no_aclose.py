"""The checks of a stop of an engine stream that has no ``aclose()``: an async iterable whose iterators are
plain objects with ``__anext__`` only (SM-25 says "awaiting its aclose() where it has one").

Before iteration (SM-25), the stop must still complete, the iteration be empty and every result raise
:class:`~lmstream.spec.StreamIncompleteError`. During iteration (SM-24), with the engine blocked or the
consumer busy in its loop body, the loop must end without an exception and the engine be asked for nothing
more: a manager cannot close such a stream, so it must stop asking it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, script, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamIncompleteError

from ._manager_support import ROLE, TOKENS, construct
from ._registry import check
from ._stop_consumers import Consumer, judge_incomplete, results_now
from ._stop_support import LATER, NO_ACLOSE, PROMPT, aclose_of, until

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER


class _Iterator:
    """An async iterator with ``__anext__`` only (no ``aclose()``)."""

    def __init__(self, source: _NoClose) -> None:
        self._source = source
        self._index = 0

    def __aiter__(self) -> _Iterator:
        return self

    async def __anext__(self) -> str:
        self._source.requests += 1
        if self._index >= len(TOKENS):
            raise StopAsyncIteration
        self._index += 1
        return TOKENS[self._index - 1]


class _NoClose:
    """An engine stream with no ``aclose()``: an async iterable of :class:`_Iterator` s."""

    def __init__(self) -> None:
        self.requests = 0

    def __aiter__(self) -> _Iterator:
        return _Iterator(self)


_BODY: Final = (
    "class Stream:  # no aclose(), on the stream or on its iterator",
    "    def __aiter__(self):",
    "        return Iterator()",
    "class Iterator:",
    "    def __aiter__(self):",
    "        return self",
    "    async def __anext__(self):",
    "        raise StopAsyncIteration",
)


@check("SM-25", _MANAGER, summary="aclose() before iteration of a stream without aclose(): nothing read")
async def stop_before_iteration_of_a_stream_without_aclose(target: ManagerTarget, ctx: CheckContext) -> None:
    stream = _NoClose()
    manager: Any = construct(target, stream, ROLE)
    if not callable(getattr(manager, "aclose", None)):
        raise CheckSkipped(NO_ACLOSE)
    problem: str | None = None
    try:
        await ctx.bounded(aclose_of(manager), what="aclose() before iteration", timeout=LATER)
    except CheckFailure as exc:
        problem = f"aclose() {exc.observed}"
    except Exception as exc:
        problem = f"aclose() raised {describe_exception(exc)}"
    if problem is None:
        tokens: list[object] = []
        try:
            async for token in manager:
                tokens.append(token)
        except Exception as exc:
            problem = f"iterating it then raised {describe_exception(exc)}"
        else:
            if tokens or stream.requests:
                problem = (
                    f"iterating it then read the stream ({stream.requests} request(s), tokens {tokens!r})"
                )
    if problem is None:
        try:
            result = await ctx.bounded(manager.completion(), what="completion()", timeout=LATER)
        except StreamIncompleteError:
            result = None
        except CheckFailure:
            problem = f"completion() had not returned {seconds(LATER)} later"
        except Exception as exc:
            problem = f"completion() raised {describe_exception(exc)}, not StreamIncompleteError"
        else:
            problem = f"completion() returned {result!r}, not StreamIncompleteError"
    if problem is not None:
        imports, expression = ctx.target_reference()
        raise CheckFailure(
            f"a stop before iteration of an engine stream that has no aclose(): {problem}",
            expected=(
                "a stop before iteration closes the engine stream where it has an aclose() and completes "
                "either way; a later iteration yields nothing and results raise StreamIncompleteError"
            ),
            reproduction=script(
                imports,
                [
                    *_BODY,
                    f"manager = {expression}(Stream(), {ROLE!r})",
                    "await asyncio.wait_for(manager.aclose(), 1)",
                    "print([token async for token in manager])  # []",
                    "print(await asyncio.gather(manager.completion(), return_exceptions=True))",
                ],
            ),
        )


# ---------------------------------------------------------------------------------------------- during
class _Blocking:
    """An engine iterator with ``__anext__`` only: two tokens, then (with ``block``) a third request that
    waits until :meth:`release`, then the rest. It counts every request, so that a request made after a
    stop shows."""

    def __init__(self, *, block: bool) -> None:
        self.requests = 0
        self.waiting = False
        self._block = block
        self._released = asyncio.Event()
        self._index = 0

    def __aiter__(self) -> _Blocking:
        return self

    async def __anext__(self) -> str:
        self.requests += 1
        if self._block and self._index == 2 and not self._released.is_set():
            self.waiting = True
            try:
                await self._released.wait()
            finally:
                self.waiting = False
        if self._index >= len(TOKENS):
            raise StopAsyncIteration
        self._index += 1
        return TOKENS[self._index - 1]

    def release(self) -> None:
        self._released.set()


_DURING_BODY: Final = (
    "class Stream:  # no aclose(): an async iterator with __anext__ only",
    "    def __init__(self):",
    "        self.requests = 0",
    "    def __aiter__(self):",
    "        return self",
    "    async def __anext__(self):",
    "        self.requests += 1",
    "        if self.requests == 3:",
    "            await asyncio.Event().wait()  # blocked awaiting its next item",
    f"        return {TOKENS[0]!r}",
)

_DURING_EXPECTED: Final = (
    "a stop during iteration of an engine stream without aclose() ends the consumer's loop at its next step "
    "without an exception, even with the engine blocked, asks the engine for nothing more, and results "
    "raise StreamIncompleteError (the text it carries is SM-28's to judge)"
)


async def _stop_during(target: ManagerTarget, ctx: CheckContext, *, blocked: bool) -> str | None:
    """One stop from another task, with the engine blocked at its third request or the consumer busy in its
    loop body after two tokens; what went wrong, in words, or ``None``."""
    engine = _Blocking(block=blocked)
    manager: Any = construct(target, _Once(engine), ROLE)
    if not callable(getattr(manager, "aclose", None)):
        raise CheckSkipped(NO_ACLOSE)
    consumer = Consumer(ctx, manager, pause_at=None if blocked else 2)

    def there() -> bool:
        return engine.waiting if blocked else consumer.paused

    if not await until(ctx, lambda: there() or consumer.ended, timeout=LATER) or not there():
        raise CheckSkipped(
            f"the consumer never got 2 tokens with the engine's next request pending ({consumer.describe()}; "
            f"{engine.requests} request(s)): no stop to make (see the SM-1 to SM-17 checks)"
        )
    asked = engine.requests
    stopper = ctx.spawn(aclose_of(manager), name="lmstream stopper")
    if blocked:
        if not await until(ctx, lambda: consumer.ended, timeout=PROMPT):
            engine.release()
            await ctx.wait_tasks([stopper, consumer.task], timeout=LATER)
            return f"the loop had not ended {seconds(PROMPT)} after aclose(): it waited for the engine"
    else:
        await ctx.wait_tasks([stopper], timeout=LATER)
        consumer.resume()
        await until(ctx, lambda: consumer.ended, timeout=LATER)
    await ctx.wait_tasks([stopper], timeout=LATER)
    if not stopper.done():
        engine.release()
        return f"aclose() had not returned {seconds(LATER)} later"
    if not stopper.cancelled() and stopper.exception() is not None:
        raised = stopper.exception()
        assert raised is not None
        return f"aclose() raised {describe_exception(raised)}"
    if not consumer.ended:
        engine.release()
        return f"the consumer's loop had not ended {seconds(LATER)} after the stop"
    if consumer.error is not None or consumer.tokens != list(TOKENS[:2]):
        return f"the consumer saw {consumer.describe()}, not the 2 tokens before the stop and a quiet end"
    await ctx.settle()
    if engine.requests > asked:
        return f"the engine was asked for {engine.requests - asked} more item(s) after the stop"
    results = await results_now(ctx, manager)
    return judge_incomplete(results)


class _Once:
    """The engine stream: an async iterable whose one iterator is ``iterator``."""

    def __init__(self, iterator: _Blocking) -> None:
        self._iterator = iterator

    def __aiter__(self) -> _Blocking:
        return self._iterator


@check(
    "SM-24",
    _MANAGER,
    summary="aclose() during iteration of a stream without aclose(): the loop ends, nothing more is read",
)
async def stop_during_iteration_of_a_stream_without_aclose(target: ManagerTarget, ctx: CheckContext) -> None:
    for blocked in (True, False):
        problem = await _stop_during(target, ctx, blocked=blocked)
        if problem is None:
            continue
        where = (
            "the engine blocked awaiting its third item" if blocked else "the consumer busy after 2 tokens"
        )
        imports, expression = ctx.target_reference()
        body = [*_DURING_BODY, "stream = Stream()", f"manager = {expression}(stream, {ROLE!r})"]
        if blocked:
            body += [
                "async def consume():",
                "    async for token in manager:",
                "        print(repr(token))",
                "consumer = asyncio.create_task(consume())",
                "while stream.requests < 3:",
                "    await asyncio.sleep(0)",
                "await asyncio.wait_for(manager.aclose(), 1)",
                "await asyncio.wait_for(consumer, 1)",
            ]
        else:
            body += [
                "async for token in manager:",
                "    if stream.requests == 2:",
                "        await asyncio.wait_for(asyncio.create_task(manager.aclose()), 1)",
            ]
        body += [
            "print('requests:', stream.requests)",
            "print(await asyncio.gather(manager.completion(), return_exceptions=True))",
        ]
        raise CheckFailure(
            f"a stop during iteration of an engine stream that has no aclose(), with {where}: {problem}",
            expected=_DURING_EXPECTED,
            reproduction=script(imports, body),
        )


@check("SM-1", _MANAGER, summary="the tokens of a stream without aclose() pass through unchanged")
async def tokens_of_a_stream_without_aclose_pass_through(target: ManagerTarget, ctx: CheckContext) -> None:
    engine = _Blocking(block=False)
    manager: Any = construct(target, _Once(engine), ROLE)
    tokens: list[object] = []
    problem: str | None = None

    async def consume() -> None:
        async for token in manager:
            tokens.append(token)

    try:
        await ctx.bounded(consume(), what="iterating it", timeout=LATER)
    except CheckFailure as exc:
        problem = exc.observed
    except Exception as exc:
        problem = f"iterating it raised {describe_exception(exc)} after {len(tokens)} token(s)"
    else:
        if tokens != list(TOKENS):
            problem = f"the consumer got {tokens!r}"
    if problem is not None:
        imports, expression = ctx.target_reference()
        raise CheckFailure(
            f"over an engine stream whose iterator has __anext__ only (no aclose()): {problem}",
            expected=f"the tokens {list(TOKENS)!r}, unchanged",
            reproduction=script(
                imports,
                [
                    "class Stream:  # an async iterator with __anext__ only",
                    "    def __init__(self):",
                    f"        self.tokens = {list(TOKENS)!r}",
                    "    def __aiter__(self):",
                    "        return self",
                    "    async def __anext__(self):",
                    "        if not self.tokens:",
                    "            raise StopAsyncIteration",
                    "        return self.tokens.pop(0)",
                    f"manager = {expression}(Stream(), {ROLE!r})",
                    "print([token async for token in manager])",
                ],
            ),
        )


class _Failing(_Blocking):
    """Two tokens, then ``__anext__`` raises :class:`_EngineError`."""

    async def __anext__(self) -> str:
        if self.requests == 2:
            self.requests += 1
            raise _EngineError("the provider dropped the connection")
        return await super().__anext__()


class _EngineError(Exception):
    """The error the engine of :class:`_Failing` raises."""


@check(
    "SM-8", _MANAGER, summary="an error of a stream without aclose() reaches the consumer and every result"
)
async def error_of_a_stream_without_aclose_propagates(target: ManagerTarget, ctx: CheckContext) -> None:
    engine = _Failing(block=False)
    manager: Any = construct(target, _Once(engine), ROLE)
    seen: list[BaseException | None] = []

    async def consume() -> None:
        try:
            async for _ in manager:
                pass
        except _EngineError as exc:
            seen.append(exc)
        else:
            seen.append(None)
        try:
            await manager.completion()
        except _EngineError as exc:
            seen.append(exc)
        else:
            seen.append(None)

    problem: str | None = None
    try:
        await ctx.bounded(consume(), what="iterating it, then completion()", timeout=LATER)
    except CheckFailure as exc:
        problem = exc.observed
    except Exception as exc:
        problem = f"iterating it or completion() raised {describe_exception(exc)}, not the engine's error"
    else:
        if seen[0] is None:
            problem = "the consumer's loop ended normally"
        elif seen[1] is None:
            problem = "the loop raised the engine's error, but completion() returned"
    if problem is not None:
        imports, expression = ctx.target_reference()
        raise CheckFailure(
            f"over an engine stream without aclose() that raises after 2 tokens: {problem}",
            expected="the engine's error, raised from the consumer's loop and from completion() (SM-8)",
            reproduction=script(
                imports,
                [
                    "class Stream:  # an async iterator with __anext__ only",
                    "    def __aiter__(self):",
                    "        return self",
                    "    async def __anext__(self):",
                    "        raise ConnectionError('the provider dropped the connection')",
                    f"manager = {expression}(Stream(), {ROLE!r})",
                    "print(await asyncio.gather(manager.completion(), return_exceptions=True))",
                ],
            ),
        )
