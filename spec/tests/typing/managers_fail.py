"""Negative cases: stream managers and manager factories both checkers must reject at the marked line.

Covers a manager lacking ``completion()``, one whose iteration yields ``bytes``, one whose ``__aiter__``
returns a bare ``AsyncIterable`` (no ``__anext__``: ``async for`` cannot use it), one whose
``completion()`` is synchronous, one returning a completion type other than the annotated one, one whose
``message()`` returns ``str``, one that cannot be awaited; and factories missing the ``lock`` keyword,
typing ``after`` too narrowly, or returning something that is not a manager.

Each offending line carries ``# type: ignore[<mypy code>]`` (see messages_fail.py for how that works).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator
from typing import Any

from lmstream.spec import Completion, ManagerFactory, Message, StreamManager

from ._shapes import Manager, Msg, MyCompletion, OtherCompletion


async def _tokens() -> AsyncIterator[str]:
    yield "hi"


class _Base:
    """Everything a manager needs except ``__aiter__`` and ``completion()``, which each case varies."""

    role = "assistant"

    async def message(self) -> Message:
        return Msg("assistant", "hi")

    def __await__(self) -> Generator[Any, None, Message]:
        return self.message().__await__()


# A manager lacking ``completion()``.
class NoCompletionManager(_Base):
    async def __aiter__(self) -> AsyncIterator[str]:
        yield "hi"


no_completion: StreamManager[Completion] = NoCompletionManager()  # type: ignore[assignment]  # no completion()


# A manager whose iteration yields ``bytes``.
class BytesManager(_Base):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"hi"

    async def completion(self) -> MyCompletion:
        return MyCompletion(Msg("assistant", "hi"))


bytes_manager: StreamManager[Completion] = BytesManager()  # type: ignore[assignment]  # iteration yields bytes


# ``__aiter__`` annotated as returning ``AsyncIterable``: it has no ``__anext__`` (kani's annotation).
class IterableManager(_Base):
    def __aiter__(self) -> AsyncIterable[str]:
        return _tokens()

    async def completion(self) -> MyCompletion:
        return MyCompletion(Msg("assistant", "hi"))


iterable_manager: StreamManager[Completion] = IterableManager()  # type: ignore[assignment]  # not an AsyncIterator


# A synchronous ``completion()``: ``await stream.completion()`` would fail at run time.
class SyncCompletionManager(_Base):
    async def __aiter__(self) -> AsyncIterator[str]:
        yield "hi"

    def completion(self) -> MyCompletion:
        return MyCompletion(Msg("assistant", "hi"))


sync_completion: StreamManager[Completion] = SyncCompletionManager()  # type: ignore[assignment]  # not awaitable


# ``completion()`` returns another completion type than the annotation promises.
class OtherCompletionManager(_Base):
    async def __aiter__(self) -> AsyncIterator[str]:
        yield "hi"

    async def completion(self) -> OtherCompletion:
        return OtherCompletion(Msg("assistant", "hi"))


other_completion: StreamManager[MyCompletion] = OtherCompletionManager()  # type: ignore[assignment]


# ``message()`` returns the text rather than a message.
class StrMessageManager:
    role = "assistant"

    async def __aiter__(self) -> AsyncIterator[str]:
        yield "hi"

    async def completion(self) -> MyCompletion:
        return MyCompletion(Msg("assistant", "hi"))

    async def message(self) -> str:
        return "hi"

    def __await__(self) -> Generator[Any, None, str]:
        return self.message().__await__()


str_message: StreamManager[Completion] = StrMessageManager()  # type: ignore[assignment]  # message() gives str


# A manager that cannot be awaited (no ``__await__``).
class NotAwaitableManager:
    role = "assistant"

    async def __aiter__(self) -> AsyncIterator[str]:
        yield "hi"

    async def completion(self) -> MyCompletion:
        return MyCompletion(Msg("assistant", "hi"))

    async def message(self) -> Message:
        return Msg("assistant", "hi")


not_awaitable: StreamManager[Completion] = NotAwaitableManager()  # type: ignore[assignment]  # `await stream` fails


# A factory missing the ``lock`` keyword (kani's Kani passes ``lock=``).
def factory_without_lock(
    stream_iter: AsyncIterable[str | MyCompletion],
    role: Any,
    *,
    after: Callable[[MyCompletion], Awaitable[object]] | None = None,
) -> Manager[MyCompletion]:
    return Manager(stream_iter, role, after=after)


no_lock: ManagerFactory[MyCompletion] = factory_without_lock  # type: ignore[assignment]  # no lock=


# A factory that types ``after`` too narrowly: callers may pass any callback returning an awaitable.
def factory_narrow_after(
    stream_iter: AsyncIterable[str | MyCompletion],
    role: Any,
    *,
    after: Callable[[MyCompletion], Awaitable[None]] | None = None,
    lock: asyncio.Lock | None = None,
) -> Manager[MyCompletion]:
    return Manager(stream_iter, role, after=after, lock=lock)


narrow_after: ManagerFactory[MyCompletion] = factory_narrow_after  # type: ignore[assignment]  # after


# A factory that returns the message, not a manager.
def factory_returning_message(
    stream_iter: AsyncIterable[str | MyCompletion],
    role: Any,
    *,
    after: Callable[[MyCompletion], Awaitable[object]] | None = None,
    lock: asyncio.Lock | None = None,
) -> Msg:
    return Msg(role, None)


not_a_manager: ManagerFactory[MyCompletion] = factory_returning_message  # type: ignore[assignment]
