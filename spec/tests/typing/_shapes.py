"""Shared conforming shapes for the typing cases: dataclass messages and completions, two managers.

Not a test by itself; the ``*_pass.py`` and ``*_fail.py`` files import from here. Everything here
conforms (the ``*_pass.py`` files show it); the non-conforming shapes live next to the line that
rejects them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lmstream.spec import Completion, Message


@dataclass(frozen=True)
class Msg:
    """A message: ``role`` is a plain ``str`` (kani uses an enum; both conform)."""

    role: str
    text: str | None


@dataclass(frozen=True)
class MyCompletion:
    """A completion as a frozen dataclass: read-only fields satisfy the Protocol's properties."""

    message: Msg
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class OtherCompletion:
    """A second, unrelated completion type: conforms to ``Completion`` but is not a ``MyCompletion``."""

    message: Msg
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"


class PlainManager:
    """A hand-written manager over ``MyCompletion`` without ``aclose()`` or ``state`` (kani's shape)."""

    role = "assistant"

    async def __aiter__(self) -> AsyncIterator[str]:
        yield "hi"

    async def completion(self) -> MyCompletion:
        return MyCompletion(Msg("assistant", "hi"))

    async def message(self) -> Message:
        return (await self.completion()).message

    def __await__(self) -> Generator[Any, None, Message]:
        return self.message().__await__()


C = TypeVar("C", bound=Completion)


class Manager(Generic[C]):
    """A minimal stream manager, generic in the engine's completion type.

    Shaped like kani's ``StreamManager`` constructor, so the class itself is a ``ManagerFactory``. It is
    deliberately naive (no lock, no error handling): these cases check shapes, not behaviour.
    """

    def __init__(
        self,
        stream_iter: AsyncIterable[str | C],
        role: object,
        *,
        after: Callable[[C], Awaitable[object]] | None = None,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self._stream_iter = stream_iter
        self._role = role
        self._after = after
        self._completion: C | None = None

    @property
    def role(self) -> object:
        return self._role

    async def __aiter__(self) -> AsyncIterator[str]:
        async for item in self._stream_iter:
            if isinstance(item, str):
                yield item
            else:
                self._completion = item

    async def completion(self) -> C:
        async for _ in self:
            pass
        if self._completion is None:
            raise RuntimeError("the engine yielded no completion")
        return self._completion

    async def message(self) -> Message:
        return (await self.completion()).message

    def __await__(self) -> Generator[Any, None, Message]:
        return self.message().__await__()
