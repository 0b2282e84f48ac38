"""The reference stream manager: every manager requirement of lmstream (SM-1 to SM-17, SM-21 to SM-28).

How it works, in one paragraph. Iterating the manager returns one async generator, :meth:`_iterate`, which
takes the lock, reads the engine stream and hands each token on. Tokens are accumulated in a
:class:`io.StringIO` whose ``write`` doubles as the type check: a non-``str`` item makes it raise, and only
then does the slow path look at what the item is (a completion, or an ES-2/ES-3 violation). Results live on
the manager; waiters in other tasks block on an :class:`asyncio.Event` created only when someone waits. A
stop (:meth:`StreamManager.aclose`) interrupts the task that is blocked in the engine (a cancel that is
undone afterwards), or, when the consumer is busy in its own loop body, closes the engine itself; either
way the text buffer is snapshotted and closed first, so no token is handed on after a stop.

Every exit path funnels into :meth:`StreamManager._finish_early` (consumer left, cancellation, stop),
:meth:`StreamManager._fail` (engine error, protocol error) or the normal end at the bottom of
:meth:`StreamManager._iterate`, each of which closes what must be closed, releases the lock once and
publishes the one result. ``__aiter__`` runs the iterator to a priming ``yield`` before handing it out,
so that the event loop's async-generator finalizer (or an explicit ``aclose()``) runs that exit path
even for an iterator abandoned before its first step.
"""

from __future__ import annotations

import asyncio
import enum
import io
import weakref
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

from lmstream.spec import (
    Completion,
    Message,
    StreamConsumedError,
    StreamIncompleteError,
    StreamProtocolError,
    StreamState,
    check_item,
    check_stream,
)

from . import _cancel
from .messages import Completion as BuiltCompletion
from .messages import build_completion

__all__ = ["StreamManager"]

C = TypeVar("C", bound=Completion, covariant=True)
E = TypeVar("E", bound=Completion)


class _Phase(enum.Enum):
    """What the stream is doing now (finer than :class:`StreamState`, and private)."""

    IDLE = 0  # nothing requested yet
    LOCKING = 1  # awaiting the lock
    READING = 2  # reading the engine stream (or handing a token to the consumer)
    ENDING = 3  # the engine stream ended normally: building the completion, running after
    CLEANUP = 4  # an early end or a failure is closing the engine and releasing the lock
    DONE = 5  # the result is published


def _refuse_token(item: object) -> int:
    """Stands in for the buffer's ``write`` once the completion arrived: nothing may follow it (ES-3)."""
    raise ValueError("no item may follow the completion")


