"""Deliberately broken managers and rounds for the checks mutation testing called for (issue 16), and the
requirement IDs each must fail (exactly those).

Nothing here is a test. Managers without ``aclose()`` are :class:`~conformance.tests._managers.Simple`
subclasses, judged by the manager checks (SM-1 to SM-17, SM-30, SM-31); stoppable ones are
:class:`~conformance.tests._stoppable.MiniManager` subclasses, judged by the stop checks (SM-21 to SM-28,
SM-32) and the manager checks that need a stop; rounds are reference-manager rounds. Each breaks the one
thing a mutant of the reference broke, with one readable override.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any, Final

from lmstream.conformance import CHECKS, Check
from lmstream.reference import StreamManager, build_completion
from lmstream.spec import StreamIncompleteError, StreamProtocolError, StreamState

from ._managers import Simple
from ._stoppable import MiniManager, cancelling


# ---------------------------------------------------------------------------------------------- Simple's
class AcceptsAnyStream(Simple):
    """SM-30: no ES-1 test; a list fails later, as a TypeError."""

    def refused(self, stream: object) -> StreamProtocolError | None:
        return None


class PublishesBeforeClosing(Simple):
    """SM-31: after a protocol error, the error is published before the engine is closed."""

    async def failed(self, iterator: Any, error: BaseException) -> None:
        self.publish(error=error)
        with contextlib.suppress(Exception):
            await self.close(iterator)


class CloseErrorReplacesTheError(Simple):
    """SM-31: an error raised by the engine's close reaches the consumer in the protocol error's place."""

    async def failed(self, iterator: Any, error: BaseException) -> None:
        try:
            await self.close(iterator)
        finally:
            self.publish(error=error)


class FromMessageHasTheAssistantRole(Simple):
    """SM-16: ``from_message`` builds its manager with the role ``assistant``, whatever the message's."""

    @classmethod
    def from_message(cls, message: Any) -> Simple:
        return Simple(_finished(message), "assistant")


async def _finished(message: Any) -> AsyncGenerator[Any, None]:
    from ._managers import Done

    if message.text:
        yield message.text
    yield Done(message)


class UnprimedIterator(Simple):
    """SM-10: the iterator runs nothing until its first step, so one closed or dropped before it releases
    nobody (the reference's iterator, run to a priming yield, runs its exit path)."""

    def __aiter__(self) -> AsyncIterator[str]:
        return _unprimed(super().__aiter__())


