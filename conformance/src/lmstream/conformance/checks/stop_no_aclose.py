"""The check of a stop before iteration of an engine stream that has no ``aclose()`` (SM-25 says "awaiting
its aclose() where it has one"): an async iterable whose iterators are plain objects with ``__anext__``
only. The stop must still complete, the iteration be empty and every result raise
:class:`~lmstream.spec.StreamIncompleteError`.
"""

from __future__ import annotations

from typing import Any, Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, script, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamIncompleteError

from ._manager_support import ROLE, TOKENS
from ._registry import check
from ._stop_support import LATER, NO_ACLOSE, aclose_of

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
    try:
        manager: Any = target(stream, ROLE)
    except Exception as exc:
        raise CheckFailure(
            f"calling {target.name}(stream_iter, role) raised {describe_exception(exc)}",
            expected="a manager (ManagerFactory: kani's StreamManager constructor signature)",
        ) from exc
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
