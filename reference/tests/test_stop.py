"""Stopping a stream from any task (issue 8): SM-21 to SM-28, each case ending with the invariant checker."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from lmstream.reference import StreamManager
from lmstream.spec import (
    StoppableStreamManager,
    StreamConsumedError,
    StreamIncompleteError,
    StreamState,
)

from ._harness import (
    READ_ALL,
    AfterError,
    AfterProbe,
    Case,
    Comp,
    Consumer,
    CountingLock,
    EngineKind,
    Faults,
    Msg,
    Probe,
    RecordingManager,
    When,
    state_of,
    turns,
    within_turns,
)

KINDS: tuple[EngineKind, ...] = ("gen", "cls")
TOKENS = ["a", " b", " c", " d"]
py311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling()/uncancel() are 3.11+")


async def _blocked(case: Case, consumer: Consumer = READ_ALL, *, waiters: int = 0) -> None:
    """Start ``consumer`` and wait (bounded) until the engine is blocked in ``Event().wait()``."""
    await case.run(consumer, waiters=waiters)
    await asyncio.wait_for(case.probe.blocked.wait(), 5)


# ---------------------------------------------------------------------------------------------- SM-21
def test_sm21_the_manager_offers_aclose_and_state() -> None:
    manager = StreamManager(Probe(TOKENS).stream, "assistant")
    assert isinstance(manager, StoppableStreamManager)
    assert inspect.iscoroutinefunction(manager.aclose)
    assert manager.state is StreamState.PENDING
    with pytest.raises(AttributeError):
        manager.state = StreamState.STOPPED  # type: ignore[misc]  # read-only: assigning must fail
    stopping = manager.aclose()
    assert inspect.iscoroutine(stopping)
    stopping.close()  # a coroutine, closed here without running


# ---------------------------------------------------------------------------------------------- SM-22
@pytest.mark.parametrize("kind", KINDS)
async def test_sm22_sm24_aclose_from_fifty_tasks_at_once_while_the_engine_is_blocked(
    kind: EngineKind,
) -> None:
    """Fifty tasks stop the stream concurrently; each returns only when the stop is complete."""
    case = Case(TOKENS, kind=kind, faults=Faults(block_at=2, cleanup_turns=3), lock=True, after=AfterProbe())
    await _blocked(case, waiters=5)
    seen_on_return: list[tuple[StreamState, bool, bool]] = []

    async def stop() -> None:
        await case.stop()
        assert case.lock is not None
        seen_on_return.append((case.manager.state, case.lock.locked(), case.probe.closed()))

    stoppers = [asyncio.ensure_future(stop()) for _ in range(50)]
    done, _ = await asyncio.wait(stoppers, timeout=5)
    assert len(done) == 50 and all(t.exception() is None for t in stoppers)
    assert seen_on_return == [(StreamState.STOPPED, False, True)] * 50
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:2])


@pytest.mark.parametrize("when", ["before", "during", "after"])
async def test_sm22_aclose_any_number_of_times_before_during_and_after(when: When) -> None:
    case = Case(TOKENS, faults=Faults(block_at=2) if when == "during" else None, lock=True)
    if when == "during":
        await _blocked(case, waiters=2)
    elif when == "after":
        case.start()
        await case.finish()
    for _ in range(3):
        await asyncio.wait_for(case.stop(), 5)
    state = StreamState.COMPLETED if when == "after" else StreamState.STOPPED
    await case.verify(state, tokens={"before": [], "during": TOKENS[:2], "after": TOKENS}[when])
    await asyncio.wait_for(case.stop(), 5)
    assert case.manager.state is state


async def test_sm22_aclose_from_the_consumers_own_task_before_during_and_after() -> None:
    manager = StreamManager(Probe(TOKENS).stream, "assistant")
    got: list[str] = []
    async for token in manager:
        got.append(token)
        await manager.aclose()
        await manager.aclose()
    await manager.aclose()
    assert got == ["a"] and manager.state is StreamState.STOPPED


# ---------------------------------------------------------------------------------------------- SM-23
async def test_sm23_a_stop_after_the_end_changes_nothing() -> None:
    own = Comp(Msg("assistant", "a b c d"))
    after = AfterProbe()
    case = Case([*TOKENS, own], lock=True, after=after)
    case.start()
    await case.finish()
    await case.stop()
    await case.verify(StreamState.COMPLETED, completion=own)
    assert len(after.calls) == 1


@pytest.mark.parametrize("error", [None, AfterError("history write failed")], ids=["ok", "after-raises"])
async def test_sm23_a_stop_racing_after_waits_for_it_and_the_stream_ends_as_it_would_have(
    error: AfterError | None,
) -> None:
    after = AfterProbe(block=True, error=error)
    case = Case(TOKENS, lock=True, after=after)
    await case.run(waiters=3)
    await asyncio.wait_for(after.entered.wait(), 5)
    case.stop_soon()
    stop = case.stops[-1]
    await turns(5)
    assert not stop.done() and case.manager.state is StreamState.STREAMING  # it waits for after
    after.release.set()
    if error is None:
        await case.verify(StreamState.COMPLETED)
    else:
        await case.verify(StreamState.FAILED, error=error)
    assert len(after.calls) == 1


async def test_sm23_a_stop_from_inside_after_returns_and_changes_nothing() -> None:
    case: Case

    class StopInside(AfterProbe):
        async def __call__(self, completion: Any) -> None:
            await super().__call__(completion)
            await case.manager.aclose()  # in the driver's own task: must return, not wait for itself

    case = Case(TOKENS, lock=True, after=StopInside())
    await case.run(waiters=2)
    await case.verify(StreamState.COMPLETED)


@pytest.mark.parametrize("stop_first", [True, False], ids=["stop-first", "consumer-first"])
async def test_sm23_sm24_a_stop_racing_the_last_token(stop_first: bool) -> None:
    """The consumer holds the last token and is about to ask for more (the engine has not ended). If the
    stop runs first, the stream is stopped with every token; if the consumer's step runs first, the
    engine ends, and the stop then changes nothing."""
    case = Case(TOKENS, lock=True, after=AfterProbe())
    await case.run(Consumer(pause_at=4), waiters=2)
    await asyncio.wait_for(case.paused.wait(), 5)
    if stop_first:
        case.stop_soon()
        case.resume.set()
    else:
        case.resume.set()
        case.stop_soon()
    await case.verify(StreamState.STOPPED if stop_first else StreamState.COMPLETED, tokens=TOKENS)


@pytest.mark.parametrize("kind", KINDS)
async def test_sm24_a_stop_racing_the_completion_before_the_engine_ended(kind: EngineKind) -> None:
    """The engine yielded its completion but has not ended (it blocks before its end): a stop now stops it,
    and the completion is not a result (only an ended stream has one)."""
    items = [*TOKENS, Comp(Msg("assistant", "a b c d"))]
    case = Case(items, kind=kind, faults=Faults(block_at=len(items)), lock=True, after=AfterProbe())
    await _blocked(case, waiters=2)
    await case.stop()
    await case.verify(StreamState.STOPPED, tokens=TOKENS)


async def test_sm23_a_stop_right_after_the_completion_and_end_changes_nothing() -> None:
    own = Comp(Msg("assistant", "a b c d"))
    case = Case([*TOKENS, own], lock=True, after=AfterProbe(turns=3))
    await case.run(Consumer(pause_at=4), waiters=2)
    await asyncio.wait_for(case.paused.wait(), 5)
    case.resume.set()
    case.stop_soon(turns=1)  # lands while after runs (the engine has ended)
    await case.verify(StreamState.COMPLETED, completion=own)


# ---------------------------------------------------------------------------------------------- SM-24
@pytest.mark.parametrize("n", [0, 2, 50])
@pytest.mark.parametrize("at", [0, 2, 4])
@pytest.mark.parametrize("kind", KINDS)
async def test_sm24_stop_while_the_engine_is_blocked_in_event_wait(kind: EngineKind, at: int, n: int) -> None:
    """The stop does not wait for the engine's next item: the consumer's loop ends at once, cleanly."""
    case = Case(TOKENS, kind=kind, faults=Faults(block_at=at, cleanup_turns=2), lock=True, after=AfterProbe())
    await _blocked(case, waiters=n)
    await asyncio.wait_for(case.stop(), 5)
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:at])
    assert case.probe.block_cancelled and case.probe.cleanup_done


@pytest.mark.parametrize("kind", KINDS)
async def test_sm24_stop_while_the_consumer_waits_for_a_lock_another_manager_holds(kind: EngineKind) -> None:
    lock = CountingLock()
    holder = Case(["x"], faults=Faults(block_at=0), lock=lock)
    holder.start()
    await asyncio.wait_for(holder.probe.blocked.wait(), 5)
    waiting = Case(TOKENS, kind=kind, lock=lock, after=AfterProbe())
    await waiting.run(waiters=3)
    await turns(3)
    assert waiting.manager.state is StreamState.STREAMING
    await asyncio.wait_for(waiting.stop(), 5)
    await waiting.verify(StreamState.STOPPED, tokens=[])
    assert not waiting.probe.started and lock.locked() and lock.acquires == 1  # still the holder's
    await holder.stop()
    await holder.verify(StreamState.STOPPED, tokens=[])
    assert lock.acquires == lock.releases == 1


@pytest.mark.parametrize("at", [1, 2, 4])
@pytest.mark.parametrize("kind", KINDS)
async def test_sm24_stop_inside_the_consumers_own_loop_body(kind: EngineKind, at: int) -> None:
    case = Case(TOKENS, kind=kind, faults=Faults(cleanup_turns=3), lock=True, after=AfterProbe())
    await case.run(Consumer("stop_in_body", at=at), waiters=2, when="before")
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:at])


@pytest.mark.parametrize("resume_when", ["cleanup-started", "same-turn"])
@pytest.mark.parametrize("kind", KINDS)
async def test_sm24_stop_from_another_task_while_the_consumer_is_busy_and_the_engine_cleanup_takes_turns(
    kind: EngineKind, resume_when: str
) -> None:
    """The consumer is in its loop body; another task stops the stream, whose engine needs several
    event-loop turns to close; the consumer's next step comes during that cleanup. It must end cleanly,
    never with "asynchronous generator is already running"."""
    case = Case(TOKENS, kind=kind, faults=Faults(cleanup_turns=8), lock=True, after=AfterProbe())
    await case.run(Consumer(pause_at=2), waiters=3)
    await asyncio.wait_for(case.paused.wait(), 5)
    case.stop_soon()
    stop = case.stops[-1]
    if resume_when == "cleanup-started":
        await within_turns(lambda: case.probe.cleanup_started, "the stop began closing the engine")
        assert not case.probe.cleanup_done and not stop.done()
    case.resume.set()
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:2])
    assert case.probe.cleanup_done


@pytest.mark.parametrize("n", [0, 3])
@pytest.mark.parametrize("at", [1, 3])
@pytest.mark.parametrize("kind", KINDS)
async def test_sm22_sm24_a_stop_when_every_step_runs_in_a_task_of_its_own(
    kind: EngineKind, at: int, n: int
) -> None:
    """``asyncio.wait_for(anext(it), timeout)`` per token runs each step in a new task on 3.10 and 3.11: the
    stop must interrupt the task running the blocked step, not the (finished) one that took the first."""
    case = Case(TOKENS, kind=kind, faults=Faults(block_at=at, cleanup_turns=2), lock=True, after=AfterProbe())
    await _blocked(case, Consumer(step_tasks=True), waiters=n)
    await asyncio.wait_for(case.stop(), 5)
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:at])
    assert case.probe.block_cancelled and case.probe.cleanup_done


async def test_sm23_a_stop_from_inside_after_when_steps_run_in_tasks_of_their_own() -> None:
    case: Case

    class StopInside(AfterProbe):
        async def __call__(self, completion: Any) -> None:
            await super().__call__(completion)
            await case.manager.aclose()  # in the last step's task: must return, not wait for itself

    case = Case(TOKENS, lock=True, after=StopInside())
    await case.run(Consumer(step_tasks=True), waiters=2)
    await case.verify(StreamState.COMPLETED)


async def test_sm24_sm26_a_stop_interrupts_the_step_not_the_task_that_took_the_first_step() -> None:
    """Task A takes the first step and hands the iterator to task B, then waits on something else. The
    stop must interrupt B, blocked in the engine, and leave A alone (not cancelled, its count untouched)."""
    case = Case(TOKENS, faults=Faults(block_at=2), lock=True)
    handed: asyncio.Queue[AsyncIterator[str]] = asyncio.Queue()
    a_may_end = asyncio.Event()
    a_log: list[str] = []

    async def first_step() -> None:
        it = aiter(case.manager)
        a_log.append(await anext(it))
        handed.put_nowait(it)
        await a_may_end.wait()  # A lives on, busy with something else
        a_log.append("A ended normally")

    async def rest() -> list[str]:
        it = await handed.get()
        return [token async for token in it]

    a = asyncio.ensure_future(first_step())
    b = asyncio.ensure_future(rest())
    await asyncio.wait_for(case.probe.blocked.wait(), 5)
    await asyncio.wait_for(case.stop(), 5)
    assert await asyncio.wait_for(b, 5) == [" b"]  # B's loop ended cleanly at its next step
    assert not a.done()
    a_may_end.set()
    await asyncio.wait_for(a, 5)
    assert a_log == ["a", "A ended normally"]
    case.driven_by_consumer = False
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:2])


@pytest.mark.parametrize("kind", KINDS)
async def test_sm24_stop_of_a_stream_driven_by_a_waiter(kind: EngineKind) -> None:
    case = Case(TOKENS, kind=kind, faults=Faults(block_at=3), lock=True)
    case.spawn_waiters(50)  # the first drives (SM-6)
    await asyncio.wait_for(case.probe.blocked.wait(), 5)
    await case.stop()
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:3])


@pytest.mark.parametrize("kind", KINDS)
async def test_sm24_an_engine_that_swallows_the_stop_still_ends_cleanly_and_hands_out_nothing_more(
    kind: EngineKind,
) -> None:
    """Non-conforming (ES-6): the engine swallows the stop's cancellation and yields its next token. The
    token is not handed out, the consumer's loop ends cleanly, and the task is not left cancelled."""
    case = Case(TOKENS, kind=kind, faults=Faults(block_at=1, swallow_cancel=True), lock=True)
    await _blocked(case, waiters=2)
    task = case.task
    await asyncio.wait_for(case.stop(), 5)
    await case.verify(StreamState.STOPPED, tokens=["a"])
    assert case.probe.yielded[:2] == ["a", " b"]  # " b" was yielded after the stop, and discarded
    assert not task.cancelled()


