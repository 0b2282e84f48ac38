"""Deliberately broken stream managers, one per way of breaking a manager requirement (SM-1 to SM-17), and
the set of requirement IDs the manager suite must fail each one on (exactly that set: nothing else may
fail).

Nothing here is a test. :class:`Simple` is a second conforming manager, small and written for this file
(the suite must pass it, so the checks are not fitted to the reference); every broken manager is a
subclass that overrides one hook. ``Simple.from_message`` always builds a plain :class:`Simple`, so only the
SM-17 fixtures change what it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any

from lmstream.spec import (
    StreamConsumedError,
    StreamIncompleteError,
    StreamProtocolError,
    check_item,
    check_stream,
)


@dataclass(frozen=True)
class Said:
    """A message."""

    role: Any
    text: str | None


@dataclass(frozen=True)
class Done:
    """A completion (the one :class:`Simple` builds)."""

    message: Any
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


After = Callable[[Any], Awaitable[object]]


class Simple:
    """A small conforming manager: one async generator reads the engine; results wait on an event.

    Hooks (overridden by the broken managers below): :meth:`source`, :meth:`is_token`, :meth:`hand_out`,
    :meth:`accept`, :meth:`build`, :meth:`take_lock`, :meth:`drop_lock`, :meth:`finish`, :meth:`failed`,
    :meth:`to_consumer`, :meth:`left_early`, :meth:`cancelled`, :meth:`propagate_cancellation`,
    :meth:`refused`, :meth:`publish`, :meth:`result`.
    """

    def __init__(
        self, stream_iter: AsyncIterable[Any], role: Any, *, after: After | None = None, lock: Any = None
    ) -> None:
        self._role = role
        self._stream = stream_iter
        self._after = after
        self._lock: asyncio.Lock | None = lock
        self._claimed = False
        self.held = False
        self._done = asyncio.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self.text: list[str] = []

    @classmethod
    def from_message(cls, message: Any) -> Simple:
        """A manager over a finished message (SM-17)."""
        return Simple(_finished(message), message.role)

    @property
    def role(self) -> Any:
        return self._role

    # ------------------------------------------------------------------ the application's side
    def __aiter__(self) -> AsyncIterator[str]:
        if self._claimed:
            raise StreamConsumedError()
        self._claimed = True
        gen = self._run()
        with contextlib.suppress(StopIteration):  # to its priming yield: a close before any step is seen
            gen.asend(None).send(None)
        return gen

    async def completion(self) -> Any:
        if not self._done.is_set():
            if self._claimed:
                await self._done.wait()
            else:
                async for _ in self:
                    pass
        return self.result()

    async def message(self) -> Any:
        return (await self.completion()).message

    def __await__(self) -> Generator[Any, None, Any]:
        return self.message().__await__()

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._result

    # ------------------------------------------------------------------ the stream
    async def _run(self) -> AsyncGenerator[Any, None]:
        iterator: Any = None
        completion: Any = None
        try:
            yield None  # the priming step, taken by __aiter__
        except BaseException:  # closed or finalized before its first step
            await self.left_early(None)
            raise
        try:
            refused = self.refused(self._stream)  # ES-1 (SM-30)
            if refused is not None:
                raise refused
            self.held = await self.take_lock()
            iterator = aiter(self.source(self._stream))
            while True:
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    break
                if completion is None and self.is_token(item):
                    token = self.hand_out(item)
                    if token is not None:
                        self.text.append(item if isinstance(item, str) else repr(item))
                        yield token
                    continue
                if self.accept(item, completion is not None):
                    completion = item
            if completion is None:
                completion = self.build(self._role, "".join(self.text))
            await self.finish(completion)
        except GeneratorExit:
            await self.left_early(iterator)
            raise
        except asyncio.CancelledError:
            await self.cancelled(iterator)
            if self.propagate_cancellation():
                raise
        except BaseException as exc:
            await self.failed(iterator, exc)
            raise self.to_consumer(exc)  # noqa: B904 - the same object, re-raised (unless a hook wraps it)
        finally:
            if self.held:
                self.drop_lock()

    async def finish(self, completion: Any) -> None:
        """The engine stream ended normally: run ``after``, then publish."""
        if self._after is not None:
            await self._after(completion)
        self.publish(result=completion)

    def publish(self, *, result: Any = None, error: BaseException | None = None) -> None:
        self._result, self._error = result, error
        self._done.set()

    async def close(self, iterator: Any) -> None:
        """Close the engine stream (its iterator, or the stream if it was never iterated)."""
        target = iterator if iterator is not None else self._stream
        aclose = getattr(target, "aclose", None)
        if aclose is not None:
            await aclose()

    # ------------------------------------------------------------------ hooks
    def refused(self, stream: object) -> StreamProtocolError | None:
        """The error for a stream that is not async-iterable (ES-1), or ``None``."""
        return check_stream(stream)

    def source(self, stream: AsyncIterable[Any]) -> AsyncIterable[Any]:
        return stream

    def is_token(self, item: object) -> bool:
        return isinstance(item, str)

    def hand_out(self, token: Any) -> Any:
        """The token the consumer gets (``None``: none)."""
        return token

    def to_consumer(self, error: BaseException) -> BaseException:
        """What the consumer's loop raises when the stream fails with ``error``."""
        return error

    def propagate_cancellation(self) -> bool:
        return True

    def accept(self, item: object, completion_seen: bool) -> bool:
        """Whether a non-token item is the completion; raises for a violation."""
        error = check_item(item, completion_seen=completion_seen)
        if error is not None:
            raise error
        return True

    def build(self, role: Any, text: str) -> Any:
        return Done(Said(role, text))

    async def take_lock(self) -> bool:
        if self._lock is None:
            return False
        await self._lock.acquire()
        return True

    def drop_lock(self) -> None:
        assert self._lock is not None
        self._lock.release()

    async def failed(self, iterator: Any, error: BaseException) -> None:
        try:
            with contextlib.suppress(Exception):  # a failing close never replaces the error (SM-31)
                await self.close(iterator)
        finally:
            self.publish(error=error)

    async def left_early(self, iterator: Any) -> None:
        try:
            with contextlib.suppress(Exception):
                await self.close(iterator)
        finally:
            self.publish(error=StreamIncompleteError("".join(self.text)))

    async def cancelled(self, iterator: Any) -> None:
        try:
            with contextlib.suppress(Exception):
                await self.close(iterator)
        finally:
            self.publish(error=StreamIncompleteError("".join(self.text)))


