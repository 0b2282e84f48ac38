"""Deliberately broken engines, one per way of breaking an engine-stream requirement, and the set of
requirement IDs the suite must fail each one on (exactly that set: nothing else may fail).

Nothing here is a test. Each engine is a class whose instances have ``stream(messages, ...)``; the suite is
given the class, so every check gets a fresh instance. The conforming baseline is :class:`Good`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from typing import Any

from kani.ai_function import AIFunction
from kani.engines.base import BaseCompletion, BaseEngine
from kani.engines.base import Completion as KaniCompletion
from kani.models import ChatMessage as KaniMessage
from kani.models import ChatRole
from typing_extensions import Self

from lmstream.reference import ChatMessage, Completion


def done(text: str | None, prompt_tokens: Any = 3, completion_tokens: Any = 2) -> Completion:
    """A completion (the counts may be made invalid on purpose)."""
    return Completion(ChatMessage("assistant", text), prompt_tokens, completion_tokens)


async def _items(*items: object) -> AsyncGenerator[object, None]:
    for item in items:
        await asyncio.sleep(0)
        yield item


class Good:
    """Conforming: two tokens and their completion."""

    def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[object, None]:
        return _items("Hel", "lo", done("Hello"))


class Yields(Good):
    """Yields a fixed script; subclasses set ``items``."""

    items: tuple[object, ...] = ()

    def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[object, None]:
        return _items(*self.items)


# ------------------------------------------------------------------------------------------------- ES-1
class ReturnsList:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> list[object]:
        return ["Hello", done("Hello")]


class ReturnsSyncGenerator:
    def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> Generator[object, None, None]:
        yield "Hello"
        yield done("Hello")


class ReturnsCoroutine:
    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> list[object]:
        return ["Hello", done("Hello")]


class StreamRaises:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        raise RuntimeError("no API key configured")


class _NoAnext:
    def __aiter__(self) -> object:
        return object()


class AiterWithoutAnext:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> _NoAnext:
        return _NoAnext()


# ------------------------------------------------------------------------------------------------- ES-2
class YieldsBytes(Yields):
    items = ("Hel", b"lo", done("Hel"))


class YieldsNone(Yields):
    items = ("Hel", None, done("Hel"))


class YieldsInt(Yields):
    items = ("Hel", 7, done("Hel"))


class YieldsDict(Yields):
    items = ("Hel", {"text": "lo"}, done("Hel"))


class YieldsException(Yields):
    items = ("Hel", ValueError("rate limited"), done("Hel"))


# ------------------------------------------------------------------------------------------------- ES-3
class TokenAfterCompletion(Yields):
    items = ("Hel", done("Hel"), "lo")


class TwoCompletions(Yields):
    items = ("Hel", done("Hel"), done("Hel"))


# ------------------------------------------------------------------------------------------------- ES-4
class NegativeCount(Yields):
    items = ("Hel", done("Hel", -1, 1))


class StrCount(Yields):
    items = ("Hel", done("Hel", 3, "1"))


class BoolCount(Yields):
    items = ("Hel", done("Hel", True, 1))


# ------------------------------------------------------------------------------------------------- ES-5
class _Iterator:
    """A hand-written stream iterator over ``Hel``, ``lo`` and a completion."""

    def __init__(self) -> None:
        self.items: list[object] = ["Hel", "lo", done("Hello")]

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> object:
        await asyncio.sleep(0)
        if not self.items:
            raise StopAsyncIteration
        return self.items.pop(0)


class NoAclose:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> _Iterator:
        return _Iterator()


class _KeepsYielding(_Iterator):
    async def aclose(self) -> None:
        return None  # forgets to stop: __anext__ goes on


class AcloseKeepsYielding:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> _KeepsYielding:
        return _KeepsYielding()


class _ForgetsInner:
    """Wraps an async generator (the "connection") and never closes it."""

    def __init__(self) -> None:
        self.inner = _items("Hel", "lo", done("Hello"))
        self.closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> object:
        if self.closed:
            raise StopAsyncIteration
        return await self.inner.__anext__()

    async def aclose(self) -> None:
        self.closed = True  # but self.inner stays suspended: its cleanup never runs


class CleanupNotRun:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> _ForgetsInner:
        return _ForgetsInner()


class NestedNotClosed:
    """Iterates an inner async generator without closing it: when the stream is closed, the inner one is
    dropped unfinished and only the garbage collector and the event loop close it, later."""

    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[object, None]:
        async for item in _items("Hel", "lo", done("Hello")):
            yield item


class NestedClosed:
    """The same, done right: the inner generator is closed with the stream (conforming)."""

    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[object, None]:
        async with contextlib.aclosing(_items("Hel", "lo", done("Hello"))) as items:
            async for item in items:
                yield item


class _HangingClose(_Iterator):
    async def aclose(self) -> None:
        await asyncio.Event().wait()


class AcloseHangs:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> _HangingClose:
        return _HangingClose()


# ------------------------------------------------------------------------------------------------- ES-6
class SwallowsCancel:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[object, None]:
        for token in ("Hel", "lo"):
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
            yield token
        yield done("Hello")


class DelaysCancel:
    """Yields one more token after the cancellation, then re-raises it."""

    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[object, None]:
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            yield "one more"
            raise
        yield "Hello"
        yield done("Hello")


# ------------------------------------------------------------------------------------------------- ES-7
class SharedIterator:
    """Returns the same generator from every call."""

    def __init__(self) -> None:
        self.shared: AsyncGenerator[object, None] | None = None

    def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[object, None]:
        if self.shared is None:
            self.shared = _items("Hel", "lo", done("Hello"))
        return self.shared


class _View:
    def __init__(self, shared: AsyncGenerator[object, None]) -> None:
        self.shared = shared

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> object:
        return await self.shared.__anext__()

    async def aclose(self) -> None:
        await self.shared.aclose()


class SharedBehindViews:
    """Returns a new object from every call, all reading the one generator the engine holds."""

    def __init__(self) -> None:
        self.shared = _items("Hel", "lo", done("Hello"))

    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> _View:
        return _View(self.shared)


# ------------------------------------------------------------------------------------------------- ES-8
class NeverEnds:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[object, None]:
        while True:
            await asyncio.sleep(0.005)
            yield "la"


class HangsBeforeFirstItem:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[object, None]:
        await asyncio.Event().wait()
        yield "never"


class RaisesMidStream:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[object, None]:
        yield "Hel"
        await asyncio.sleep(0)
        raise ConnectionResetError("peer closed the connection")


# -------------------------------------------------------------------------------------------- ES-9, ES-10
class TextMismatch(Yields):
    items = ("Hel", "lo", done("Hello!"))


class EmptyTokens(Yields):
    items = ("Hel", "", "lo", done("Hello"))


# ------------------------------------------------------------------------------------------------- hanging
class _Hopeless:
    """Never yields, swallows every cancellation, and hangs in aclose too."""

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> object:
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()

    async def aclose(self) -> None:
        await self.__anext__()


class HangsEverywhere:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> _Hopeless:
        return _Hopeless()


class _Sleeper(_Hopeless):
    async def __anext__(self) -> object:
        time.sleep(30)  # noqa: ASYNC251 - blocks the event loop on purpose: only the supervisor can stop it
        return "late"


class BlocksSynchronously:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> _Sleeper:
        return _Sleeper()


BROKEN: dict[str, tuple[type[object], frozenset[str]]] = {
    name: (cls, frozenset(ids))
    for name, cls, ids in [
        ("returns a list", ReturnsList, {"ES-1"}),
        ("returns a sync generator", ReturnsSyncGenerator, {"ES-1"}),
        ("returns a coroutine", ReturnsCoroutine, {"ES-1"}),
        ("stream() raises", StreamRaises, {"ES-1"}),
        ("__aiter__ without __anext__", AiterWithoutAnext, {"ES-1"}),
        ("yields bytes", YieldsBytes, {"ES-2"}),
        ("yields None", YieldsNone, {"ES-2"}),
        ("yields an int", YieldsInt, {"ES-2"}),
        ("yields a dict", YieldsDict, {"ES-2"}),
        ("yields an exception", YieldsException, {"ES-2"}),
        ("a token after the completion", TokenAfterCompletion, {"ES-3"}),
        ("two completions", TwoCompletions, {"ES-3"}),
        ("a negative token count", NegativeCount, {"ES-4"}),
        ("a str token count", StrCount, {"ES-4"}),
        ("a bool token count", BoolCount, {"ES-4"}),
        ("no aclose", NoAclose, {"ES-5"}),
        ("aclose that keeps yielding", AcloseKeepsYielding, {"ES-5"}),
        ("cleanup not run", CleanupNotRun, {"ES-5"}),
        ("an inner generator left to the garbage collector", NestedNotClosed, {"ES-5"}),
        ("aclose hangs", AcloseHangs, {"ES-5"}),
        ("swallows CancelledError", SwallowsCancel, {"ES-6"}),
        ("delays CancelledError", DelaysCancel, {"ES-6"}),
        ("one iterator for every call", SharedIterator, {"ES-7"}),
        ("new views of one iterator", SharedBehindViews, {"ES-7"}),
        ("never ends", NeverEnds, {"ES-8"}),
        ("hangs before the first item", HangsBeforeFirstItem, {"ES-8"}),
        ("raises mid-stream", RaisesMidStream, {"ES-8"}),
        ("completion text differs from tokens", TextMismatch, {"ES-9"}),
        ("empty tokens", EmptyTokens, {"ES-10"}),
    ]
}
"""Every broken engine: description -> (class, the exact set of requirement IDs it must fail)."""


# ------------------------------------------------------------------------------------------------- kani
def _kani(role: ChatRole, text: str) -> KaniMessage:
    return KaniMessage(role=role, content=text)


class KaniNotStreaming(BaseEngine):
    """A kani engine that does not stream: kani's BaseEngine.stream yields the whole reply (and warns)."""

    max_context_size = 1000

    def prompt_len(  # type: ignore[override]  # kani overloads it sync/async; the sync form is enough here
        self, messages: list[KaniMessage], functions: list[AIFunction] | None = None, **kwargs: Any
    ) -> int:
        return sum(len(m.text or "") for m in messages)

    async def predict(
        self, messages: list[KaniMessage], functions: list[AIFunction] | None = None, **hyperparams: Any
    ) -> KaniCompletion:
        return KaniCompletion(
            _kani(ChatRole.ASSISTANT, messages[-1].text or ""), prompt_tokens=3, completion_tokens=2
        )


class KaniStreaming(KaniNotStreaming):
    """A kani engine that streams its reply (kani's own message and completion types)."""

    async def stream(
        self, messages: list[KaniMessage], functions: list[AIFunction] | None = None, **hyperparams: Any
    ) -> AsyncIterator[str | BaseCompletion]:
        text = messages[-1].text or ""
        for index, word in enumerate(text.split(" ")):
            await asyncio.sleep(0)
            yield word if index == 0 else " " + word
        yield KaniCompletion(_kani(ChatRole.ASSISTANT, text), prompt_tokens=3, completion_tokens=2)


KANI_PROMPT = [_kani(ChatRole.SYSTEM, "Be brief."), _kani(ChatRole.USER, "Say hello to kani")]
