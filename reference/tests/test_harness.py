"""The harness can fail: each key invariant of ``Case.verify`` and of the loop guard, shown failing on a
deliberately broken manager (or a broken world), so that a green suite means something."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest
from kani.streaming import StreamManager as KaniStreamManager

from lmstream.reference import StreamManager
from lmstream.spec import StreamIncompleteError, StreamState

from ._harness import (
    SHORT,
    AfterProbe,
    Case,
    Consumer,
    Faults,
    HarnessFailure,
    LoopGuard,
    RecordingManager,
    StateWatcher,
)

TOKENS = ["a", " b", " c"]


class LeakyLock(StreamManager[Any]):
    """Never releases its lock (SM-12)."""

    __slots__ = ()

    def _release_lock(self) -> None:
        pass


class Stripping(StreamManager[Any]):
    """Strips every token (SM-1), as a careless manager would."""

    __slots__ = ()

    def __aiter__(self) -> AsyncIterator[str]:
        return _stripped(super().__aiter__())


async def _stripped(it: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    async for token in it:
        yield token.strip()


class ReadAhead(StreamManager[Any]):
    """Requests the next item before handing out the current one (SM-2)."""

    __slots__ = ()

    def __aiter__(self) -> AsyncIterator[str]:
        return _read_ahead(super().__aiter__())


async def _read_ahead(it: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    pending = [token async for token in it]  # everything first, then hand out
    for token in pending:
        yield token


class NeverCloses(StreamManager[Any]):
    """Does not close the engine stream on an early stop (SM-10)."""

    __slots__ = ()

    async def _close_source(self) -> None:
        pass


class WrapsErrors(StreamManager[Any]):
    """Hands waiters a new exception instead of the engine's own (SM-8)."""

    __slots__ = ()

    async def _fail(self, error: BaseException) -> None:
        await super()._fail(RuntimeError(f"wrapped: {error}"))


class LosesText(StreamManager[Any]):
    """Reports one character less than it handed out when the stream ends early (SM-28)."""

    __slots__ = ()

    def _publish(self, state: StreamState, *, result: Any = None, error: BaseException | None = None) -> None:
        if isinstance(error, StreamIncompleteError):
            error = StreamIncompleteError(error.text[:-1], error.reason)
        super()._publish(state, result=result, error=error)


class AfterOnEarlyStop(StreamManager[Any]):
    """Calls ``after`` even when the consumer left early (SM-13)."""

    __slots__ = ()

    async def _finish_early(self, reason: StreamState, task: asyncio.Task[Any] | None) -> None:
        if self._after is not None:
            await self._after(None)
        await super()._finish_early(reason, task)


async def test_the_checker_passes_the_reference_on_the_same_cases() -> None:
    """The control: every broken case below passes with the reference manager."""
    for consumer, faults, state in [
        (Consumer(), Faults(), StreamState.COMPLETED),
        (Consumer("break", at=1), Faults(), StreamState.INCOMPLETE),
    ]:
        case = Case(TOKENS, lock=True, faults=faults)
        await case.run(consumer, waiters=2)
        await case.verify(state)
    failing = Case(TOKENS, faults=Faults(raise_at=1))
    await failing.run(waiters=2, when="during")
    await failing.verify(StreamState.FAILED, error=failing.probe.faults.error)


async def test_the_checker_catches_a_waiter_that_hangs_with_kanis_manager() -> None:
    case = Case(
        TOKENS, faults=Faults(raise_at=1), manager_factory=KaniStreamManager, bound=SHORT, watch=False
    )
    await case.run(waiters=2, when="during")
    with pytest.raises(HarnessFailure, match="waiters did not resolve"):
        await case.verify(StreamState.FAILED, error=case.probe.faults.error)


async def test_the_checker_catches_a_lock_left_held() -> None:
    case = Case(TOKENS, lock=True, manager_factory=LeakyLock)
    await case.run()
    with pytest.raises(HarnessFailure, match="SM-12"):
        await case.verify(StreamState.COMPLETED)


async def test_the_checker_catches_stripped_tokens() -> None:
    case = Case([" a", " b "], manager_factory=Stripping)
    await case.run()
    with pytest.raises(HarnessFailure, match="SM-1"):
        await case.verify(StreamState.COMPLETED)


async def test_the_checker_catches_read_ahead() -> None:
    case = Case(TOKENS, manager_factory=ReadAhead)
    await case.run()
    with pytest.raises(HarnessFailure, match="SM-2"):
        await case.verify(StreamState.COMPLETED)


