"""Positive cases: stream managers and manager factories both checkers must accept.

Covers a hand-written manager (``role`` as a plain attribute, coroutine methods), a manager whose
``completion()`` returns a ``Future`` rather than a coroutine, the generic ``_shapes.Manager`` as a
``StreamManager`` over its completion type, a factory written as a function, a class as a factory, and a
round-stream factory written as an async generator function.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator
from typing import Any

from lmstream.spec import Completion, ManagerFactory, Message, RoundStreamFactory, StreamManager

from ._shapes import Manager, Msg, MyCompletion


# A hand-written manager: ``role`` is a plain attribute (a read-only Protocol member accepts it), the
# methods are coroutines returning narrower types than the Protocol asks for.
class HandWrittenManager:
    def __init__(self) -> None:
        self.role = "assistant"

    async def __aiter__(self) -> AsyncIterator[str]:
        yield "hi"

    async def completion(self) -> MyCompletion:
        return MyCompletion(Msg("assistant", "hi"))

    async def message(self) -> Msg:
        return (await self.completion()).message

    def __await__(self) -> Generator[Any, None, Msg]:
        return self.message().__await__()


hand_written: StreamManager[MyCompletion] = HandWrittenManager()
hand_written_bare: StreamManager[Completion] = HandWrittenManager()


# ``completion()`` may return any awaitable, not only a coroutine: here a Future shared by all callers.
class FutureManager:
    role = "assistant"

    def __init__(self, result: asyncio.Future[MyCompletion]) -> None:
        self._result = result

    async def __aiter__(self) -> AsyncIterator[str]:
        yield "hi"

    def completion(self) -> asyncio.Future[MyCompletion]:
        return self._result

    async def message(self) -> Message:
        return (await self._result).message

    def __await__(self) -> Generator[Any, None, Message]:
        return self.message().__await__()


future_manager: type[StreamManager[MyCompletion]] = FutureManager


# The generic manager is a StreamManager over whatever completion type it was built with.
generic_manager: type[StreamManager[MyCompletion]] = Manager[MyCompletion]


# A factory written as a function (any callable with the constructor's shape will do).
def make_manager(
    stream_iter: AsyncIterable[str | MyCompletion],
    role: Any,
    *,
    after: Callable[[MyCompletion], Awaitable[object]] | None = None,
    lock: asyncio.Lock | None = None,
) -> Manager[MyCompletion]:
    return Manager(stream_iter, role, after=after, lock=lock)


function_factory: ManagerFactory[MyCompletion] = make_manager
class_factory: ManagerFactory[MyCompletion] = Manager
bare_factory: ManagerFactory[Completion] = Manager


# A round-stream factory (SM-18..20) written as an async generator function.
async def round_stream(
    next_step: Callable[[MyCompletion | None], Awaitable[AsyncIterable[str | MyCompletion] | Message | None]],
    role: Any,
) -> AsyncIterator[StreamManager[MyCompletion]]:
    previous: MyCompletion | None = None
    while True:
        step = await next_step(previous)
        if step is None or isinstance(step, Message):
            return
        manager = Manager(step, role)
        yield manager
        previous = await manager.completion()


rounds: RoundStreamFactory[MyCompletion] = round_stream