# ---------------------------------------------------------------------------------------------- SM-25
@pytest.mark.parametrize("kind", KINDS)
async def test_sm25_a_stop_before_iteration_closes_the_engine_unread(kind: EngineKind) -> None:
    case = Case(TOKENS, kind=kind, lock=True, after=AfterProbe())
    await asyncio.wait_for(case.stop(), 5)
    assert case.manager.state is StreamState.STOPPED and not case.probe.started and case.probe.closed()
    if kind == "cls":
        assert case.probe.aclose_calls == 1
    case.start()  # a later iteration yields nothing, without an exception
    await case.verify(StreamState.STOPPED, tokens=[])
    assert case.lock is not None and case.lock.acquires == 0
    with pytest.raises(StreamIncompleteError) as info:
        await case.manager.message()
    assert info.value.text == "" and info.value.reason is StreamState.STOPPED
    with pytest.raises(StreamConsumedError):
        aiter(case.manager)  # and it was iterated once (SM-3)


async def test_sm25_a_stop_after_the_iterator_was_taken_but_before_its_first_step() -> None:
    case = Case(TOKENS, lock=True)
    it = aiter(case.manager)
    await case.stop()
    with pytest.raises(StopAsyncIteration):
        await anext(it)
    case.driven_by_consumer = False
    await case.verify(StreamState.STOPPED, tokens=[])
    assert not case.probe.started