async def test_the_checker_catches_an_engine_left_open() -> None:
    case = Case(TOKENS, kind="cls", manager_factory=NeverCloses)
    await case.run(Consumer("break", at=1))
    with pytest.raises(HarnessFailure, match="not closed"):
        await case.verify(StreamState.INCOMPLETE)


async def test_the_checker_catches_an_error_that_is_not_the_engines_own_object() -> None:
    case = Case(TOKENS, faults=Faults(raise_at=1), manager_factory=WrapsErrors)
    await case.run(waiters=1, when="during")
    with pytest.raises(HarnessFailure, match="SM-8"):
        await case.verify(StreamState.FAILED, error=case.probe.faults.error)


async def test_the_checker_catches_lost_partial_text() -> None:
    case = Case(TOKENS, manager_factory=LosesText)
    await case.run(Consumer("break", at=2), waiters=1)
    with pytest.raises(HarnessFailure, match="SM-28"):
        await case.verify(StreamState.INCOMPLETE)


async def test_the_checker_catches_after_called_on_an_early_stop() -> None:
    case = Case(TOKENS, manager_factory=AfterOnEarlyStop, after=AfterProbe())
    await case.run(Consumer("break", at=1))
    with pytest.raises(HarnessFailure, match="SM-13"):
        await case.verify(StreamState.INCOMPLETE)


async def test_the_checker_catches_a_task_left_running() -> None:
    case = Case(TOKENS)
    await case.run()
    leaked = asyncio.ensure_future(asyncio.Event().wait())
    try:
        with pytest.raises(HarnessFailure, match="SM-15"):
            await case.verify(StreamState.COMPLETED)
    finally:
        leaked.cancel()
        await asyncio.wait([leaked], timeout=5)


async def test_the_checker_catches_a_wrong_final_state_and_wrong_tokens() -> None:
    case = Case(TOKENS)
    await case.run()
    with pytest.raises(HarnessFailure, match="final state"):
        await case.verify(StreamState.STOPPED)
    second = Case(TOKENS)
    await second.run()
    with pytest.raises(HarnessFailure, match="tokens seen"):
        await second.verify(StreamState.COMPLETED, tokens=["a"])


def test_the_state_checks_catch_a_move_backwards() -> None:
    watcher = StateWatcher.__new__(StateWatcher)
    watcher.seen = [StreamState.PENDING, StreamState.STREAMING, StreamState.PENDING]
    with pytest.raises(HarnessFailure, match="SM-27"):
        watcher.check()
    watcher.seen = [StreamState.PENDING, StreamState.STREAMING]
    with pytest.raises(HarnessFailure, match="never became terminal"):
        watcher.check()
    recorded = RecordingManager(_empty(), "assistant")
    recorded.assigned.append(StreamState.STOPPED)
    recorded.assigned.append(StreamState.COMPLETED)
    with pytest.raises(HarnessFailure, match="SM-27"):
        recorded.check_transitions()


async def _empty() -> AsyncGenerator[str, None]:
    nothing: tuple[str, ...] = ()
    for token in nothing:
        yield token


async def test_the_loop_guard_catches_what_asyncio_reports() -> None:
    loop = asyncio.get_running_loop()
    guard = LoopGuard(loop)  # a second guard inside the fixture's; finish() puts the fixture's back
    future: asyncio.Future[None] = loop.create_future()
    future.set_exception(RuntimeError("nobody looks"))
    del future  # never retrieved: asyncio reports it when the future is collected
    loop.call_exception_handler({"message": "an error in an async generator finalizer"})
    with pytest.raises(HarnessFailure, match="exception was never retrieved") as info:
        await guard.finish(set())
    assert "an error in an async generator finalizer" in str(info.value)
    assert loop.get_debug() and loop.get_exception_handler() is not None  # the fixture's guard again


async def test_the_loop_guard_catches_an_async_generator_left_open() -> None:
    guard = LoopGuard(asyncio.get_running_loop())
    left_open = _two()
    assert await anext(left_open) == "one"  # started, suspended, still referenced
    with pytest.raises(HarnessFailure, match="SM-15: async generators started and never finished"):
        await guard.finish(set())
    await left_open.aclose()  # closed now, so the fixture's own guard is satisfied


async def _two() -> AsyncGenerator[str, None]:
    yield "one"
    yield "two"


async def test_the_loop_guard_is_on_for_every_test(loop_guard: LoopGuard) -> None:
    loop = asyncio.get_running_loop()
    assert loop.get_debug()
    assert loop.get_exception_handler() is not None
    loop.call_exception_handler({"message": "recorded by the guard"})
    assert [c["message"] for c in loop_guard.records] == ["recorded by the guard"]
    loop_guard.records.clear()  # or the fixture's teardown would fail this test
