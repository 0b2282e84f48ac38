"""The reference stream manager: every manager requirement of lmstream (SM-1 to SM-17, SM-21 to SM-29).

How it works, in one paragraph. Iterating the manager returns one async generator, :meth:`_iterate`, which
takes the lock, reads the engine stream and hands each token on. Tokens are accumulated in a
:class:`io.StringIO` whose ``write`` doubles as the type check: a non-``str`` item makes it raise, and only
then does the slow path look at what the item is (a completion, or an ES-2/ES-3 violation). Results live on
the manager; waiters in other tasks block on an :class:`asyncio.Event` created only when someone waits. A
stop (:meth:`StreamManager.aclose`) interrupts the step that is blocked in the engine (a cancellation of
the task that began the iteration, undone afterwards, or of the future the step waits on; see
:mod:`._cancel`), or, when the consumer is busy in its own loop body, closes the engine itself; either way
the text buffer is snapshotted and closed first, so no token is handed on after a stop. A stop costs the
same whatever else the event loop runs, and nothing of it runs per token.

Every exit path funnels into :meth:`StreamManager._finish_early` (consumer left, cancellation, stop),
:meth:`StreamManager._fail` (engine error, protocol error) or the normal end at the bottom of
:meth:`StreamManager._iterate`, each of which closes what must be closed, releases the lock once and
publishes the one result. ``__aiter__`` runs the iterator to a priming ``yield`` before handing it out,
so that the event loop's async-generator finalizer (or an explicit ``aclose()``) runs that exit path
even for an iterator abandoned before its first step. The exit paths need no running event loop (the
garbage collector may run them after the loop was closed): the lock is released and the result published
whatever the loop's state.

The manager belongs to the event loop it first ran on: ``aclose()`` and the results, awaited on another
loop (a sync handler's ``asyncio.run(stream.aclose())`` in a worker thread), raise ``RuntimeError`` at
once and change nothing (SM-29); from another thread, ``asyncio.run_coroutine_threadsafe(stream.aclose(),
loop)`` runs the stop on the stream's own loop.
"""

from __future__ import annotations

import asyncio
import enum
import io
import weakref
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Generator
from types import AsyncGeneratorType, TracebackType
from typing import Any, Final, Generic, TypeVar, cast, overload

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