async def test_sm25_a_stream_without_aclose_is_stopped_without_being_started() -> None:
    started: list[bool] = []

    class Iterable:
        """An async iterable (not an iterator) without aclose(): nothing to close before iteration."""

        def __aiter__(self) -> AsyncIterator[str]:
            started.append(True)
            return self._gen()

        async def _gen(self) -> AsyncGenerator[str, None]:
            yield "a"

    manager = StreamManager(Iterable(), "assistant")
    await manager.aclose()
    assert [t async for t in manager] == [] and started == []
    assert manager.state is StreamState.STOPPED


# ---------------------------------------------------------------------------------------------- SM-26
@py311
@pytest.mark.parametrize("where", ["engine", "lock", "body"])
async def test_sm26_the_consumer_task_is_not_left_cancelled(where: str) -> None:
    if sys.version_info < (3, 11):  # for type checkers (pyright checks as 3.10); the marker skips it there
        return
    lock = CountingLock()
    holder: Case | None = None
    if where == "lock":
        holder = Case(["x"], faults=Faults(block_at=0), lock=lock)
        holder.start()
        await asyncio.wait_for(holder.probe.blocked.wait(), 5)
    case = Case(TOKENS, faults=Faults(block_at=2) if where == "engine" else None, lock=lock)
    counts: list[int] = []

    async def consumer() -> None:
        task = asyncio.current_task()
        assert task is not None
        counts.append(task.cancelling())
        await case.consume(Consumer(pause_at=2) if where == "body" else Consumer())
        counts.append(task.cancelling())
        await asyncio.sleep(0)  # no cancellation is pending: this must not raise
        counts.append(task.cancelling())

    task = asyncio.ensure_future(consumer())
    if where == "engine":
        await asyncio.wait_for(case.probe.blocked.wait(), 5)
    elif where == "body":
        await asyncio.wait_for(case.paused.wait(), 5)
    else:
        await turns(3)
    case.stop_soon()
    stop = case.stops[-1]
    case.resume.set()
    await asyncio.wait_for(asyncio.gather(task, stop), 5)
    assert counts == [0, 0, 0] and not task.cancelled()
    await case.verify(StreamState.STOPPED)
    if holder is not None:
        await holder.stop()
        await holder.verify(StreamState.STOPPED)