class StreamManager(Generic[C]):
    """Wraps one engine stream for the application: ``async for token in manager``, then
    ``await manager.completion()`` / ``await manager.message()`` / ``await manager``.

    The constructor has kani's signature, so the class satisfies :class:`lmstream.spec.ManagerFactory` and
    replaces ``kani.streaming.StreamManager``. The manager keeps every requirement of the lmstream spec;
    the ones kani's manager does not keep are noted where they apply.

    :param stream_iter: the engine stream, an async iterable of ``str`` tokens optionally closed by one
        completion (ES-1 to ES-4). Checked at once for ES-1.
    :param role: the role of the message this stream produces (SM-16).
    :param after: awaited exactly once with the final completion, after the engine stream ended normally
        and before the consumer's loop ends or any waiter is released; never on error, early stop,
        cancellation or stop (SM-13).
    :param lock: held from before the first item is requested until the stream has ended, and released
        exactly once on every path (SM-12).
    :param build_completion: builds the completion of a stream that ended without one, from the role and
        the exact text (SM-4). Defaults to :func:`~lmstream.reference.build_completion`, in which case the
        completion type is the engine's or :class:`~lmstream.reference.Completion`.
    :raises lmstream.spec.StreamProtocolError: ES-1, if ``stream_iter`` is not an async iterable.
    """

    __slots__ = (
        "__weakref__",
        "_after",
        "_buffer",
        "_build",
        "_cancel_base",
        "_claimed",
        "_closer",
        "_done",
        "_error",
        "_error_tb",
        "_gen_ref",
        "_iterator",
        "_lock",
        "_lock_held",
        "_phase",
        "_result",
        "_role",
        "_source",
        "_starter",
        "_state",
        "_stop_cancel",
        "_stop_reason",
        "_stop_text",
    )

    @overload
    def __init__(
        self: StreamManager[BuiltCompletion],
        stream_iter: AsyncIterable[str],
        role: Any,
        *,
        after: Callable[[BuiltCompletion], Awaitable[object]] | None = None,
        lock: asyncio.Lock | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: StreamManager[E | BuiltCompletion],
        stream_iter: AsyncIterable[str | E],
        role: Any,
        *,
        after: Callable[[E | BuiltCompletion], Awaitable[object]] | None = None,
        lock: asyncio.Lock | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: StreamManager[E],
        stream_iter: AsyncIterable[str | E],
        role: Any,
        *,
        after: Callable[[E], Awaitable[object]] | None = None,
        lock: asyncio.Lock | None = None,
        build_completion: Callable[[Any, str], E],
    ) -> None: ...

    def __init__(
        self,
        stream_iter: AsyncIterable[str | Any],
        role: Any,
        *,
        after: Callable[[Any], Awaitable[object]] | None = None,
        lock: asyncio.Lock | None = None,
        build_completion: Callable[[Any, str], Any] = build_completion,
    ) -> None:
        if not callable(getattr(type(stream_iter), "__aiter__", None)):  # ES-1; the full test only on failure
            error = check_stream(stream_iter)
            if error is not None:
                raise error
        self._role = role
        # Any, not object: the hot loop yields its items as they are; a cast() would cost a call per token.
        self._source: AsyncIterable[Any] | None = stream_iter
        self._after = after
        self._lock = lock
        self._build = build_completion
        self._state = StreamState.PENDING
        self._phase = _Phase.IDLE
        self._claimed = False
        self._lock_held = False
        self._gen_ref: weakref.ref[AsyncGenerator[str, None]] | None = None
        self._iterator: AsyncIterator[Any] | None = None
        self._buffer: io.StringIO | None = None
        # The task that began the iteration, weakly (it may reference the iterator, which must not be kept
        # alive through us, SM-10), and its cancelling() count then: see _interrupt.
        self._starter: weakref.ref[asyncio.Task[Any]] | None = None
        self._cancel_base = 0
        # The task running _finish_early's cleanup, while it runs (a stop from there cannot wait for it).
        self._closer: asyncio.Task[Any] | None = None
        self._stop_reason: StreamState | None = None
        self._stop_cancel: asyncio.Task[Any] | None = None
        self._stop_text = ""
        self._done: asyncio.Event | None = None
        self._result: C | None = None
        self._error: BaseException | None = None
        self._error_tb: TracebackType | None = None

    @classmethod
    def from_message(cls, message: Message) -> StreamManager[BuiltCompletion]:
        """A manager over an already finished message (kani's ``DummyStream``): SM-17.

        It yields the message's text as one token (none when the text is ``None`` or empty), and
        ``completion()`` returns a :class:`~lmstream.reference.Completion` whose ``message`` is ``message``
        itself; ``role`` is the message's role.
        """
        return StreamManager(_finished(message), message.role)

    # ------------------------------------------------------------------ what the application sees
    @property
    def role(self) -> Any:
        """The role this manager was built with (SM-16)."""
        return self._role

    @property
    def state(self) -> StreamState:
        """Where the stream stands now (SM-27): pending, streaming, then completed, failed, incomplete or
        stopped, moving only along :data:`lmstream.spec.STATE_TRANSITIONS`."""
        return self._state

    def __aiter__(self) -> AsyncIterator[str]:
        """Iterate over the engine's tokens, unchanged, without read-ahead (SM-1, SM-2).

        :raises lmstream.spec.StreamConsumedError: on a second iteration, or after ``completion()``,
            ``message()`` or ``await`` consumed the stream (SM-3). A stream stopped before it was iterated
            iterates as empty (SM-25).
        """
        if self._claimed:
            raise StreamConsumedError()
        self._claimed = True
        gen = self._iterate()
        # Run it to its priming yield (nothing is requested yet): from now on, closing the iterator, even
        # before its first step, runs _iterate's exit path, so no result waits for an iterator nobody steps.
        try:  # noqa: SIM105  # once per iteration: a bare try costs nothing, contextlib.suppress() does
            gen.asend(None).send(None)
        except StopIteration:
            pass
        # Weakly: a handle kept for a stop must not keep an abandoned iterator alive (SM-10).
        self._gen_ref = weakref.ref(gen)
        return gen

    async def completion(self) -> C:
        """The final completion (SM-4): the engine's own, or one built from the role and exact text.

        Consumes the stream first if nobody iterates it (SM-6); any number of callers in any tasks get
        the same object (SM-7) or the same error: the engine's (SM-8), a
        :class:`~lmstream.spec.StreamProtocolError` (SM-9), ``after``'s (SM-13), or
        :class:`~lmstream.spec.StreamIncompleteError` when the stream was left early, cancelled or stopped
        (SM-10, SM-11, SM-24).
        """
        if not self._state.is_terminal:
            if self._claimed:
                await self._wait_done()
            else:
                async for _ in self:  # SM-6: nobody iterates, so this caller drives the stream
                    pass
        return self._outcome()

    async def message(self) -> Message:
        """``completion().message`` (SM-5)."""
        return (await self.completion()).message

    def __await__(self) -> Generator[Any, Any, Message]:
        """Awaiting the manager is awaiting :meth:`message` (SM-5)."""
        return self.message().__await__()

    async def aclose(self) -> None:
        """Stop the stream from any task, at any time, any number of times (SM-21 to SM-26).

        Returns once the stop is complete: the engine stream closed, the lock released, ``state``
        terminal. Before iteration, the engine stream is closed unread (SM-25). During iteration, the
        consumer's loop ends at its next step without an exception, even if the engine is blocked
        (SM-24). Once the engine stream has ended normally, a stop changes nothing (SM-23). Results then
        raise :class:`~lmstream.spec.StreamIncompleteError` with reason ``stopped`` and the text handed
        out so far.
        """
        await self._stop(StreamState.STOPPED)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} role={self._role!r} state={self._state.value}>"

    # ------------------------------------------------------------------ the stream itself
    async def _iterate(self) -> AsyncGenerator[str, None]:
        """The one iteration of the engine stream; every exit publishes the result exactly once."""
        try:
            yield ""  # the priming step, taken by __aiter__; never handed to the consumer
        except BaseException:
            # Before its first step, the iterator was closed or finalized (SM-10), or an exception was
            # thrown into it: a cancelled first step that ran in a task of its own (SM-11).
            await self._finish_early(StreamState.INCOMPLETE, None)
            raise
        if self._phase is not _Phase.IDLE:  # a stop before the first step moved it on (see _finish_early)
            await self._wait_done()  # stopped before the first step (SM-25): nothing to hand out
            return
        starter = asyncio.current_task()
        if starter is not None:
            self._starter = weakref.ref(starter)
            self._cancel_base = _cancel.cancelling(starter)
        del starter  # no local of this generator may reference the task: it can reference us (a cycle)
        self._state = StreamState.STREAMING
        buffer = self._buffer = io.StringIO()
        write = buffer.write
        completion: object = None
        try:
            if self._lock is not None:
                self._phase = _Phase.LOCKING
                await self._lock.acquire()
                self._lock_held = True
            self._phase = _Phase.READING
            assert self._source is not None
            iterator = self._iterator = aiter(self._source)
            async for item in iterator:
                try:
                    write(item)  # hot path: a str is accumulated; anything else raises
                except (TypeError, ValueError):
                    if self._stop_reason is not None:
                        break  # the buffer was closed by a stop: hand nothing more out
                    error = check_item(item, completion_seen=completion is not None)
                    if error is not None:
                        raise error from None
                    completion = item
                    write = _refuse_token
                    continue
                yield item  # write() accepted it, so it is a str
        # The exits below run in the task of the step that ends the stream (each step may run in a task of
        # its own): a stop's cancel is settled in that task.
        except GeneratorExit:
            # The consumer closed this iterator, or it was finalized after a break (SM-10).
            await self._finish_early(StreamState.INCOMPLETE, asyncio.current_task())
            raise
        except asyncio.CancelledError as exc:
            real = self._settle_stop_cancel(asyncio.current_task(), exc)
            await self._finish_early(StreamState.INCOMPLETE, asyncio.current_task())
            if real:
                _cancel.scrub(exc)  # it may carry the stop's message (the first cancel's): never shown
                raise  # SM-11 (and SM-26: a real cancellation keeps priority over a stop)
            return  # a stop interrupted the engine: the consumer's loop just ends (SM-24)
        except BaseException as exc:
            if self._stop_reason is not None:
                # The engine reacted to being closed under a stop (e.g. "already running"); the stop decides.
                await self._finish_early(StreamState.INCOMPLETE, asyncio.current_task())
                return
            await self._fail(exc)
            raise
        if self._stop_reason is not None:  # the stop closed the engine, which then ended
            await self._finish_early(StreamState.INCOMPLETE, asyncio.current_task())
            return
        # The engine stream ended normally: build the completion, run after, publish (SM-4, SM-13). Inline,
        # not a method: a coroutine per stream is a visible share of a short stream's cost.
        self._phase = _Phase.ENDING
        try:
            if completion is None:
                completion = self._build(self._role, buffer.getvalue())
            if self._after is not None:
                await self._after(completion)
        except asyncio.CancelledError:
            # The consumer was cancelled while after ran: an incomplete stream, as SM-11 says.
            self._release_lock()
            self._publish(StreamState.INCOMPLETE, error=StreamIncompleteError(buffer.getvalue()))
            raise
        except BaseException as exc:
            self._release_lock()
            self._publish(StreamState.FAILED, error=exc)
            raise
        self._release_lock()
        self._publish(StreamState.COMPLETED, result=completion)

    async def _fail(self, error: BaseException) -> None:
        """The engine raised, or broke the stream contract: close it, release the lock, publish the error."""
        self._phase = _Phase.CLEANUP
        try:
            await self._close_source()
        except Exception as close_error:
            if isinstance(error, StreamProtocolError):
                error.__cause__ = close_error  # only our own error is annotated, never the engine's
        finally:
            self._release_lock()
            self._publish(StreamState.FAILED, error=error)

    async def _finish_early(self, reason: StreamState, task: asyncio.Task[Any] | None) -> None:
        """End the stream before it ended by itself: close the engine, release the lock, publish
        :class:`StreamIncompleteError` with the text handed out so far (SM-10, SM-11, SM-24, SM-25).

        ``reason`` is used unless a stop asked for another one. If another path already owns the
        cleanup, wait for it instead.
        """
        if task is not None and self._stop_cancel is task:
            self._settle_stop_cancel(task, None)  # the engine swallowed the stop's cancel (it broke ES-6)
        if self._phase in (_Phase.CLEANUP, _Phase.DONE):
            await self._wait_done()
            return
        self._phase = _Phase.CLEANUP
        if self._stop_reason is not None:
            reason, text = self._stop_reason, self._stop_text
        else:
            text = self._buffer.getvalue() if self._buffer is not None else ""
        error = StreamIncompleteError(text, reason)
        self._closer = asyncio.current_task()
        try:
            await self._close_source()
        except Exception as close_error:  # reported with the result, never in place of it
            error.__cause__ = close_error
        finally:
            self._release_lock()
            self._publish(reason, error=error)

    async def _close_source(self) -> None:
        """Await ``aclose()`` of the engine's iterator (or of the stream, if never iterated): ES-5."""
        target: object = self._iterator if self._iterator is not None else self._source
        self._iterator = self._source = None
        aclose = getattr(target, "aclose", None)
        if aclose is not None:
            await aclose()

    # ------------------------------------------------------------------ stopping
    async def _stop(self, reason: StreamState) -> None:
        """Stop the stream with ``reason`` (stopped for :meth:`aclose`; incomplete when a round is left)."""
        if self._state.is_terminal:
            return
        gen = self._gen_ref() if self._gen_ref is not None else None
        # A stop from inside the manager's own step (from after, or from the engine's code) or from inside
        # the cleanup under way (the engine's finally, run by its aclose()) can neither interrupt that work
        # nor wait for it: it returns at once (SM-22), and the stop takes effect when the step goes on.
        inside = (gen is not None and _cancel.runs_in_current_stack(gen)) or (
            self._closer is not None and self._closer is asyncio.current_task()
        )
        if self._stop_reason is None and self._phase in (_Phase.IDLE, _Phase.LOCKING, _Phase.READING):
            self._stop_reason = reason
            if self._buffer is not None:  # snapshot and close: any later write() refuses its token
                self._stop_text = self._buffer.getvalue()
                self._buffer.close()
            if self._phase is _Phase.IDLE or gen is None:
                await self._finish_early(reason, None)  # nothing is running: close it here (SM-25)
            elif inside:
                pass  # the engine's next item is refused (the buffer is closed); _iterate then closes it
            elif getattr(gen, "ag_await", None) is not None:
                # A step is blocked on the lock or the engine: interrupt the task running it (SM-24). It is
                # found now, not recorded per stream: each step may run in a task of its own.
                stepping = _cancel.stepping_task(gen)
                if stepping is not None:
                    self._interrupt(stepping)
            else:
                # The consumer is in its own loop body (or left the iterator to be finalized): close the
                # engine from here; its next step finds the stream stopped.
                await self._finish_early(reason, None)
        if not inside:
            await self._wait_done()

    def _interrupt(self, task: asyncio.Task[Any]) -> None:
        """Cancel the task running the blocked step, so that the stop does not wait for the engine.

        What the task's ``cancelling()`` count was when the iteration began is the base a real
        cancellation is told apart by (SM-26). A later step running in a task of its own (wait_for(anext(it)))
        began uncancelled: its base is 0, so a real cancellation pending on it is not mistaken for ours.
        """
        starter = self._starter() if self._starter is not None else None
        if task is not starter:
            self._cancel_base = 0
        self._stop_cancel = task
        _cancel.interrupt(task)

    def _settle_stop_cancel(self, task: asyncio.Task[Any] | None, exc: BaseException | None) -> bool:
        """Undo a stop's cancel of ``task``; whether a real cancellation is (also) pending."""
        if task is None or self._stop_cancel is not task:
            return exc is not None  # not a stop's cancel: a real one
        self._stop_cancel = None
        return _cancel.settle(task, self._cancel_base, exc)

    # ------------------------------------------------------------------ results
    def _release_lock(self) -> None:
        if self._lock_held:
            self._lock_held = False
            assert self._lock is not None
            self._lock.release()

    def _publish(self, state: StreamState, *, result: Any = None, error: BaseException | None = None) -> None:
        """Set the one result and the terminal state, wake every waiter, drop what is no longer needed."""
        self._result = result  # the engine's completion or the builder's (SM-4), hence Any
        self._error = error
        self._error_tb = error.__traceback__ if error is not None else None
        self._state = state
        self._phase = _Phase.DONE
        self._buffer = self._iterator = self._source = self._after = self._closer = None
        self._gen_ref = None  # a stop no longer needs to find the iterator
        self._stop_text = ""
        if self._done is not None:
            self._done.set()

    async def _wait_done(self) -> None:
        if self._phase is _Phase.DONE:
            return
        if self._done is None:
            self._done = asyncio.Event()
        await self._done.wait()

    def _outcome(self) -> C:
        if self._error is not None:
            raise self._error.with_traceback(self._error_tb)
        assert self._result is not None
        return self._result


async def _finished(message: Message) -> AsyncGenerator[str | BuiltCompletion, None]:
    """The engine stream of an already finished message (SM-17)."""
    if message.text:
        yield message.text
    yield BuiltCompletion(message)
