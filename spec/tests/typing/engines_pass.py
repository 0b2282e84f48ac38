"""Positive cases: engines and engine streams both checkers must accept.

Covers an async-generator engine (annotated ``AsyncIterator`` and ``AsyncGenerator``), a hand-written
async iterator class with ``aclose()``, an engine with narrower parameter types than the Protocol's
``Any``, a completion-only engine (ES-11), and ``Engine[Completion]`` for "any engine". A
token-only engine conforms too; what that means for the completion type is in known_limits_pass.py.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from lmstream.spec import Completion, Engine, EngineStream

from ._shapes import Msg, MyCompletion


# An async-generator engine: the usual way to write one.
class GeneratorEngine:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterator[str | MyCompletion]:
        yield "hi"
        yield MyCompletion(Msg("assistant", "hi"), 1, 1)


typed_engine: Engine[MyCompletion] = GeneratorEngine()
any_engine: Engine[Completion] = GeneratorEngine()  # "any engine": the TypeVars have no default
widened_engine: Engine[Completion] = typed_engine  # covariant in the completion type


# The same engine annotated with ``AsyncGenerator``, which is what gives callers ``aclose()`` statically.
class AsyncGeneratorEngine:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncGenerator[str | MyCompletion, None]:
        yield "hi"


agen_engine: Engine[MyCompletion] = AsyncGeneratorEngine()


# A hand-written async iterator class with ``aclose()`` (ES-5), returned by a synchronous ``stream()``.
class TokenIterator:
    def __init__(self, tokens: list[str], completion: MyCompletion) -> None:
        self._items: list[str | MyCompletion] = [*tokens, completion]
        self._closed = False

    def __aiter__(self) -> TokenIterator:
        return self

    async def __anext__(self) -> str | MyCompletion:
        if self._closed or not self._items:
            raise StopAsyncIteration
        return self._items.pop(0)

    async def aclose(self) -> None:
        self._closed = True


class IteratorEngine:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> TokenIterator:
        return TokenIterator(["a", "b"], MyCompletion(Msg("assistant", "ab")))


iterator_stream: EngineStream[MyCompletion] = TokenIterator([], MyCompletion(Msg("assistant", "")))
iterator_engine: Engine[MyCompletion] = IteratorEngine()


# Narrower parameter types than the Protocol's ``Any`` conform: ``Any`` is compatible both ways. The
# ``**hyperparams`` catch-all is required, though (see engines_fail.py).
class NarrowParamsEngine:
    async def stream(
        self, messages: list[Msg], functions: list[str] | None = None, **hyperparams: float
    ) -> AsyncIterator[str | MyCompletion]:
        yield "hi"


narrow_engine: Engine[MyCompletion] = NarrowParamsEngine()


# A completion-only engine (ES-11: no tokens at all, e.g. a bare tool call).
class CompletionOnlyEngine:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterator[MyCompletion]:
        yield MyCompletion(Msg("assistant", None))


completion_only: Engine[MyCompletion] = CompletionOnlyEngine()