@py311
async def test_sm26_a_cancellation_pending_before_the_stream_is_kept() -> None:
    """The consumer caught a cancellation (its cancelling() is 1) and then streams; a stop leaves the count
    at 1: what was pending before the stream is not the stop's to undo."""
    if sys.version_info < (3, 11):  # for type checkers (pyright checks as 3.10); the marker skips it there
        return
    case = Case(TOKENS, faults=Faults(block_at=2))
    counts: list[int] = []

    async def consumer() -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            counts.append(task.cancelling())
        await case.consume()
        counts.append(task.cancelling())

    task = asyncio.ensure_future(consumer())
    await turns(2)
    task.cancel()
    await asyncio.wait_for(case.probe.blocked.wait(), 5)
    await case.stop()
    await asyncio.wait_for(task, 5)
    assert counts == [1, 1]
    await case.verify(StreamState.STOPPED)


@py311
async def test_sm26_asyncio_timeout_around_the_consumer_keeps_working_after_a_stop() -> None:
    if sys.version_info < (3, 11):  # for type checkers (pyright checks as 3.10); the marker skips it there
        return
    case = Case(TOKENS, faults=Faults(block_at=2))
    outcomes: list[str] = []

    async def consumer() -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as scope:
            await case.consume()  # stopped: ends without an exception
            outcomes.append("loop ended")
            scope.reschedule(loop.time())  # the deadline passes now: the timeout must fire as a timeout
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                outcomes.append("cancelled by the timeout")
                raise
        outcomes.append("unreachable")

    task = asyncio.ensure_future(consumer())
    await asyncio.wait_for(case.probe.blocked.wait(), 5)
    await case.stop()
    await asyncio.wait([task], timeout=5)
    assert isinstance(task.exception(), TimeoutError)  # a timeout, not a CancelledError
    assert outcomes == ["loop ended", "cancelled by the timeout"]
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:2])


