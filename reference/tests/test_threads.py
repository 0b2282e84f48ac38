"""Stopping a stream from another thread (issues 13 and 17): the way that works,
``asyncio.run_coroutine_threadsafe(stream.aclose(), loop)`` from a sync handler, alone and many at once;
and the naive way, ``asyncio.run(stream.aclose())`` in the handler's thread, which fails at once with a
one-line RuntimeError naming the way that works and leaves the stream exactly as it was (SM-29).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

from lmstream.reference import StreamManager
from lmstream.spec import StreamState

from ._elsewhere import in_thread
from ._harness import (
    AfterProbe,
    Case,
    Consumer,
    Faults,
    Probe,
    WaiterKind,
    result_of,
    turns,
)

TOKENS = ["a", " b", " c", " d"]
THE_WAY = "asyncio.run_coroutine_threadsafe(stream.aclose(), loop)"


def _naive_stop(manager: StreamManager[Any], debug: bool) -> None:
    """What a Flask view or a Gradio callback writes first: a loop of its own for the stop."""
    asyncio.run(manager.aclose(), debug=debug)


def _threadsafe_stop(manager: StreamManager[Any], loop: asyncio.AbstractEventLoop) -> None:
    """What such a handler should write: the stop runs on the stream's loop; the handler waits for it."""
    asyncio.run_coroutine_threadsafe(manager.aclose(), loop).result(timeout=5)


def _snapshot(case: Case) -> tuple[object, ...]:
    """Everything a stop could change, to show that a refused one changed nothing."""
    assert case.lock is not None
    return (
        case.manager.state,
        case.lock.locked(),
        case.lock.releases,
        case.probe.closed(),
        case.probe.cleanup_started,
        len(case.probe.yielded),
        len(case.probe.timeline),
        case.task.done(),
        [w.done() for w in case.waiters],
    )


# ---------------------------------------------------------------------------------------------- SM-29
@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("where", ["engine", "body"])
async def test_sm29_a_stop_on_another_loop_fails_at_once_and_leaves_the_stream_as_it_was(
    where: str, debug: bool
) -> None:
    """The engine blocked (the stop would have to interrupt a task of another thread) or the consumer busy
    in its loop body (the stop would close the engine and release the lock from the wrong thread): either
    way the other loop's stop raises at once, and the stream's own loop can still stop it."""
    faults = Faults(block_at=2, cleanup_turns=2) if where == "engine" else Faults(cleanup_turns=2)
    case = Case(TOKENS, faults=faults, lock=True, after=AfterProbe())
    await case.run(Consumer(pause_at=2) if where == "body" else Consumer(), waiters=3)
    if where == "engine":
        await asyncio.wait_for(case.probe.blocked.wait(), 5)
    else:
        await asyncio.wait_for(case.paused.wait(), 5)
    before = _snapshot(case)
    with pytest.raises(RuntimeError) as info:
        await in_thread(lambda: _naive_stop(case.manager, debug), timeout=1, name="naive stop")
    message = str(info.value)
    assert "\n" not in message and THE_WAY in message and "another event loop" in message
    await turns(5)  # nothing was scheduled on this loop either
    assert _snapshot(case) == before
    case.stop_soon()
    case.resume.set()
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:2])


@pytest.mark.parametrize("kind", ["completion", "message", "await"])
async def test_sm29_a_result_awaited_on_another_loop_fails_at_once(kind: WaiterKind) -> None:
    """A waiter in another thread would bind the stream's event to its own loop, and every waiter on the
    stream's loop would then fail: it is refused, and the stream's own waiters are untouched."""
    case = Case(TOKENS, faults=Faults(block_at=2), lock=True)
    await case.run(waiters=2)
    await asyncio.wait_for(case.probe.blocked.wait(), 5)
    with pytest.raises(RuntimeError, match=r"run_coroutine_threadsafe\(stream\.completion\(\), loop\)"):
        await in_thread(lambda: asyncio.run(result_of(case.manager, kind)), timeout=1, name="naive wait")
    await case.stop()
    await case.verify(StreamState.STOPPED, tokens=TOKENS[:2])