async def _finished(message: Any) -> AsyncGenerator[Any, None]:
    if message.text:
        yield message.text
    yield Done(message)


# ------------------------------------------------------------------------------------------------- SM-1
class StripsTokens(Simple):
    def hand_out(self, token: Any) -> Any:
        return token.strip()


class DropsEmptyTokens(Simple):
    def hand_out(self, token: Any) -> Any:
        return token or None


# ------------------------------------------------------------------------------------------------- SM-2
async def _one_ahead(stream: AsyncIterable[Any]) -> AsyncGenerator[Any, None]:
    """Reads one item ahead of its consumer (and closes the stream it reads)."""
    iterator = aiter(stream)
    try:
        try:
            held = await anext(iterator)
        except StopAsyncIteration:
            return
        while True:
            try:
                following = await anext(iterator)
            except StopAsyncIteration:
                yield held
                return
            yield held
            held = following
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


class ReadsAhead(Simple):
    def source(self, stream: AsyncIterable[Any]) -> AsyncIterable[Any]:
        return _one_ahead(stream)


# ------------------------------------------------------------------------------------------------- SM-3
class PlainRuntimeError(Simple):
    """Raises kani's plain RuntimeError on a second iteration."""

    def __aiter__(self) -> AsyncIterator[str]:
        try:
            return super().__aiter__()
        except StreamConsumedError:
            raise RuntimeError("This stream has already been consumed.") from None


async def _nothing() -> AsyncGenerator[str, None]:
    return
    yield  # pragma: no cover - makes this an async generator


class EmptySecondIteration(Simple):
    def __aiter__(self) -> AsyncIterator[str]:
        try:
            return super().__aiter__()
        except StreamConsumedError:
            return _nothing()


# ------------------------------------------------------------------------------------------------- SM-4
class StripsBuiltText(Simple):
    """kani's bug: the built message's text is stripped."""

    def build(self, role: Any, text: str) -> Any:
        return Done(Said(role, text.strip()))


class CountsOnBuilt(Simple):
    def build(self, role: Any, text: str) -> Any:
        return Done(Said(role, text), 0, 0)


class CopiesEngineCompletion(Simple):
    """Returns a copy of the engine's completion (once, so every caller gets the same copy)."""

    _copy: Any = None

    def result(self) -> Any:
        found = super().result()
        if isinstance(found, Done):
            return found
        if self._copy is None:
            self._copy = _Copy(found)
        return self._copy