@py311
async def test_sm26_a_stop_inside_an_asyncio_timeout_does_not_fire_it() -> None:
    if sys.version_info < (3, 11):  # for type checkers (pyright checks as 3.10); the marker skips it there
        return
    case = Case(TOKENS, faults=Faults(block_at=2))

    async def consumer() -> str:
        async with asyncio.timeout(60):
            await case.consume()
        await asyncio.sleep(0)
        return "done"

    task = asyncio.ensure_future(consumer())
    await asyncio.wait_for(case.probe.blocked.wait(), 5)
    await case.stop()
    assert await asyncio.wait_for(task, 5) == "done"
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:2])


@py311
async def test_sm26_a_task_group_around_the_consumer_keeps_working_after_a_stop() -> None:
    if sys.version_info < (3, 11):  # for type checkers (pyright checks as 3.10); the marker skips it there
        return
    case = Case(TOKENS, faults=Faults(block_at=2), lock=True)
    sibling_done = asyncio.Event()
    results: list[str] = []

    async def sibling() -> None:
        await sibling_done.wait()
        results.append("sibling")

    async def consumer() -> None:
        await case.consume()
        results.append("consumer")
        sibling_done.set()

    async def group() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(consumer())
            tg.create_task(sibling())
        results.append("group")

    task = asyncio.ensure_future(group())
    await asyncio.wait_for(case.probe.blocked.wait(), 5)
    await case.stop()
    await asyncio.wait_for(task, 5)
    assert results == ["consumer", "sibling", "group"]
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:2])


