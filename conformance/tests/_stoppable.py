"""Deliberately broken stoppable managers, one per way of breaking a stop requirement, and the set of
requirement IDs the stop checks must fail each one on (exactly that set: nothing else may fail).

Nothing here is a test. :class:`MiniManager` is a small stoppable manager written for these tests: it keeps
SM-21 to SM-29 (``test_stop_checks`` proves it passes every stop check), and each broken manager is a
subclass that overrides one hook to break one thing. The reference manager is not subclassed: its internals
are its own business, and each break must be one readable override.

How :class:`MiniManager` stops (the reference does the same, faster): the consumer's loop is an async
generator run by the consumer's task (the *driver*). A stop while the driver awaits the lock or the engine
cancels the driver and undoes that cancel once it has arrived (``uncancel()`` on 3.11+, the message on
3.10), ending the loop cleanly; a stop while the consumer is in its loop body (or before iteration) closes
the engine from the stopping task, and the consumer's next step finds the stream stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
)
from typing import Any, Final, cast

from lmstream.conformance import CheckResult, Outcome
from lmstream.reference import build_completion
from lmstream.spec import Message, StreamConsumedError, StreamIncompleteError, StreamState

_STOP: Final = "MiniManager: stopped with aclose()"
"""The message of the cancellation a stop sends (how 3.10 tells it from a real one)."""


def cancelling(task: asyncio.Task[Any]) -> int:
    """``task.cancelling()`` (Python 3.11+), 0 on 3.10, which does not count."""
    cancelling = getattr(task, "cancelling", None)
    return int(cancelling()) if cancelling is not None else 0


class MiniManager:
    """A small stoppable manager: kani's constructor signature, ``aclose()`` and ``state``."""

    def __init__(
        self,
        stream_iter: AsyncIterable[Any],
        role: object,
        *,
        after: Callable[[Any], Awaitable[object]] | None = None,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self._role = role
        self._source = stream_iter
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop it runs on, from its first step
        self._engine: AsyncIterator[Any] | None = None
        self._after = after
        self._lock = lock
        self._state = StreamState.PENDING
        self._tokens: list[str] = []
        self._claimed = False
        self._driver: asyncio.Task[Any] | None = None
        self._cancel_base = 0
        self._blocked = False  # the driver awaits the lock or the engine
        self._lock_held = False
        self._stopping = False
        self._stop_calls = 0
        self._interrupted: asyncio.Task[Any] | None = None
        self._closer: asyncio.Task[Any] | None = None  # the task closing the engine, while it does
        self._ended = False  # the engine stream ended normally
        self._finishing = False
        self._done = asyncio.Event()
        self._result: Any = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ what the application sees
    @property
    def role(self) -> object:
        return self._role

    @property
    def state(self) -> StreamState:
        return self._state

    def __aiter__(self) -> AsyncIterator[str]:
        if self._claimed:
            raise StreamConsumedError()
        self._claimed = True
        gen = self._iterate()
        # Run it to its priming yield: closing the iterator before its first step then runs its exit path.
        with contextlib.suppress(StopIteration):
            gen.asend(None).send(None)
        return gen

    async def completion(self) -> Any:
        self.refuse_other_loop("completion")
        if not self._claimed:
            async for _ in self:
                pass
        if self._loop is None:
            self._loop = asyncio.get_running_loop()  # a waiter binds a stream nobody stepped (SM-29)
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result

    async def message(self) -> Message:
        completion: Any = await self.completion()
        message: Message = completion.message
        return message

    def __await__(self) -> Generator[Any, Any, Message]:
        return self.message().__await__()

    async def aclose(self) -> None:
        """Stop the stream; return once it is stopped (see the module docstring)."""
        if self._state.is_terminal:
            return
        self.refuse_other_loop("aclose")
        current = asyncio.current_task()
        self._stop_calls += 1
        # From inside the stream's own step (the engine's code, after, the engine's cleanup) a stop cannot
        # wait for that step: it takes effect when the step goes on.
        inside = self.inside(current)
        if not (self._stopping or self._ended or self._finishing):
            self._stopping = True
            driver = self._driver
            if driver is None:
                await self.stop_unstarted()
            elif inside:
                pass
            elif self._blocked and driver is not current:
                self.interrupt(driver)
            else:
                await self._finish(StreamState.STOPPED)
        if not inside and (self._driver is None or self._driver is not current):
            await self._done.wait()  # a driver cannot wait for itself

    # ------------------------------------------------------------------ hooks the broken managers override
    def refuse_other_loop(self, method: str) -> None:
        """SM-29: awaited on another loop than the stream's, raise at once, changing nothing."""
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            raise RuntimeError(
                f"MiniManager.{method}() awaited on another event loop; from another thread, use "
                f"asyncio.run_coroutine_threadsafe(stream.{method}(), loop)"
            )

    def inside(self, current: asyncio.Task[Any] | None) -> bool:
        """Whether a stop from ``current`` comes from inside the stream's own step (the engine's code or
        cleanup, or after): it cannot wait for that step, and takes effect when the step goes on."""
        return current is self._closer or (current is self._driver and (self._blocked or self._ended))

    async def wait_stopped(self) -> None:
        """The consumer's step found the stream stopped from another task: wait until the stop is complete
        (SM-32), then the loop ends."""
        await self._done.wait()

    def scrub(self, error: BaseException) -> None:
        """Take the stop's message off a real cancellation that came after the stop's."""
        if error.args == (_STOP,):
            error.args = ()

    async def stop_unstarted(self) -> None:
        """A stop before iteration: close the engine unread."""
        await self._finish(StreamState.STOPPED)

    def interrupt(self, driver: asyncio.Task[Any]) -> None:
        """A stop while the driver awaits the lock or the engine: cancel it (undone by :meth:`undo`)."""
        self._interrupted = driver
        driver.cancel(_STOP)

    def undo(self, task: asyncio.Task[Any], error: BaseException | None) -> bool:
        """Undo the stop's cancel of ``task``; whether a real cancellation is (also) pending."""
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            return bool(uncancel() > self._cancel_base)
        return error is not None and not (error.args and error.args[0] == _STOP)

    async def absorb(self, task: asyncio.Task[Any], error: asyncio.CancelledError) -> bool:
        """The driver got ``error``: whether it was the stop's interrupt alone (the loop then just ends)."""
        if self._interrupted is task:
            self._interrupted = None
            if not self.undo(task, error):
                await self._finish(StreamState.STOPPED)
                return True
            self.scrub(error)
        await self._finish(StreamState.INCOMPLETE)
        return False

    async def close_engine(self) -> None:
        """Await the engine stream's ``aclose()`` (the iterator's, or the unread stream's)."""
        target: Any = self._engine if self._engine is not None else self._source
        aclose = getattr(target, "aclose", None)
        if aclose is not None:
            await aclose()

    def release_lock(self, state: StreamState) -> None:
        """Release the lock, if held, as the stream ends in ``state``."""
        if self._lock_held and self._lock is not None:
            self._lock_held = False
            self._lock.release()

    def partial_text(self) -> str:
        """The text handed out so far."""
        return "".join(self._tokens)

    def incomplete_error(self, text: str, reason: StreamState) -> StreamIncompleteError:
        """The error of a stream that ended early."""
        return StreamIncompleteError(text, reason)

    def publish_completed(self, completion: object) -> None:
        """The engine ended normally and after returned: the result is ``completion``."""
        self._publish(StreamState.COMPLETED, result=completion)

    # ------------------------------------------------------------------ the stream itself
    async def _iterate(self) -> AsyncGenerator[str, None]:
        try:
            yield ""  # the priming step, taken by __aiter__
        except BaseException:  # closed or finalized before its first step
            await self._finish(StreamState.INCOMPLETE)
            raise
        if self._stopping or self._state is not StreamState.PENDING:
            await self._done.wait()  # stopped before the first step: nothing to hand out
            return
        starter = self._driver = asyncio.current_task()
        assert starter is not None
        self._loop = starter.get_loop()
        start_base = self._cancel_base = cancelling(starter)
        self._state = StreamState.STREAMING
        completion: object = None
        try:
            if self._lock is not None:
                self._blocked = True
                await self._lock.acquire()
                self._blocked = False
                self._lock_held = True
            engine = self._engine = aiter(self._source)
            while True:
                # Each step may run in a task of its own; one that is not the first's began uncancelled.
                task = self._driver = asyncio.current_task()
                assert task is not None
                self._cancel_base = start_base if task is starter else 0
                self._blocked = True
                try:
                    item = await anext(engine)
                except StopAsyncIteration:
                    break
                finally:
                    self._blocked = False
                if self._stop_requested():  # the stop came as the item did, or the engine swallowed it
                    if self._interrupted is task:
                        self._interrupted = None
                        self.undo(task, None)
                    await self._finish(StreamState.STOPPED)
                    return
                if not isinstance(item, str):
                    completion = item
                    continue
                self._tokens.append(item)
                yield item
                if self._stop_requested():  # stopped while the consumer was in its loop body
                    await self.wait_stopped()
                    return
        except GeneratorExit:
            await self._finish(StreamState.INCOMPLETE)
            raise
        except asyncio.CancelledError as error:
            current = asyncio.current_task()
            assert current is not None
            if await self.absorb(current, error):
                return
            raise
        except Exception as error:
            await self._fail(error)
            raise
        self._ended = True
        await self._complete(completion)

    def _stop_requested(self) -> bool:
        # A method, not an inline test: type checkers would keep the attribute narrowed across awaits.
        return self._stopping

    async def _complete(self, completion: object) -> None:
        if completion is None:
            completion = build_completion(self._role, self.partial_text())
        try:
            if self._after is not None:
                await self._after(completion)
        except asyncio.CancelledError:
            self._finishing = True
            self.release_lock(StreamState.INCOMPLETE)
            self._publish(StreamState.INCOMPLETE, error=StreamIncompleteError(self.partial_text()))
            raise
        except BaseException as error:
            self._finishing = True
            self.release_lock(StreamState.FAILED)
            self._publish(StreamState.FAILED, error=error)
            raise
        self.release_lock(StreamState.COMPLETED)
        self.publish_completed(completion)

    async def _finish(self, reason: StreamState) -> None:
        """End the stream early: close the engine, release the lock, publish the incomplete error."""
        if self._finishing:
            await self._done.wait()
            return
        self._finishing = True
        self._closer = asyncio.current_task()
        if self._stopping:
            reason = StreamState.STOPPED
        error = self.incomplete_error(self.partial_text(), reason)
        try:
            with contextlib.suppress(Exception):
                await self.close_engine()
        finally:
            self.release_lock(reason)
            self._publish(reason, error=error)

    async def _fail(self, error: BaseException) -> None:
        self._finishing = True
        self._closer = asyncio.current_task()
        try:
            with contextlib.suppress(Exception):
                await self.close_engine()
        finally:
            self.release_lock(StreamState.FAILED)
            self._publish(StreamState.FAILED, error=error)

    def _publish(self, state: StreamState, *, result: Any = None, error: BaseException | None = None) -> None:
        self._result = result
        self._error = error
        self._state = state
        self._done.set()


# ---------------------------------------------------------------------------------------------- conforming
class PlainAclose(MiniManager):
    """Conforming, though unusual: ``aclose()`` is a plain method that returns a coroutine. The checks judge
    behaviour, so it passes (SM-21 notes it)."""

    # pyright types an async def's result as CoroutineType, mypy as Coroutine: this override has that shape.
    def aclose(self) -> Coroutine[Any, Any, None]:  # pyright: ignore[reportIncompatibleMethodOverride]
        return super().aclose()


# ---------------------------------------------------------------------------------------------- SM-21
class StateWritable(MiniManager):
    """SM-21: ``state`` can be assigned (it should be read-only)."""

    @property
    def state(self) -> StreamState:
        return self._state

    @state.setter
    def state(self, value: StreamState) -> None:
        self._state = value


# ---------------------------------------------------------------------------------------------- SM-22
class LeaksLockOnStop(MiniManager):
    """SM-22: never calls after on a stop (rightly), but leaves the lock held: aclose() returns before the
    stop is complete. (SM-24's "released once" is a count; a lock never released is SM-22's failure.)"""

    def release_lock(self, state: StreamState) -> None:
        if state is not StreamState.STOPPED:
            super().release_lock(state)


class ReturnsBeforeEngineClosed(MiniManager):
    """SM-22: closes the engine in a background task and returns without waiting for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._closing: set[asyncio.Task[None]] = set()

    async def close_engine(self) -> None:
        task = asyncio.get_running_loop().create_task(super().close_engine())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


# ---------------------------------------------------------------------------------------------- SM-23
class StopAfterEndDiscards(MiniManager):
    """SM-23: a stop that comes while after runs throws the finished reply away (stopped, not completed)."""

    def publish_completed(self, completion: object) -> None:
        if self._stop_calls:
            self._publish(
                StreamState.STOPPED, error=StreamIncompleteError(self.partial_text(), StreamState.STOPPED)
            )
        else:
            super().publish_completed(completion)


# ---------------------------------------------------------------------------------------------- SM-24
class WaitsForNextItem(MiniManager):
    """SM-24: the stop does not interrupt a driver blocked in the engine (or on the lock); it waits for the
    engine's next item, which the driver then drops."""

    def interrupt(self, driver: asyncio.Task[Any]) -> None:
        pass


class RaisesCancelledOnStop(MiniManager):
    """SM-24: interrupts the blocked driver and undoes the cancel properly, but lets the CancelledError out
    of the consumer's loop instead of ending it."""

    async def absorb(self, task: asyncio.Task[Any], error: asyncio.CancelledError) -> bool:
        await super().absorb(task, error)
        return False


class CallsAfterOnStop(MiniManager):
    """SM-24: calls after with the partial reply when stopped during iteration."""

    async def close_engine(self) -> None:
        await super().close_engine()
        if self._stopping and self._driver is not None and self._after is not None:
            await self._after(build_completion(self._role, self.partial_text()))


class ClosesItsOwnIterator(MiniManager):
    """SM-24: a stop while the consumer is in its loop body closes the manager's own iterator (an async
    generator) from the stopping task; while the engine's cleanup takes its turns, the consumer's next step
    raises "asynchronous generator is already running"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._iterator: weakref.ref[AsyncGenerator[str, None]] | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        iterator = cast("AsyncGenerator[str, None]", super().__aiter__())  # MiniManager's is one
        self._iterator = weakref.ref(iterator)  # weakly: a dropped iterator must still be finalized
        return iterator

    async def aclose(self) -> None:
        self.refuse_other_loop("aclose")
        iterator = self._iterator() if self._iterator is not None else None
        started = self._driver is not None and not self._blocked and not self._ended
        if iterator is not None and started and not self._stopping and not self._state.is_terminal:
            self._stopping = True
            await iterator.aclose()  # GeneratorExit at its yield: it closes the engine, then ends
        await super().aclose()


# ---------------------------------------------------------------------------------------------- SM-25
class ReadsBeforeStopping(MiniManager):
    """SM-25: a stop before iteration reads the engine's first item before closing it."""

    async def stop_unstarted(self) -> None:
        engine = self._engine = aiter(self._source)
        with contextlib.suppress(Exception):
            await anext(engine)
        await super().stop_unstarted()


# ---------------------------------------------------------------------------------------------- SM-26
class LeavesCountRaised(MiniManager):
    """SM-26 (3.11+): ends the loop cleanly on the stop's cancel but never calls uncancel(): the consumer
    task's cancelling() stays raised, and an asyncio.timeout() around it later fires as a cancellation."""

    def undo(self, task: asyncio.Task[Any], error: BaseException | None) -> bool:
        if getattr(task, "uncancel", None) is not None:  # Python 3.11+
            return cancelling(task) > self._cancel_base + 1
        return super().undo(task, error)


class LeavesCancelPending(MiniManager):
    """SM-26: after a stop that interrupted the driver, cancels the driver again "to be sure": the cancel
    lands on the consumer's next await after its loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._was_interrupted: asyncio.Task[Any] | None = None

    def interrupt(self, driver: asyncio.Task[Any]) -> None:
        self._was_interrupted = driver
        super().interrupt(driver)

    async def aclose(self) -> None:
        await super().aclose()
        driver, self._was_interrupted = self._was_interrupted, None
        if driver is not None and not driver.done():
            driver.cancel()


class SwallowsRealCancel(MiniManager):
    """SM-26 (3.11+): a real cancellation of the consumer arriving after the stop's is swallowed with it."""

    def undo(self, task: asyncio.Task[Any], error: BaseException | None) -> bool:
        super().undo(task, error)
        return False


# ---------------------------------------------------------------------------------------------- SM-27
class StateGoesBack(MiniManager):
    """SM-27: while the consumer is in its loop body, state says pending again."""

    @property
    def state(self) -> StreamState:
        in_body = self._tokens and not self._blocked and not self._ended and not self._finishing
        if self._state is StreamState.STREAMING and in_body:
            return StreamState.PENDING
        return self._state


class StateIsAString(MiniManager):
    """SM-27: a terminal state is reported as its plain string value ("stopped"), not a StreamState."""

    @property
    def state(self) -> Any:
        return self._state.value if self._state.is_terminal else self._state


# ---------------------------------------------------------------------------------------------- SM-28
class LosesText(MiniManager):
    """SM-28: the incomplete error carries no text, whatever the consumer received."""

    def incomplete_error(self, text: str, reason: StreamState) -> StreamIncompleteError:
        return super().incomplete_error("", reason)


class WrongReason(MiniManager):
    """SM-28: the error of a stopped stream says incomplete (the state says stopped)."""

    def incomplete_error(self, text: str, reason: StreamState) -> StreamIncompleteError:
        return super().incomplete_error(text, StreamState.INCOMPLETE)


# ---------------------------------------------------------------------------------------------- SM-29
class StopsFromAnyLoop(MiniManager):
    """SM-29: a stop awaited on another loop goes ahead there, from the wrong thread: it cancels the driver
    of another loop's task, or closes the engine and releases the lock from the stopping thread."""

    def refuse_other_loop(self, method: str) -> None:
        pass


# ---------------------------------------------------------------------------------------------- the list
ON_PY311: Final = sys.version_info >= (3, 11)


def judged_passed(result: CheckResult) -> bool:
    """Passed, or (on Python 3.10 only) skipped because 3.10 has nothing to judge it by: the check says so."""
    if result.outcome is Outcome.PASSED:
        return True
    return not ON_PY311 and result.outcome is Outcome.SKIPPED and result.message.startswith("Python 3.10")


BROKEN: Final[dict[str, tuple[type[MiniManager], frozenset[str]]]] = {
    "state is writable": (StateWritable, frozenset({"SM-21"})),
    "leaves the lock held": (LeaksLockOnStop, frozenset({"SM-22"})),
    # Its consumer's loop, ended by the stop, ends before the engine is closed too (SM-32).
    "returns before the engine is closed": (ReturnsBeforeEngineClosed, frozenset({"SM-22", "SM-32"})),
    "a stop after the end discards the result": (StopAfterEndDiscards, frozenset({"SM-23"})),
    "waits for the engine's next item": (WaitsForNextItem, frozenset({"SM-24"})),
    "the consumer ends with CancelledError": (RaisesCancelledOnStop, frozenset({"SM-24"})),
    "calls after on a stop": (CallsAfterOnStop, frozenset({"SM-24"})),
    # Its aclose() closes its own iterator, which raises when a stop comes while it closes the engine (SM-22).
    "closes its own iterator (already running)": (ClosesItsOwnIterator, frozenset({"SM-22", "SM-24"})),
    "a stop before iteration reads the engine": (ReadsBeforeStopping, frozenset({"SM-25"})),
    "leaves a cancellation pending": (LeavesCancelPending, frozenset({"SM-26"})),
    "leaves cancelling() raised (3.11+)": (LeavesCountRaised, frozenset({"SM-26"})),
    "swallows a real cancellation (3.11+)": (SwallowsRealCancel, frozenset({"SM-26"})),
    "state goes back to pending": (StateGoesBack, frozenset({"SM-27"})),
    "a terminal state is a plain string": (StateIsAString, frozenset({"SM-27"})),
    "loses the partial text": (LosesText, frozenset({"SM-28"})),
    "the reason says incomplete after aclose()": (WrongReason, frozenset({"SM-28"})),
    "stops from another loop's thread": (StopsFromAnyLoop, frozenset({"SM-29"})),
}
"""Each broken manager and exactly the requirement IDs the stop checks must fail it on."""

NEEDS_PY311: Final = frozenset({"leaves cancelling() raised (3.11+)", "swallows a real cancellation (3.11+)"})
"""Breaks of the 3.11+ cancellation bookkeeping: on 3.10 there is none to break (they conform there)."""