class _Copy:
    """A copy of a completion, attribute by attribute."""

    def __init__(self, of: Any) -> None:
        self.message = of.message
        self.prompt_tokens = of.prompt_tokens
        self.completion_tokens = of.completion_tokens


# ------------------------------------------------------------------------------------------------- SM-5
class MessageIsACopy(Simple):
    """message() returns a copy of completion().message (the same copy every time)."""

    _copy: Any = None

    async def message(self) -> Any:
        found = (await self.completion()).message
        if self._copy is None:
            self._copy = dataclasses.replace(found)
        return self._copy


# ------------------------------------------------------------------------------------------------- SM-6
class ResultNeedsIteration(Simple):
    async def completion(self) -> Any:
        if not self._claimed:
            raise RuntimeError("iterate the stream before asking for its result")
        return await super().completion()


class ResultBeforeIterationHangs(Simple):
    """Waits for someone else to iterate (nobody will)."""

    async def completion(self) -> Any:
        await self._done.wait()
        return self.result()


# ------------------------------------------------------------------------------------------------- SM-7
class CopiesEachCall(Simple):
    """Every completion() call returns a new copy of the built completion."""

    def result(self) -> Any:
        found = super().result()
        return dataclasses.replace(found) if isinstance(found, Done) else found


# ------------------------------------------------------------------------------------------------- SM-8
class HangsOnEngineError(Simple):
    """kani's bug: an engine error (here, any OSError) reaches the consumer but never the waiters."""

    async def failed(self, iterator: Any, error: BaseException) -> None:
        if not isinstance(error, OSError):
            await super().failed(iterator, error)


class WrapsEngineError(Simple):
    """The consumer and the waiters get a wrapper of the engine's error, not the error itself."""

    def to_consumer(self, error: BaseException) -> BaseException:
        return self._error if isinstance(error, OSError) and self._error is not None else error

    async def failed(self, iterator: Any, error: BaseException) -> None:
        if isinstance(error, OSError):
            wrapper = RuntimeError("the engine failed")
            wrapper.__cause__ = error
            error = wrapper
        await super().failed(iterator, error)


class GivesWaitersTheEnginesCancellation(Simple):
    """SM-8 (its rationale): an engine's own CancelledError (this one tells it by its message: no
    cancellation of a consumer's task in the checks carries one) is treated as an engine error, so every
    waiter's task ends cancelled, though nobody cancelled it."""

    async def cancelled(self, iterator: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, asyncio.CancelledError) and error.args:
            await self.close(iterator)
            self.publish(error=error)
            return
        await super().cancelled(iterator)


# ------------------------------------------------------------------------------------------------- SM-9
class PassesBadItems(Simple):
    """Hands every item that is not a completion to the consumer, as if it were a token."""

    def is_token(self, item: object) -> bool:
        return isinstance(item, str) or check_item(item) is not None


class TypeErrorOnBadItems(Simple):
    """kani's behaviour: a TypeError, not a StreamProtocolError."""

    def accept(self, item: object, completion_seen: bool) -> bool:
        error = check_item(item, completion_seen=completion_seen)
        if error is not None and error.requirement_id == "ES-2":
            raise TypeError(f"expected str or a completion, got {type(item)!r}")
        return super().accept(item, completion_seen)


class IgnoresItemsAfterCompletion(Simple):
    def accept(self, item: object, completion_seen: bool) -> bool:
        return False if completion_seen else super().accept(item, completion_seen)


# ------------------------------------------------------------------------------------------------ SM-10
class HangsOnEarlyStop(Simple):
    """kani's bug: a consumer that leaves early strands the waiters."""

    async def left_early(self, iterator: Any) -> None:
        await self.close(iterator)


class LeavesEngineOpen(Simple):
    """Releases everyone on an early stop, but never closes the engine stream."""

    async def left_early(self, iterator: Any) -> None:
        self.publish(error=StreamIncompleteError("".join(self.text)))


class WrongIncompleteText(Simple):
    async def left_early(self, iterator: Any) -> None:
        await self.close(iterator)
        self.publish(error=StreamIncompleteError(""))


# ------------------------------------------------------------------------------------------------ SM-11
class SwallowsCancellation(Simple):
    """Ends the consumer's loop normally when its task is cancelled."""

    def propagate_cancellation(self) -> bool:
        return False


class HangsOnCancellation(Simple):
    async def cancelled(self, iterator: Any) -> None:
        await self.close(iterator)


# ------------------------------------------------------------------------------------------------ SM-12
class IgnoresLock(Simple):
    async def take_lock(self) -> bool:
        return False