async def _unprimed(inner: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    try:
        async for token in inner:
            yield token
    finally:
        aclose: Any = getattr(inner, "aclose", None)
        if aclose is not None:
            await aclose()


class KeepsItsStarter(Simple):
    """SM-10: the task that took the first step is kept by the iteration's own frame (a reference cycle
    when that step ran in a task of its own): a dropped iterator waits for the garbage collector."""

    async def take_lock(self) -> bool:
        self.starter: object = (asyncio.current_task(), self._stream)
        return await super().take_lock()

    def __aiter__(self) -> AsyncIterator[str]:
        iterator = super().__aiter__()
        self.starter = iterator  # manager -> iterator -> frame -> manager: a cycle
        return iterator


class SwallowsCancelDuringAfter(Simple):
    """SM-11: a cancellation of the consumer while after runs is swallowed: the stream completes."""

    async def finish(self, completion: Any) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            if self._after is not None:
                await self._after(completion)
        self.publish(result=completion)


class KeepsLockWhenCancelledDuringAfter(Simple):
    """SM-12: the lock is kept when the consumer is cancelled while after runs."""

    async def finish(self, completion: Any) -> None:
        try:
            await super().finish(completion)
        except asyncio.CancelledError:
            self.held = False  # forgotten: the finally of the stream no longer releases it
            raise


class MissesEngineBaseErrors(Simple):
    """SM-8: an engine error that is not an Exception is not published: waiters hang."""

    engine_raised = False

    def source(self, stream: AsyncIterable[Any]) -> AsyncIterable[Any]:
        return _watched(self, stream)

    async def failed(self, iterator: Any, error: BaseException) -> None:
        if isinstance(error, Exception) or not self.engine_raised:
            await super().failed(iterator, error)


async def _watched(manager: MissesEngineBaseErrors, stream: AsyncIterable[Any]) -> AsyncGenerator[Any, None]:
    """The engine's items, relayed; records whether the engine itself raised."""
    iterator = aiter(stream)
    try:
        while True:
            try:
                item = await anext(iterator)
            except StopAsyncIteration:
                return
            except BaseException:
                manager.engine_raised = True
                raise
            yield item
    finally:
        aclose: Any = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


class SwallowsAfterBaseErrors(Simple):
    """SM-13: an after that raises a BaseException (not an Exception) is ignored: the stream completes."""

    async def finish(self, completion: Any) -> None:
        try:
            if self._after is not None:
                await self._after(completion)
        except Exception:
            raise
        except BaseException as error:
            if isinstance(error, asyncio.CancelledError):
                raise
        self.publish(result=completion)


class LosesTheErrorWhenCancelledDuringTheClose(Simple):
    """SM-9: a cancellation while the engine is closed after a protocol error skips publishing the error."""

    async def failed(self, iterator: Any, error: BaseException) -> None:
        with contextlib.suppress(Exception):
            await self.close(iterator)
        self.publish(error=error)


class LosesTheResultWhenTheCloseFails(Simple):
    """SM-10: an early stop whose engine close fails publishes nothing: waiters hang."""

    async def left_early(self, iterator: Any) -> None:
        await self.close(iterator)
        self.publish(error=StreamIncompleteError("".join(self.text)))


class SwallowsCancelDuringTheClose(Simple):
    """SM-11: a cancellation that arrives while the engine is closed (error, early stop) is swallowed."""

    async def failed(self, iterator: Any, error: BaseException) -> None:
        with contextlib.suppress(BaseException):
            await self.close(iterator)
        self.publish(error=error)

    async def left_early(self, iterator: Any) -> None:
        with contextlib.suppress(BaseException):
            await self.close(iterator)
        self.publish(error=StreamIncompleteError("".join(self.text)))


# ---------------------------------------------------------------------------------------------- Mini's
class WaitsFromTheEngineCleanup(MiniManager):
    """SM-22: a stop from the engine's cleanup waits for the close it is part of: a deadlock."""

    def inside(self, current: asyncio.Task[Any] | None) -> bool:
        return current is self._driver and (self._blocked or self._ended)


class ClosesFromTheEngineCode(MiniManager):
    """SM-24: a stop from the engine's own code closes the engine from inside it (which cannot work): the
    engine is left open and its next item is read."""

    def inside(self, current: asyncio.Task[Any] | None) -> bool:
        return current is self._closer or (current is self._driver and self._ended)


class StopsFromAfter(MiniManager):
    """SM-23: a stop from after discards the completion (the stream ends stopped)."""

    async def aclose(self) -> None:
        if self._ended and not self._state.is_terminal and asyncio.current_task() is self._driver:
            self.discarded = True
            error = self.incomplete_error(self.partial_text(), StreamState.STOPPED)
            self._publish(StreamState.STOPPED, error=error)
            return
        await super().aclose()

    def publish_completed(self, completion: object) -> None:
        if not getattr(self, "discarded", False):
            super().publish_completed(completion)


class WaitsWithoutALock(MiniManager):
    """SM-24: without a lock, a stop with the engine blocked waits for its next item."""

    def interrupt(self, driver: asyncio.Task[Any]) -> None:
        if self._lock is not None:
            super().interrupt(driver)


class RaisesIntoACancellingTask(MiniManager):
    """SM-24: the cancellation count the stream began with is not kept: a stop of a task already cancelling
    is taken for a real cancellation, and raised into the consumer's loop (3.11+)."""

    def undo(self, task: asyncio.Task[Any], error: BaseException | None) -> bool:
        self._cancel_base = 0
        return super().undo(task, error)


class UndoesTooMuch(MiniManager):
    """SM-26: the stop's cancel is undone twice: a cancellation already pending is undone too (3.11+)."""

    def undo(self, task: asyncio.Task[Any], error: BaseException | None) -> bool:
        real = super().undo(task, error)
        uncancel: Any = getattr(task, "uncancel", None)  # 3.11+, as cancelling()
        cancelling: Any = getattr(task, "cancelling", None)
        if uncancel is not None and cancelling is not None and cancelling():
            uncancel()
        return real


class KeepsTheStopMessage(MiniManager):
    """SM-26: a real cancellation that came after the stop's reaches the consumer with the stop's message."""

    def scrub(self, error: BaseException) -> None:
        return None


class LeavesTheSwallowedCancel(MiniManager):
    """SM-26: when the engine swallows the stop's cancellation, it is not undone (3.11+)."""

    def undo(self, task: asyncio.Task[Any], error: BaseException | None) -> bool:
        if error is None:  # the engine swallowed it: the stream goes on to its next item
            return False
        return super().undo(task, error)


class ReturnsWhileAfterRuns(MiniManager):
    """SM-22: a stop once the engine stream has ended returns at once, while after still runs."""

    async def aclose(self) -> None:
        if self._ended:
            return
        await super().aclose()


class ReleasesWaitersWhenStoppedDuringAfter(MiniManager):
    """SM-23: a stop while after runs publishes a stopped result at once; the stream still completes."""

    async def aclose(self) -> None:
        current = asyncio.current_task()
        if self._ended and not self._done.is_set() and current is not self._driver:
            self._completed = asyncio.Event()
            self._error = StreamIncompleteError(self.partial_text(), StreamState.STOPPED)
            self._done.set()  # the waiters are told "stopped"
            await self._completed.wait()  # and the stream completes all the same
            return
        await super().aclose()

    def publish_completed(self, completion: object) -> None:
        super().publish_completed(completion)
        completed: asyncio.Event | None = getattr(self, "_completed", None)
        if completed is not None:
            completed.set()


class StateStoppedWhileAfterRuns(MiniManager):
    """SM-27: a stop while after runs sets state to stopped, which the completion then replaces."""

    async def aclose(self) -> None:
        if self._ended and not self._state.is_terminal and asyncio.current_task() is not self._driver:
            self._state = StreamState.STOPPED
            await self._done.wait()  # the completion then moves it to completed
            return
        await super().aclose()


class EndsFailedWhenCancelledDuringAfter(MiniManager):
    """SM-27: a consumer cancelled while after runs leaves state failed, not incomplete."""

    async def _complete(self, completion: object) -> None:
        try:
            await super()._complete(completion)
        except asyncio.CancelledError:
            self._state = StreamState.FAILED
            raise


class LosesTextWhenCancelledDuringAfter(MiniManager):
    """SM-28: a consumer cancelled while after runs gets StreamIncompleteError without the text."""

    async def _complete(self, completion: object) -> None:
        try:
            await super()._complete(completion)
        except asyncio.CancelledError:
            self._error = StreamIncompleteError("")
            raise


class SaysStoppedWhenLeftUnstepped(MiniManager):
    """SM-28: an iterator closed or dropped before its first step ends the stream as stopped."""

    async def _finish(self, reason: StreamState) -> None:
        if self._driver is None:
            reason = StreamState.STOPPED
            self._stopping = True
        await super()._finish(reason)


class ClosesWhatHasNoAclose(MiniManager):
    """SM-25: a stop before iteration awaits the stream's aclose(), which it may not have."""

    async def stop_unstarted(self) -> None:
        aclose: Any = getattr(self._source, "aclose", None)
        if aclose is None:
            raise AttributeError(f"{type(self._source).__name__!r} object has no attribute 'aclose'")
        await super().stop_unstarted()


class EndsTheLoopBeforeTheClose(MiniManager):
    """SM-32: a step that finds the stream stopped ends the loop at once, while the stop still closes the
    engine from another task."""

    async def wait_stopped(self) -> None:
        return None  # does not wait for the stop's close


class FailsWhenTheStepMeetsTheClose(MiniManager):
    """SM-24: a step that comes while a stop closes the engine fails with the engine's "already running"."""

    async def wait_stopped(self) -> None:
        meets_the_close = not self._done.is_set()
        await super().wait_stopped()
        if meets_the_close:
            raise RuntimeError("anext(): asynchronous generator is already running")

    async def _fail(self, error: BaseException) -> None:
        if not self._state.is_terminal:  # the stop's result stays; only the loop raises
            await super()._fail(error)


class ReturnsWhileTheEngineIsClosed(MiniManager):
    """SM-22: a stop that comes while the manager closes the engine returns at once."""

    async def aclose(self) -> None:
        if self._finishing:
            return
        await super().aclose()


class InterruptsTheClosingTask(MiniManager):
    """SM-26: a stop that comes while the manager closes the engine after an error cancels the task closing
    it: the consumer's loop gets the stop's CancelledError."""

    async def _fail(self, error: BaseException) -> None:
        self.failing = True
        await super()._fail(error)

    async def aclose(self) -> None:
        closer = self._closer
        if getattr(self, "failing", False) and closer is not None and not self._state.is_terminal:
            closer.cancel()
        await super().aclose()


class SearchesEveryTask(MiniManager):
    """SM-34: a stop looks for the task stepping the stream among all the loop's tasks, every time (as a
    manager does that does not keep the task it needs)."""

    def interrupt(self, driver: asyncio.Task[Any]) -> None:
        found = [task for task in asyncio.all_tasks() if task.get_coro() is driver.get_coro()]
        super().interrupt(found[0] if found else driver)


class InterruptsOnlyTheFirstTask(MiniManager):
    """SM-24: a stop interrupts a step only in the task that began the iteration; a step in a task of its
    own is left to wait for the engine."""

    starter: asyncio.Task[Any] | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        self.starter = asyncio.current_task()
        return super().__aiter__()

    def interrupt(self, driver: asyncio.Task[Any]) -> None:
        if driver is self.starter:
            super().interrupt(driver)


class SwallowsTheEnginesOwnCancel(MiniManager):
    """SM-8: a CancelledError that no cancel() of the task sent (the task's cancelling() count is 0) is taken
    for a stop's, so the engine's own CancelledError ends the loop quietly."""

    async def absorb(self, task: asyncio.Task[Any], error: asyncio.CancelledError) -> bool:
        if self._interrupted is not task and cancelling(task) == 0:
            await self._finish(StreamState.INCOMPLETE)
            return True
        return await super().absorb(task, error)


# ---------------------------------------------------------------------------------------------- rounds
NextStep = Callable[[Any], Awaitable[Any]]


async def stopping_round(next_step: NextStep, role: object) -> AsyncIterator[StreamManager[Any]]:
    """SM-20: closing the round stops its manager with aclose(): reason stopped, not incomplete."""
    previous: object = None
    while (step := await next_step(previous)) is not None:
        manager: StreamManager[Any] = (
            StreamManager(step, role) if hasattr(step, "__aiter__") else StreamManager.from_message(step)
        )
        try:
            yield manager
            previous = await manager.completion()
        except BaseException:
            await manager.aclose()
            raise


async def round_role_round(next_step: NextStep, role: object) -> AsyncIterator[StreamManager[Any]]:
    """SM-33: a finished message is handed out with the round's role, not its own."""
    previous: object = None
    while (step := await next_step(previous)) is not None:
        stream: Any = step if hasattr(step, "__aiter__") else _message_stream(step)
        manager: StreamManager[Any] = StreamManager(stream, role)
        try:
            yield manager
            previous = await manager.completion()
        except BaseException:
            await manager._stop(StreamState.INCOMPLETE)  # pyright: ignore[reportPrivateUsage]  # the reference's early stop
            raise


async def _message_stream(message: Any) -> AsyncGenerator[Any, None]:
    if message.text:
        yield message.text
    yield build_completion(message.role, message.text or "")


class NeedsAclose(Simple):
    """SM-1 (and SM-8): takes every engine iterator's aclose() for granted; one with __anext__ only fails."""

    def source(self, stream: AsyncIterable[Any]) -> AsyncIterable[Any]:
        iterator: Any = aiter(stream)
        self.close_later = iterator.aclose  # AttributeError for an iterator without aclose()
        return _as_iterable(iterator)


class EndsQuietlyOnErrorsOfStreamsWithoutAclose(Simple):
    """SM-8: behind a stream without aclose(), an engine error ends the stream as if it had ended."""

    def source(self, stream: AsyncIterable[Any]) -> AsyncIterable[Any]:
        iterator: Any = aiter(stream)
        return _as_iterable(iterator) if hasattr(iterator, "aclose") else _ending_on_errors(iterator)


class _AsIterable:
    def __init__(self, iterator: AsyncIterator[Any]) -> None:
        self._iterator = iterator

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterator


def _as_iterable(iterator: AsyncIterator[Any]) -> AsyncIterable[Any]:
    return _AsIterable(iterator)


async def _ending_on_errors(iterator: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    while True:
        try:
            item = await anext(iterator)
        except Exception:  # StopAsyncIteration, and every engine error with it
            return
        yield item


class AsksTheEngineAfterAStop(MiniManager):
    """SM-24: a step that finds the stream stopped asks the engine once more (harmless for a closed async
    generator, a request to a stream without aclose())."""

    async def wait_stopped(self) -> None:
        engine = self._engine
        if engine is not None and not hasattr(engine, "aclose"):
            with contextlib.suppress(Exception):
                await anext(engine)
        await super().wait_stopped()


class WaitsForResultsOnAnyLoop(MiniManager):
    """SM-29: completion() awaited on another event loop is not refused: it waits there on the stream's own
    loop's event, and fails deep in asyncio ("bound to a different event loop")."""

    def refuse_other_loop(self, method: str) -> None:
        if method != "completion":
            super().refuse_other_loop(method)


# ---------------------------------------------------------------------------------------------- the sets
MANAGERS: Final[dict[str, tuple[type[Simple], frozenset[str]]]] = {
    "accepts any stream": (AcceptsAnyStream, frozenset({"SM-30"})),
    "publishes a protocol error before closing": (PublishesBeforeClosing, frozenset({"SM-31"})),
    "a close error replaces the protocol error": (CloseErrorReplacesTheError, frozenset({"SM-31"})),
    "from_message with the assistant's role": (FromMessageHasTheAssistantRole, frozenset({"SM-16"})),
    "an unprimed iterator": (UnprimedIterator, frozenset({"SM-10"})),
    "keeps its starter (a cycle)": (KeepsItsStarter, frozenset({"SM-10"})),
    "swallows a cancel while after runs": (SwallowsCancelDuringAfter, frozenset({"SM-11"})),
    "keeps the lock when cancelled in after": (KeepsLockWhenCancelledDuringAfter, frozenset({"SM-12"})),
    "misses engine errors that are not Exceptions": (MissesEngineBaseErrors, frozenset({"SM-8"})),
    "swallows after's BaseExceptions": (SwallowsAfterBaseErrors, frozenset({"SM-13"})),
    "loses the error when cancelled in the close": (
        LosesTheErrorWhenCancelledDuringTheClose,
        frozenset({"SM-9"}),
    ),
    "loses the result when the close fails": (LosesTheResultWhenTheCloseFails, frozenset({"SM-10"})),
    "swallows a cancel during the close": (SwallowsCancelDuringTheClose, frozenset({"SM-11"})),
    "needs aclose()": (NeedsAclose, frozenset({"SM-1", "SM-8"})),
    "ends quietly on errors of a stream without aclose()": (
        EndsQuietlyOnErrorsOfStreamsWithoutAclose,
        frozenset({"SM-8"}),
    ),
}
"""Managers without aclose(), judged by the manager checks; each with exactly the IDs it must fail."""

STOPPABLE: Final[dict[str, tuple[type[MiniManager], frozenset[str]]]] = {
    "waits from the engine's cleanup": (WaitsFromTheEngineCleanup, frozenset({"SM-22"})),
    "closes from the engine's code": (ClosesFromTheEngineCode, frozenset({"SM-24"})),
    "a stop from after discards the completion": (StopsFromAfter, frozenset({"SM-23"})),
    "waits for the engine without a lock": (WaitsWithoutALock, frozenset({"SM-24"})),
    "raises into a task already cancelling (3.11+)": (RaisesIntoACancellingTask, frozenset({"SM-24"})),
    "undoes a pending cancellation (3.11+)": (UndoesTooMuch, frozenset({"SM-26"})),
    "keeps the stop's message (3.11+)": (KeepsTheStopMessage, frozenset({"SM-26"})),
    "leaves a swallowed cancel (3.11+)": (LeavesTheSwallowedCancel, frozenset({"SM-26"})),
    "returns while after runs": (ReturnsWhileAfterRuns, frozenset({"SM-22"})),
    "releases waiters when stopped in after": (ReleasesWaitersWhenStoppedDuringAfter, frozenset({"SM-23"})),
    "state stopped while after runs": (StateStoppedWhileAfterRuns, frozenset({"SM-27"})),
    "ends failed when cancelled in after": (EndsFailedWhenCancelledDuringAfter, frozenset({"SM-27"})),
    "loses the text when cancelled in after": (LosesTextWhenCancelledDuringAfter, frozenset({"SM-28"})),
    "says stopped when left unstepped": (SaysStoppedWhenLeftUnstepped, frozenset({"SM-28"})),
    "closes what has no aclose()": (ClosesWhatHasNoAclose, frozenset({"SM-25"})),
    "ends the loop before the close": (EndsTheLoopBeforeTheClose, frozenset({"SM-32"})),
    "fails when its step meets the close": (FailsWhenTheStepMeetsTheClose, frozenset({"SM-24"})),
    "returns while the engine is closed": (ReturnsWhileTheEngineIsClosed, frozenset({"SM-22"})),
    # Cancelling the close leaves the engine open too (SM-22).
    "interrupts the task closing the engine": (InterruptsTheClosingTask, frozenset({"SM-22", "SM-26"})),
    "asks the engine after a stop": (AsksTheEngineAfterAStop, frozenset({"SM-24"})),
    "searches every task": (SearchesEveryTask, frozenset({"SM-34"})),
    "interrupts only the first task": (InterruptsOnlyTheFirstTask, frozenset({"SM-24"})),
    "swallows the engine's own cancel (3.11+)": (SwallowsTheEnginesOwnCancel, frozenset({"SM-8"})),
    "waits for results on any loop": (WaitsForResultsOnAnyLoop, frozenset({"SM-29"})),
}
"""Stoppable managers, judged by the stop checks and the manager checks that need a stop; each with
exactly the IDs it must fail among those (beyond what :class:`MiniManager` itself fails)."""

NEEDS_PY311: Final = frozenset(name for name in STOPPABLE if name.endswith("(3.11+)"))
"""Breaks of the 3.11+ cancellation bookkeeping: on 3.10 there is none to break."""

ROUNDS: Final[dict[str, tuple[Callable[..., AsyncIterator[Any]], frozenset[str]]]] = {
    "stops its manager with aclose()": (stopping_round, frozenset({"SM-20"})),
    "hands a message out with the round's role": (round_role_round, frozenset({"SM-33"})),
}
"""Broken rounds, with exactly the IDs the round checks must fail."""

NEW_MODULES: Final = frozenset(
    {
        "manager_refuse",
        "manager_unstepped",
        "manager_after_cancel",
        "manager_base_errors",
        "manager_close_trouble",
        "stop_during_after",
        "stop_inside",
        "stop_relay",
        "stop_cancelling",
        "stop_overlap",
        "stop_no_aclose",
        "stop_crowd",
        "round_roles",
    }
)
"""The check modules issue 16 added."""

NEW: Final[tuple[Check, ...]] = tuple(c for c in CHECKS if c.run.__module__.rsplit(".", 1)[-1] in NEW_MODULES)
"""Their checks: test_mutation_checks shows each failing on these targets; the other check tests, which
run them too on their own targets, leave that proof to it."""