from . import _cancel, _closing
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
        "_interrupted",
        "_iterator",
        "_lock",
        "_lock_held",
        "_loop",
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
        self._gen_ref: weakref.ref[AsyncGeneratorType[str, None]] | None = None
        # The loop the stream runs on, from its first step (or first waiter) until the result is published.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._iterator: AsyncIterator[Any] | None = None
        self._buffer: io.StringIO | None = None
        # The task that began the iteration, weakly (it may reference the iterator, which must not be kept
        # alive through us, SM-10), and its cancelling() count then: see _interrupt.
        self._starter: weakref.ref[asyncio.Task[Any]] | None = None
        self._cancel_base = 0
        # The task running _finish_early's cleanup, while it runs (a stop from there cannot wait for it).
        self._closer: asyncio.Task[Any] | None = None
        self._stop_reason: StreamState | None = None
        self._stop_cancel: asyncio.Task[Any] | None = None  # the task a stop cancelled (see _interrupt)
        self._interrupted = False  # a stop cancelled the future the blocked step waited on
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
        gen = cast("AsyncGeneratorType[str, None]", self._iterate())  # what an async def with yield makes
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

        :raises RuntimeError: awaited on another event loop than the stream's (see :meth:`aclose`).
        """
        try:
            if not self._state.is_terminal:
                if self._claimed:
                    self._refuse_other_loop("completion")
                    await self._wait_done()
                else:
                    async for _ in self:  # SM-6: nobody iterates, so this caller drives the stream
                        pass
            if self._error is not None:  # (no local for it: a frame holding its own error is a cycle)
                raise self._error.with_traceback(self._error_tb)
            result = self._result
        except BaseException:
            # The error is kept on the manager and its traceback holds this frame: the frame must not hold
            # the manager, or the two (and the engine, from the traceback) live until the cyclic collector
            # runs. Every frame of ours that a stored error passes through drops self so.
            del self
            raise
        assert result is not None
        return result

    async def message(self) -> Message:
        """``completion().message`` (SM-5)."""
        completion = self.completion()
        del self  # a stored error raised through this frame must not hold the manager (see completion)
        return (await completion).message

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

        A stream belongs to the event loop it runs on: awaited on another loop (from a worker thread, say),
        ``aclose()`` raises ``RuntimeError`` at once and leaves the stream exactly as it was (SM-29). From
        another thread, run the stop on the stream's loop:
        ``asyncio.run_coroutine_threadsafe(stream.aclose(), loop).result(timeout)``.
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
        loop = self._loop = _cancel.running_loop()
        starter = asyncio.current_task(loop) if loop is not None else None
        if starter is not None:
            self._starter = weakref.ref(starter)
            self._cancel_base = _cancel.cancelling(starter)
        del starter, loop  # no local of this generator may reference the task: it can reference us (a cycle)
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
            iterator = aiter(self._source)
            if getattr(iterator, "aclose", None) is None:  # it breaks ES-5: see _closable
                iterator = _closable(iterator)
            self._iterator = iterator
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
        # An engine that raises CancelledError or GeneratorExit itself is cancelling or closing, not failing:
        # the consumer gets that exception, waiters StreamIncompleteError (SM-8's rationale says why).
        except GeneratorExit:
            # The consumer closed this iterator, or it was finalized after a break (SM-10); or the garbage
            # collector closed it with its task after the loop was closed (no loop runs: see current_task).
            await self._finish_early(StreamState.INCOMPLETE, _cancel.current_task())
            raise
        except asyncio.CancelledError as exc:
            task = _cancel.current_task()
            real = self._settle_stop_cancel(task, exc)
            await self._finish_early(StreamState.INCOMPLETE, task)
            if real:
                _cancel.scrub(exc)  # it may carry the stop's message (the first cancel's): never shown
                # The incomplete error kept on the manager has this cancellation as its __context__, whose
                # traceback holds this frame: see completion (SM-36).
                self = _DROPPED
                raise  # SM-11 (and SM-26: a real cancellation keeps priority over a stop)
            return  # a stop interrupted the engine: the consumer's loop just ends (SM-24)
        except BaseException as exc:
            if self._stop_reason is not None:
                # The engine reacted to being closed under a stop (e.g. "already running"); the stop decides.
                await self._finish_early(StreamState.INCOMPLETE, _cancel.current_task())
                return
            await self._fail(exc)
            # The error, kept on the manager, holds this frame in its traceback: see completion.
            self = _DROPPED
            raise
        else:
            if self._stop_reason is not None:  # the stop closed the engine, which then ended
                await self._finish_early(StreamState.INCOMPLETE, _cancel.current_task())
                return
            # The engine stream ended normally: build the completion, run after, publish (SM-4, SM-13).
            # Inline, not a method: a coroutine per stream is a visible share of a short stream's cost.
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
                self = _DROPPED  # (as above)
                raise
            else:
                self._release_lock()
                self._publish(StreamState.COMPLETED, result=completion)

    async def _fail(self, error: BaseException) -> None:
        """The engine raised, or broke the stream contract: close it, release the lock, publish the error."""
        self._phase = _Phase.CLEANUP
        try:
            await self._close_source()
        except Exception as close_error:
            if isinstance(error, StreamProtocolError):
                error.__cause__ = _without_this_frame(close_error)  # only our own error is annotated
        finally:
            try:
                self._release_lock()
            finally:
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
        buffer = self._buffer
        if self._stop_reason is not None:
            reason, text = self._stop_reason, self._stop_text
        elif buffer is not None and not buffer.closed:
            text = buffer.getvalue()
        else:
            text = ""  # never written to, or closed by the garbage collector in the cycle it is collecting
        error = StreamIncompleteError(text, reason)
        self._closer = _cancel.current_task()
        try:
            await self._close_source()
        except Exception as close_error:  # reported with the result, never in place of it
            error.__cause__ = _without_this_frame(close_error)
        finally:
            try:
                self._release_lock()
            finally:
                self._publish(reason, error=error)

    def _close_source(self) -> Awaitable[None]:
        """Await ``aclose()`` of the engine's iterator (or of the stream, if never iterated): ES-5.

        Not a coroutine of its own: a close error's traceback (kept as a result's cause) holds no frame
        that holds the manager.
        """
        started = self._iterator is not None
        target = self._iterator if started else self._source
        self._iterator = self._source = None
        return _closing.close_stream(target, self._loop, started=started)

    # ------------------------------------------------------------------ stopping
    async def _stop(self, reason: StreamState) -> None:
        """Stop the stream with ``reason`` (stopped for :meth:`aclose`; incomplete when a round is left)."""
        if self._state.is_terminal:
            return
        self._refuse_other_loop("aclose")
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
            elif gen.ag_await is not None:
                await self._interrupt_step(gen)  # a step is blocked on the lock or the engine (SM-24)
            else:
                # The consumer is in its own loop body (or left the iterator to be finalized): close the
                # engine from here; its next step finds the stream stopped.
                await self._finish_early(reason, None)
        if not inside:
            await self._wait_done()

    async def _interrupt_step(self, gen: AsyncGeneratorType[str, None]) -> None:
        """Interrupt the step of ``gen`` that is blocked on the lock or the engine, so that the stop does not
        wait for the engine's next item (SM-24); :mod:`._cancel` says how.

        The step is found now, never recorded per token: it usually runs in the task that began the
        iteration (one chain of awaits tells), else the future it waits on is cancelled (another chain).
        A step that is about to run again by itself is looked at again once it has; only a chain that
        cannot be followed, in another task, makes the stop search the loop's tasks.
        """
        for _ in range(_LOOKS):
            starter = self._starter() if self._starter is not None else None
            if starter is not None and starter is not asyncio.current_task() and _cancel.steps(starter, gen):
                self._interrupt(starter)
                return
            blocking = _cancel.blocking_future(gen)
            if blocking is _cancel.OPAQUE:
                break
            if blocking is not _cancel.RUNNABLE and blocking.cancel(_cancel.STOP_MESSAGE):
                self._interrupted = True
                return
            await asyncio.sleep(0)
            if not self._blocked(gen):
                return  # the step went on by itself: it finds the buffer closed, or the stream ended
        task = await _cancel.find_stepping_task(gen, lambda: self._blocked(gen))
        if task is not None:
            self._interrupt(task)

    def _blocked(self, gen: AsyncGeneratorType[str, None]) -> bool:
        """Whether a step of ``gen`` is still suspended on the lock or the engine, not yet interrupted."""
        reading = self._phase is _Phase.LOCKING or self._phase is _Phase.READING
        return reading and gen.ag_await is not None and not self._interrupted

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
        if task is not None and self._stop_cancel is task:
            self._stop_cancel = None
            return _cancel.settle(task, self._cancel_base, exc)
        if self._interrupted and exc is not None:  # the stop cancelled the future the step waited on
            self._interrupted = False
            starter = self._starter() if self._starter is not None else None
            return _cancel.is_real(task, self._cancel_base if task is starter else 0, exc)
        return exc is not None  # not a stop's cancel: a real one

    def _refuse_other_loop(self, method: str) -> None:
        """SM-29: awaited on another event loop than the stream's, ``method`` raises before changing anything
        (the stream's lock, event and engine belong to its loop, and asyncio is not thread-safe)."""
        loop = self._loop
        if loop is not None and loop is not _cancel.running_loop():
            raise RuntimeError(
                f"{type(self).__name__}.{method}() was awaited on another event loop than the one the "
                "stream runs on; from another thread, use "
                f"asyncio.run_coroutine_threadsafe(stream.{method}(), loop) with the stream's loop"
            )

    # ------------------------------------------------------------------ results
    def _release_lock(self) -> None:
        if self._lock_held:
            self._lock_held = False
            assert self._lock is not None
            try:
                self._lock.release()
            except RuntimeError:
                if self._loop is None or not self._loop.is_closed():
                    raise
                # Released; the lock's waiters belong to the closed loop, so none can be woken (the garbage
                # collector runs this exit path after loop.close()).

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
        loop, self._loop = self._loop, None
        if self._done is not None and (loop is None or not loop.is_closed()):
            self._done.set()  # (waiters of a closed loop can never be woken)

    async def _wait_done(self) -> None:
        if self._phase is _Phase.DONE:
            return
        if self._done is None:
            if self._loop is None:
                self._loop = _cancel.running_loop()  # the first waiter binds a stream nobody stepped yet
            self._done = asyncio.Event()
        await self._done.wait()


_DROPPED: Any = None
"""What a frame of ours sets ``self`` to before re-raising an error kept on the manager (see
StreamManager.completion); ``del self`` would do, but ruff reads every later line as using a deleted name."""

_LOOKS: Final = 3
"""How many times a stop looks for the blocked step before it searches the loop's tasks (see
StreamManager._interrupt_step)."""


def _without_this_frame(error: Exception) -> Exception:
    """``error``, caught here, without the traceback entry of the frame that caught it (which holds the
    manager: a close error kept as a result's cause would make a cycle through it)."""
    tb = error.__traceback__
    if tb is not None:
        error.__traceback__ = tb.tb_next
    return error


async def _closable(iterator: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    """An engine iterator without ``aclose()`` (it breaks ES-5) behind one that has it: a stop closes this
    one, and then the engine is asked for nothing more (SM-24). Only for such engines: it costs a step."""
    while True:
        try:
            item = await anext(iterator)
        except StopAsyncIteration:
            return
        yield item


async def _finished(message: Message) -> AsyncGenerator[str | BuiltCompletion, None]:
    """The engine stream of an already finished message (SM-17)."""
    if message.text:
        yield message.text
    yield BuiltCompletion(message)