class LocksOnlyBriefly(Simple):
    """Takes the lock and gives it back at once, before reading."""

    async def take_lock(self) -> bool:
        if self._lock is not None:
            async with self._lock:
                pass
        return False


class KeepsLockOnError(Simple):
    """Forgets to release the lock when the stream fails (not when it is left early)."""

    def drop_lock(self) -> None:
        if self._error is None or isinstance(self._error, StreamIncompleteError):
            super().drop_lock()


async def _relock(manager: Simple) -> None:
    """Give the lock up and take it again: another task may slip in between (and it is two acquisitions)."""
    if manager.held:
        manager.drop_lock()
        manager.held = await manager.take_lock()


class RelocksOnEarlyStop(Simple):
    async def left_early(self, iterator: Any) -> None:
        await _relock(self)
        await super().left_early(iterator)


class RelocksOnCancellation(Simple):
    async def cancelled(self, iterator: Any) -> None:
        await _relock(self)
        await super().cancelled(iterator)


# ------------------------------------------------------------------------------------------------ SM-13
class AfterOnError(Simple):
    """Calls after with a completion of the text so far when the engine fails."""

    async def failed(self, iterator: Any, error: BaseException) -> None:
        if self._after is not None and isinstance(error, (OSError, StreamProtocolError)):
            await self._after(self.build(self.role, "".join(self.text)))
        await super().failed(iterator, error)


class AfterOnEveryPath(Simple):
    """Calls after with a completion of the text so far even when the consumer left early."""

    async def left_early(self, iterator: Any) -> None:
        if self._after is not None:
            await self._after(self.build(self.role, "".join(self.text)))
        await super().left_early(iterator)


class AfterAfterRelease(Simple):
    """Publishes the result first, then calls after."""

    async def finish(self, completion: Any) -> None:
        self.publish(result=completion)
        await asyncio.sleep(0)
        if self._after is not None:
            await self._after(completion)


class AfterErrorSwallowed(Simple):
    async def finish(self, completion: Any) -> None:
        with contextlib.suppress(Exception):
            if self._after is not None:
                await self._after(completion)
        self.publish(result=completion)


# ------------------------------------------------------------------------------------------------ SM-14
class NominalCompletion(Simple):
    """Accepts only its own completion class (kani's isinstance check on BaseCompletion)."""

    def accept(self, item: object, completion_seen: bool) -> bool:
        if check_item(item, completion_seen=completion_seen) is None and not isinstance(item, Done):
            raise TypeError(f"expected str or Done, got {type(item)!r}")
        return super().accept(item, completion_seen)


# ------------------------------------------------------------------------------------------------ SM-15
_KEEPALIVES: set[asyncio.Task[object]] = set()


class LeavesTaskRunning(Simple):
    """Starts a keep-alive task with the stream and never stops it."""

    async def take_lock(self) -> bool:
        task = asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="simple keepalive")
        _KEEPALIVES.add(task)
        task.add_done_callback(_KEEPALIVES.discard)
        return await super().take_lock()


class NeverAwaits(Simple):
    """Forgets an await when the stream completes: a coroutine never awaited."""

    def publish(self, *, result: Any = None, error: BaseException | None = None) -> None:
        if result is not None:
            forgotten = asyncio.sleep(0)  # the bug on purpose: created, never awaited
            del forgotten
        super().publish(result=result, error=error)


# ------------------------------------------------------------------------------------------------ SM-16
class RoleAsString(Simple):
    @property
    def role(self) -> Any:
        return str(self._role)


# ------------------------------------------------------------------------------------------------ SM-17
class _FromMessage(Simple):
    @classmethod
    def from_message(cls, message: Any) -> Simple:
        return cls(cls.finished(message), message.role)

    @staticmethod
    async def finished(message: Any) -> AsyncGenerator[Any, None]:
        async for item in _finished(message):
            yield item


class SplitsFinishedText(_FromMessage):
    @staticmethod
    async def finished(message: Any) -> AsyncGenerator[Any, None]:
        for char in message.text or "":
            yield char
        yield Done(message)


class EmptyTokenForEmptyText(_FromMessage):
    """kani's DummyStream: a message whose content is not None yields its text, even when empty."""

    @staticmethod
    async def finished(message: Any) -> AsyncGenerator[Any, None]:
        if message.text is not None:
            yield message.text
        yield Done(message)


class CopiesFinishedMessage(_FromMessage):
    @staticmethod
    async def finished(message: Any) -> AsyncGenerator[Any, None]:
        if message.text:
            yield message.text
        yield Done(dataclasses.replace(message))