async def test_sm29_a_stop_on_another_loop_before_the_stream_ran_anywhere_works() -> None:
    """Nothing of the stream belongs to a loop yet (nothing was requested, nobody waits): the stop closes
    the engine unread from the other thread, and the stream's loop later finds it stopped."""
    case = Case(TOKENS, lock=True)
    await in_thread(lambda: _naive_stop(case.manager, False), timeout=1, name="early stop")
    assert case.manager.state is StreamState.STOPPED and case.probe.closed() and not case.probe.started
    case.start()
    await case.verify(StreamState.STOPPED, tokens=[])


# ---------------------------------------------------------------------------------------------- the way
@pytest.mark.parametrize("where", ["engine", "body", "lock", "before"])
async def test_run_coroutine_threadsafe_stops_the_stream_from_a_sync_handler(where: str) -> None:
    holder: Case | None = None
    lock: Any = True
    if where == "lock":
        holder = Case(["x"], faults=Faults(block_at=0), lock=True)
        holder.start()
        await asyncio.wait_for(holder.probe.blocked.wait(), 5)
        lock = holder.lock
    faults = Faults(block_at=2, cleanup_turns=2) if where == "engine" else Faults(cleanup_turns=2)
    case = Case(TOKENS, faults=faults, lock=lock, after=AfterProbe(), isolated=holder is None)
    if where != "before":
        await case.run(Consumer(pause_at=2) if where == "body" else Consumer(), waiters=3)
    if where == "engine":
        await asyncio.wait_for(case.probe.blocked.wait(), 5)
    elif where == "body":
        await asyncio.wait_for(case.paused.wait(), 5)
    else:
        await turns(3)
    loop = asyncio.get_running_loop()
    case.yielded_at_stop = len(case.probe.yielded)
    await in_thread(lambda: _threadsafe_stop(case.manager, loop), name="sync handler")
    assert case.manager.state is StreamState.STOPPED  # the handler returned once the stop was complete
    case.resume.set()
    if where == "before":
        case.start()
    await case.verify(StreamState.STOPPED, tokens={"engine": TOKENS[:2], "body": TOKENS[:2]}.get(where, []))
    if holder is not None:
        await holder.stop()
        await holder.verify(StreamState.STOPPED, tokens=[])


async def test_many_threads_stop_many_streams_and_one_stream_at_once() -> None:
    """Twenty handlers each stop their own stream and ten more stop the same one, all at once, each from a
    thread of its own; every call returns once its stream is stopped."""
    loop = asyncio.get_running_loop()
    cases = [
        Case(TOKENS, faults=Faults(block_at=1 + i % 3, cleanup_turns=i % 3), lock=True, isolated=False)
        for i in range(20)
    ]
    shared = Case(TOKENS, faults=Faults(block_at=2), lock=True, isolated=False)
    for case in [*cases, shared]:
        await case.run(waiters=2)
    for case in [*cases, shared]:
        await asyncio.wait_for(case.probe.blocked.wait(), 5)
        case.yielded_at_stop = len(case.probe.yielded)
    stops = [functools.partial(_threadsafe_stop, case.manager, loop) for case in cases]
    stops += [functools.partial(_threadsafe_stop, shared.manager, loop) for _ in range(10)]
    handlers = [in_thread(stop, name="handler") for stop in stops]
    await asyncio.wait_for(asyncio.gather(*handlers), 10)
    for index, case in enumerate([*cases, shared]):
        await case.verify(
            StreamState.STOPPED, tokens=TOKENS[: 1 + index % 3] if case is not shared else TOKENS[:2]
        )


async def test_a_stop_from_another_thread_while_the_engine_is_blocked_does_not_wait_for_it() -> None:
    """The engine would never yield again: the threadsafe stop still returns, promptly, and the probe shows
    the engine was interrupted, not waited for."""
    probe = Probe(TOKENS, faults=Faults(block_at=1))
    manager = StreamManager(probe.stream, "assistant")
    consumer = asyncio.ensure_future(_drain(manager))
    await asyncio.wait_for(probe.blocked.wait(), 5)
    loop = asyncio.get_running_loop()
    await in_thread(lambda: _threadsafe_stop(manager, loop), timeout=2, name="sync handler")
    assert await asyncio.wait_for(consumer, 1) == ["a"]
    assert probe.block_cancelled and manager.state is StreamState.STOPPED


async def _drain(manager: StreamManager[Any]) -> list[str]:
    return [token async for token in manager]
