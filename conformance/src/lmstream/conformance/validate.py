"""``validate(stream)``: check a live engine stream as it flows, in an application or an engine's tests.

Modelled on :mod:`wsgiref.validate`: the wrapper sits between a producer and a consumer, passes every
conforming item through unchanged (the very same object), and raises
:class:`~lmstream.spec.StreamProtocolError` naming the requirement at the first violation::

    async for item in validate(engine.stream(messages)):
        ...

What it checks, and when:

* ES-1 when called: ``stream`` is an async iterable whose ``__aiter__()`` gives an iterator.
* ES-2, ES-3, ES-4 on every item, with :func:`lmstream.spec.check_item` (one implementation of the rules).
* ES-5 in :meth:`ValidatedStream.aclose`, judged as the conformance check judges it: the iterator has
  ``aclose()``; once it returned, (a) the stream yields nothing more (one more ``__anext__()`` is made to
  verify that), (b) the async generators of the engine's own code that the stream iterated are closed (not
  left suspended, nor dropped to the garbage collector), and (c) the httpx and aiohttp responses it opened
  (where those libraries are loaded) are closed. Only what the stream does is watched: the task iterating
  it, the tasks it starts and its ``asyncio.to_thread`` calls (see ``lmstream.conformance._closing``);
  the engine's "own code" is that of the stream's package (see ``lmstream.conformance._origins``).
* ES-6 (Python 3.11+, which can see it): a cancellation of the consuming task that arrives while it awaits an
  item must come out as ``CancelledError``; a stream that returns an item instead swallowed it.
* The SHOULD rules ES-9 (the completion's text is the tokens' text) and ES-10 (no empty token) emit an
  :class:`LmstreamWarning`, or raise ``StreamProtocolError`` under ``strict=True``.

ES-7 and ES-8 concern several streams and time; the conformance suite checks them. On an error the wrapped
stream is closed (best effort) before the error is raised.
"""

from __future__ import annotations

import asyncio
import sys
import warnings
import weakref
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Generic, NoReturn, cast

from typing_extensions import Self

from lmstream.spec import CompletionT, StreamProtocolError, check_item, check_stream, describe_item

from ._closing import CloseWatch
from ._origins import Origins

__all__ = ["LmstreamWarning", "ValidatedStream", "validate"]


class LmstreamWarning(UserWarning):
    """A SHOULD or SHOULD NOT rule of the lmstream spec was broken (an error under ``strict=True``)."""


if sys.version_info >= (3, 11):

    def _cancelling(task: asyncio.Task[Any] | None) -> int:
        return 0 if task is None else task.cancelling()

else:  # Python 3.10 does not count cancellation requests: ES-6 cannot be seen live there

    def _cancelling(task: asyncio.Task[Any] | None) -> int:
        return 0


class ValidatedStream(Generic[CompletionT]):
    """The async iterator :func:`validate` returns: the same items, checked. Iterate it once."""

    def __init__(self, stream: AsyncIterable[str | CompletionT], *, strict: bool = False) -> None:
        error = check_stream(stream)
        if error is not None:
            raise error
        iterator = stream.__aiter__()
        if not callable(getattr(type(iterator), "__anext__", None)):
            raise StreamProtocolError(
                "ES-1",
                f"__aiter__() returned {describe_item(iterator)}, which has no __anext__()",
                item=iterator,
            )
        self._iterator: AsyncIterator[str | CompletionT] = iterator
        self._strict = strict
        self._tokens: list[str] = []
        self._completion_seen = False
        self._done = False
        self._watch = CloseWatch(Origins([stream, iterator]))
        weakref.finalize(self, self._watch.stop)  # a stream abandoned unfinished stops being watched

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str | CompletionT:
        if self._done:
            raise StopAsyncIteration
        task = asyncio.current_task()
        cancelling = _cancelling(task)
        self._watch.start()
        try:
            with self._watch.attributed():
                item = await self._iterator.__anext__()
        except BaseException:  # StopAsyncIteration included: the stream is over either way
            self._done = True
            self._watch.stop()
            raise
        if _cancelling(task) > cancelling:
            await self._fail(
                StreamProtocolError(
                    "ES-6",
                    f"the consuming task was cancelled while awaiting the next item, but the stream returned "
                    f"{describe_item(item)} instead of raising CancelledError",
                    item=item,
                )
            )
        error = check_item(item, completion_seen=self._completion_seen)
        if error is not None:
            await self._fail(error)
        if isinstance(item, str):
            if not item:
                await self._should(StreamProtocolError("ES-10", "yielded an empty-string token", item=item))
            self._tokens.append(item)
            return item
        self._completion_seen = True
        text = getattr(getattr(item, "message", None), "text", None)
        joined = "".join(self._tokens)
        if text is not None and text != joined:
            await self._should(
                StreamProtocolError(
                    "ES-9",
                    f"the completion's message text {describe_item(text)} differs from the concatenated "
                    f"tokens {describe_item(joined)}",
                    item=item,
                )
            )
        return item

    async def aclose(self) -> None:
        """Close the wrapped stream (ES-5: its iterator must have ``aclose()``), then verify that it yields
        nothing more."""
        aclose = getattr(self._iterator, "aclose", None)
        if not callable(aclose):
            self._done = True
            raise StreamProtocolError(
                "ES-5",
                f"the stream's iterator {describe_item(self._iterator)} has no aclose()",
                item=self._iterator,
            )
        was_done, self._done = self._done, True
        try:
            with self._watch.attributed():
                await cast(Any, aclose)()
            closing = self._watch.verdict()
        finally:
            self._watch.stop()
        if was_done:
            return
        try:
            extra = await self._iterator.__anext__()
        except StopAsyncIteration:
            pass
        except Exception:  # raising is not yielding: "nothing more" holds
            pass
        else:
            raise StreamProtocolError(
                "ES-5", f"after aclose() the stream yielded {describe_item(extra)}", item=extra
            )
        if not closing.ok:
            raise StreamProtocolError("ES-5", closing.problem(), item=self._iterator)

    async def _fail(self, error: StreamProtocolError) -> NoReturn:
        self._done = True
        self._watch.stop()
        aclose = getattr(self._iterator, "aclose", None)
        if callable(aclose):
            try:
                await cast(Any, aclose)()
            except Exception as exc:  # the violation is what matters; keep the close error as context
                raise error from exc
        raise error

    async def _should(self, error: StreamProtocolError) -> None:
        if self._strict:
            await self._fail(error)
        warnings.warn(LmstreamWarning(str(error)), stacklevel=3)


def validate(
    stream: AsyncIterable[str | CompletionT], *, strict: bool = False
) -> ValidatedStream[CompletionT]:
    """Wrap a live engine stream so that every item is checked as it passes (see the module docstring).

    :param strict: raise, rather than warn, when a SHOULD rule (ES-9, ES-10) is broken.
    :raises StreamProtocolError: ``ES-1`` at once when ``stream`` is not an async iterable.
    """
    return ValidatedStream(stream, strict=strict)