class LosesTheEnginesTraceback(Simple):
    """SM-35: a waiter gets the engine's error with a traceback that starts at the manager."""

    def result(self) -> Any:
        if self._error is not None:
            raise self._error.with_traceback(None)
        return self._result


SIMPLE_MISSES: frozenset[str] = frozenset(
    {"failing_close_is_the_cause_of_the_error", "finished_manager_is_freed_without_the_collector"}
)
"""The checks :class:`Simple` fails, as most small managers would: two SHOULDs of what an error keeps. It
drops a failing close instead of making it the error's ``__cause__`` (SM-35), and the errors it keeps hold its
frames, which hold it (SM-36). Every broken manager built on it fails them too; the check tests set these
failures aside, and test that Simple fails exactly these."""


BROKEN: dict[str, tuple[type[Simple], frozenset[str]]] = {
    name: (cls, frozenset(ids))
    for name, cls, ids in [
        ("strips tokens", StripsTokens, {"SM-1"}),
        ("drops empty tokens", DropsEmptyTokens, {"SM-1"}),
        ("reads one item ahead", ReadsAhead, {"SM-2"}),
        ("a plain RuntimeError on a second iteration", PlainRuntimeError, {"SM-3"}),
        ("an empty second iteration", EmptySecondIteration, {"SM-3"}),
        ("strips the built text", StripsBuiltText, {"SM-4"}),
        ("token counts on a built completion", CountsOnBuilt, {"SM-4"}),
        ("copies the engine's completion", CopiesEngineCompletion, {"SM-4"}),
        ("message() is a copy", MessageIsACopy, {"SM-5"}),
        ("results need iteration first", ResultNeedsIteration, {"SM-6"}),
        ("results before iteration hang", ResultBeforeIterationHangs, {"SM-6"}),
        ("a new copy for every call", CopiesEachCall, {"SM-7"}),
        ("hangs waiters on an engine error", HangsOnEngineError, {"SM-8"}),
        ("wraps the engine's error", WrapsEngineError, {"SM-8"}),
        ("gives waiters the engine's own CancelledError", GivesWaitersTheEnginesCancellation, {"SM-8"}),
        ("passes bad items on", PassesBadItems, {"SM-9"}),
        ("TypeError for bad items", TypeErrorOnBadItems, {"SM-9"}),
        ("ignores items after the completion", IgnoresItemsAfterCompletion, {"SM-9"}),
        ("hangs waiters on an early stop", HangsOnEarlyStop, {"SM-10"}),
        ("leaves the engine open on an early stop", LeavesEngineOpen, {"SM-10"}),
        ("wrong text in StreamIncompleteError", WrongIncompleteText, {"SM-10"}),
        # SM-8 too: an engine that raises CancelledError of itself is cancelled, not in error, and this
        # manager swallows that cancellation as it swallows the consumer's.
        ("swallows cancellation", SwallowsCancellation, {"SM-8", "SM-11"}),
        ("hangs waiters on cancellation", HangsOnCancellation, {"SM-11"}),
        ("ignores the lock", IgnoresLock, {"SM-12"}),
        ("holds the lock only briefly", LocksOnlyBriefly, {"SM-12"}),
        ("keeps the lock on an error", KeepsLockOnError, {"SM-12"}),
        ("gives the lock up and takes it again on an early stop", RelocksOnEarlyStop, {"SM-12"}),
        ("gives the lock up and takes it again on cancellation", RelocksOnCancellation, {"SM-12"}),
        ("after on an engine error", AfterOnError, {"SM-13"}),
        ("after on an early stop", AfterOnEveryPath, {"SM-13"}),
        ("after once the result is out", AfterAfterRelease, {"SM-13"}),
        ("swallows after's error", AfterErrorSwallowed, {"SM-13"}),
        ("accepts only its own completion class", NominalCompletion, {"SM-14"}),
        ("leaves a task running", LeavesTaskRunning, {"SM-15"}),
        ("a coroutine never awaited", NeverAwaits, {"SM-15"}),
        ("role as a string", RoleAsString, {"SM-16"}),
        ("a finished text split into characters", SplitsFinishedText, {"SM-17"}),
        ("an empty token for an empty finished text", EmptyTokenForEmptyText, {"SM-17"}),
        ("a copy of the finished message", CopiesFinishedMessage, {"SM-17"}),
        ("loses the engine's traceback", LosesTheEnginesTraceback, {"SM-35"}),
    ]
}
"""Every broken manager: description -> (class, the exact set of requirement IDs it must fail)."""