async def test_sm26_wait_for_around_the_consumer_returns_normally_after_a_stop() -> None:
    """The 3.10-compatible form: the consumer is stopped inside asyncio.wait_for and returns normally."""
    case = Case(TOKENS, faults=Faults(block_at=2))
    task = asyncio.ensure_future(asyncio.wait_for(case.consume(), 5))
    await asyncio.wait_for(case.probe.blocked.wait(), 5)
    await case.stop()
    outcome = await asyncio.wait_for(task, 5)
    assert outcome.error is None and outcome.tokens == TOKENS[:2]
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:2])


@pytest.mark.parametrize(
    "order",
    [
        "cancel-then-stop",
        pytest.param(
            "stop-then-cancel",
            marks=pytest.mark.skipif(
                sys.version_info < (3, 11),
                reason="3.10 merges two pending cancels into one (documented limit)",
            ),
        ),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_sm26_sm11_a_real_cancellation_racing_a_stop_still_propagates(
    kind: EngineKind, order: str
) -> None:
    case = Case(TOKENS, kind=kind, faults=Faults(block_at=2), lock=True, after=AfterProbe())
    await _blocked(case, waiters=3)
    task = case.task
    if order == "cancel-then-stop":
        task.cancel()
        case.stop_soon()
        state = StreamState.INCOMPLETE  # the consumer's cancellation arrives first
    else:
        case.stop_soon()
        await asyncio.sleep(0)  # the stop has interrupted the consumer's task; now a real cancel arrives
        task.cancel()
        state = StreamState.STOPPED
    await case.verify(state, consumer_error=asyncio.CancelledError, tokens=TOKENS[:2])
    assert task.cancelled()


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="3.10 tells a stop's cancel from a real one by its message only, and here the stop's arrives last",
)
async def test_sm26_sm11_a_stop_while_the_engine_cleans_up_after_a_real_cancellation() -> None:
    """The consumer is cancelled; the engine (an async generator) awaits in its cleanup while the
    cancellation passes through it, and a stop lands then. The stream had not ended when the stop came, so
    it is stopped; the real cancellation still ends the consumer's task with CancelledError."""
    case = Case(TOKENS, faults=Faults(block_at=2, cleanup_turns=3), lock=True, after=AfterProbe())
    await _blocked(case, waiters=3)
    task = case.task
    task.cancel()
    case.stop_soon()
    await case.verify(StreamState.STOPPED, consumer_error=asyncio.CancelledError, tokens=TOKENS[:2])
    assert task.cancelled()
    assert case.probe.cleanup_interrupted  # the stop's interruption cut the engine's awaiting cleanup short


# ---------------------------------------------------------------------------------------------- SM-27
async def test_sm27_state_at_each_point_of_the_lifecycle() -> None:
    lock = CountingLock()
    await lock.acquire()
    after = AfterProbe(block=True)
    case = Case(TOKENS, faults=Faults(block_at=2), lock=lock, after=after)
    assert state_of(case.manager) is StreamState.PENDING
    it = aiter(case.manager)
    assert state_of(case.manager) is StreamState.PENDING  # taking the iterator requests nothing
    task = asyncio.ensure_future(_drain(it))
    await turns(3)
    assert state_of(case.manager) is StreamState.STREAMING and not case.probe.started  # waiting for the lock
    lock.release()
    await asyncio.wait_for(case.probe.blocked.wait(), 5)
    assert state_of(case.manager) is StreamState.STREAMING  # reading the engine
    await case.stop()
    await asyncio.wait_for(task, 5)
    assert state_of(case.manager) is StreamState.STOPPED

    second = Case(TOKENS, after=after)
    second.start()
    second_task = second.task
    await asyncio.wait_for(after.entered.wait(), 5)
    assert state_of(second.manager) is StreamState.STREAMING  # running after
    after.release.set()
    await asyncio.wait_for(second_task, 5)
    assert state_of(second.manager) is StreamState.COMPLETED
    after.calls.clear()  # it served the second case; the first never called it
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:2])


