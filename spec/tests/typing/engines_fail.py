"""Negative cases: engines and engine streams both checkers must reject at the marked line.

Covers a stream yielding ``int``, ``bytes`` or ``None`` (ES-2); a synchronous ``stream()`` returning a
list, a plain generator and a bare coroutine (ES-1); an engine with no ``stream``; a ``stream()`` without
the ``functions`` parameter or the ``**hyperparams`` catch-all; and an engine whose completion type is not
the one the annotation promises.

Each offending line carries ``# type: ignore[<mypy code>]``. mypy's ``warn_unused_ignores`` (strict) and
pyright's ``reportUnnecessaryTypeIgnoreComment = "error"`` (pyproject) fail if the error ever disappears.
``test_typing_cases.py`` strips the markers and shows both checkers report each line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from lmstream.spec import Completion, Engine, EngineStream

from ._shapes import Msg, MyCompletion, OtherCompletion


async def _tokens() -> AsyncIterator[str]:
    yield "hi"


# ES-2: a stream yielding ``int``.
class IntEngine:
    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[int]:
        yield 1


int_engine: Engine[Completion] = IntEngine()  # type: ignore[assignment]  # yields int, not str | Completion


# ES-2: a stream yielding ``bytes`` (an undecoded HTTP chunk).
class BytesEngine:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterator[str | bytes]:
        yield b"hi"


bytes_engine: Engine[Completion] = BytesEngine()  # type: ignore[assignment]  # yields bytes


# ES-2: a stream that may yield ``None`` (a provider's empty delta passed through).
class NoneEngine:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterator[str | None]:
        yield None


none_engine: Engine[Completion] = NoneEngine()  # type: ignore[assignment]  # yields None


# ES-1: a synchronous ``stream()`` returning a list.
class ListEngine:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> list[str]:
        return ["hi"]


list_engine: Engine[Completion] = ListEngine()  # type: ignore[assignment]  # a list is not an async iterable


# ES-1: a plain (synchronous) generator.
class SyncGeneratorEngine:
    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> Iterator[str]:
        yield "hi"


sync_gen_engine: Engine[Completion] = SyncGeneratorEngine()  # type: ignore[assignment]  # not async


# ES-1: a bare coroutine: ``async def`` without ``yield`` returns a coroutine, not a stream.
class CoroutineEngine:
    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[str]:
        return _tokens()


coroutine_engine: Engine[Completion] = CoroutineEngine()  # type: ignore[assignment]  # stream() must not be awaited


# No ``stream`` at all (misspelt).
class NoStreamEngine:
    async def strem(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[str]:
        yield "hi"


no_stream: Engine[Completion] = NoStreamEngine()  # type: ignore[assignment]  # no member "stream"


# ``stream()`` without the ``**hyperparams`` catch-all: callers may pass any hyperparameter.
class NoHyperparamsEngine:
    async def stream(
        self, messages: Any, functions: Any = None, *, temperature: float = 1.0
    ) -> AsyncIterator[str]:
        yield "hi"


no_hyperparams: Engine[Completion] = NoHyperparamsEngine()  # type: ignore[assignment]  # needs **hyperparams


# ``stream()`` without the ``functions`` parameter: kani passes it positionally.
class NoFunctionsEngine:
    async def stream(self, messages: Any, **hyperparams: Any) -> AsyncIterator[str]:
        yield "hi"


no_functions: Engine[Completion] = NoFunctionsEngine()  # type: ignore[assignment]  # needs functions=None


# The completion type the annotation promises is not the one the engine yields.
class OtherCompletionEngine:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterator[str | OtherCompletion]:
        yield OtherCompletion(Msg("assistant", ""))


wrong_completion: Engine[MyCompletion] = OtherCompletionEngine()  # type: ignore[assignment]  # yields Other


# The stream type itself: a list is not an ``EngineStream``.
list_stream: EngineStream[Completion] = ["hi"]  # type: ignore[assignment]  # no __aiter__