async def _drain(it: AsyncIterator[str]) -> None:
    async for _ in it:
        pass


SCENARIOS: list[tuple[str, Faults, Consumer, StreamState]] = [
    ("completed", Faults(), Consumer(), StreamState.COMPLETED),
    ("failed", Faults(raise_at=2), Consumer(), StreamState.FAILED),
    ("incomplete-break", Faults(), Consumer("break", at=2), StreamState.INCOMPLETE),
    ("incomplete-unstepped", Faults(), Consumer("aclose", at=0), StreamState.INCOMPLETE),
    ("stopped-during", Faults(block_at=2), Consumer(), StreamState.STOPPED),
    ("stopped-before", Faults(), Consumer(), StreamState.STOPPED),
]


@pytest.mark.parametrize(
    ("faults", "consumer", "state"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
async def test_sm27_sm28_state_moves_only_along_the_transitions_and_the_reason_is_the_final_state(
    faults: Faults, consumer: Consumer, state: StreamState
) -> None:
    """Exact transitions (every assignment recorded) and sampled ones (a watcher task) both follow
    STATE_TRANSITIONS; the checker also compares StreamIncompleteError.reason with the final state."""
    case = Case(TOKENS, faults=faults, lock=True, after=AfterProbe(), manager_factory=RecordingManager)
    if state is StreamState.STOPPED and faults.block_at is None:
        await case.stop()
    await case.run(consumer, waiters=2)
    task = case.task
    if faults.block_at is not None:
        await asyncio.wait_for(case.probe.blocked.wait(), 5)
        await case.stop()
    await asyncio.wait([task], timeout=5)
    await case.verify(state, error=faults.error)
    manager = case.manager
    assert isinstance(manager, RecordingManager)
    manager.check_transitions()
    assert manager.assigned[0] is StreamState.PENDING and manager.assigned[-1] is state
    assert case.watcher is not None and case.watcher.seen[-1] is state


# ---------------------------------------------------------------------------------------------- SM-28
@pytest.mark.parametrize("kind", KINDS)
async def test_sm28_the_error_text_is_exactly_what_the_consumer_received(kind: EngineKind) -> None:
    tokens = ["héllo", " ", "\n", "wörld", " 🌍", "", "  "]
    case = Case(tokens, kind=kind, faults=Faults(block_at=6))
    await _blocked(case, Consumer(body_turns=2), waiters=2)
    await case.stop()
    await case.verify(StreamState.STOPPED, tokens=tokens[:6])
    with pytest.raises(StreamIncompleteError) as info:
        await case.manager.completion()
    assert info.value.text == "héllo \nwörld 🌍" and info.value.reason is StreamState.STOPPED


# ------------------------------------------------------------------------------------ stops from odd places
async def test_sm22_sm24_a_stop_from_the_engines_own_code_still_closes_the_engine() -> None:
    """The engine calls aclose() on its manager while producing an item: the call returns at once (it
    cannot wait for its own step), and the stop then takes effect: nothing more is handed out, the engine
    is closed (its cleanup runs), the lock is released, and the result says stopped."""
    log: list[str] = []
    holder: dict[str, StreamManager[Any]] = {}

    async def engine() -> AsyncGenerator[str, None]:
        try:
            yield "a"
            await holder["m"].aclose()  # in this very task: the consumption below is bounded instead
            log.append("aclose returned")
            yield "b"
        finally:
            log.append("cleanup")

    async def consume() -> list[str]:
        return [token async for token in manager]

    lock = asyncio.Lock()
    manager = holder["m"] = StreamManager(engine(), "assistant", lock=lock)
    tokens = await asyncio.wait_for(consume(), 1)
    assert tokens == ["a"] and log == ["aclose returned", "cleanup"]
    assert manager.state is StreamState.STOPPED and not lock.locked()
    with pytest.raises(StreamIncompleteError) as info:
        await manager.completion()
    assert info.value.text == "a" and info.value.__cause__ is None


async def test_sm22_a_stop_from_the_engines_cleanup_during_a_stop_does_not_wait_for_itself() -> None:
    holder: dict[str, StreamManager[Any]] = {}

    async def engine() -> AsyncGenerator[str, None]:
        try:
            yield "a"
            yield "b"
        finally:
            await holder["m"].aclose()  # a shared teardown helper that stops "its" manager

    manager = holder["m"] = StreamManager(engine(), "assistant")
    async for _token in manager:
        await asyncio.wait_for(manager.aclose(), 1)  # from the loop body: closes the engine, which stops us
        break
    assert manager.state is StreamState.STOPPED


@py311
async def test_sm26_a_real_cancellation_of_a_step_in_its_own_task_is_not_taken_for_the_stop() -> None:
    """The iteration began in one task; a later step runs in a task of its own (as wait_for(anext(it))
    does on 3.10/3.11) and is cancelled for real in the same turn as a stop: it ends cancelled."""
    if sys.version_info < (3, 11):  # for type checkers (pyright checks as 3.10); the marker skips it there
        return
    gate = asyncio.Event()

    async def engine() -> AsyncGenerator[str, None]:
        yield "a"
        await gate.wait()
        yield "b"

    manager = StreamManager(engine(), "assistant")
    iterator = aiter(manager)
    assert await anext(iterator) == "a"

    async def step() -> str:
        return await anext(iterator)

    task = asyncio.ensure_future(step())
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    async with asyncio.timeout(1):  # not wait_for: the stop must start in this turn, not in a new task
        await manager.aclose()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert manager.state is StreamState.STOPPED


@py311
@pytest.mark.parametrize("own_task", [False, True], ids=["consumer-task", "step-in-its-own-task"])
async def test_sm26_a_real_cancellation_racing_a_stop_never_carries_the_stop_message(own_task: bool) -> None:
    """asyncio keeps the message of a task's first pending cancel: a real cancellation arriving right after
    the stop's would reach the consumer carrying the stop's message, which the consumer must never see."""
    blocked, release = asyncio.Event(), asyncio.Event()

    async def engine() -> AsyncIterator[str]:
        yield "a"
        blocked.set()
        await release.wait()
        yield "b"

    manager = StreamManager(engine(), "assistant")
    seen: list[tuple[object, ...]] = []

    async def consume() -> None:
        iterator = aiter(manager)
        try:
            while True:
                step = anext(iterator)
                await (asyncio.ensure_future(step) if own_task else step)
        except asyncio.CancelledError as exc:
            seen.append(exc.args)
            raise

    consumer = asyncio.ensure_future(consume())
    await asyncio.wait_for(blocked.wait(), 5)
    stop = asyncio.ensure_future(manager.aclose())
    await asyncio.sleep(0)  # the stop has interrupted the step; now a real cancellation arrives
    consumer.cancel()
    await asyncio.wait([consumer, stop], timeout=5)
    assert consumer.cancelled() and stop.done()
    assert seen and not any("aclose()" in str(arg) for arg in seen[0]), seen
