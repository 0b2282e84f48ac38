"""A stream at interpreter or event-loop shutdown (issue 17, items 1 and 2; SM-10, SM-11, SM-12, SM-15).

Each scenario is a whole ``asyncio.run()`` in a thread of its own, left by ``main()`` with the stream in some
state: an iterator taken and never stepped, one stepped and kept, a consumer blocked in the engine or busy
in its loop body, a waiter driving the stream, a stop under way. asyncio then cancels the tasks and closes
every async generator (``loop.shutdown_asyncgens()``). Whatever the state, nothing may warn (under
``-W error`` too, where a warning would become an exception stored as the result's cause), the loop may
report nothing, the lock must be free, the state terminal and the engine closed. The last case closes the
loop with the stream pending and lets the garbage collector finish it, with no loop running at all.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from lmstream.reference import StreamManager
from lmstream.spec import StreamIncompleteError, StreamState

from ._elsewhere import Reports, asyncio_run_reporting, in_thread
from ._harness import CountingLock, EngineKind, Faults, Probe, RecordingManager

TOKENS = ["a", " b", " c"]
Left = Literal["primed", "stepped", "blocked", "busy", "waiter", "stopping"]
LEFT: tuple[Left, ...] = ("primed", "stepped", "blocked", "busy", "waiter", "stopping")


@dataclass
class Leftover:
    """What ``main()`` left behind, kept past ``asyncio.run()`` to be looked at afterwards."""

    probe: Probe | None = None
    manager: StreamManager[Any] | None = None
    lock: CountingLock | None = None
    kept: list[object] = field(default_factory=list[object])


def scenario(
    left: Left, kind: EngineKind, cleanup_turns: int
) -> tuple[Leftover, Callable[[], Coroutine[Any, Any, None]]]:
    """The ``main()`` of one shutdown scenario, and what it leaves behind."""
    out = Leftover()

    async def main() -> None:
        block = 1 if left in ("blocked", "waiter", "stopping") else None
        probe = out.probe = Probe(
            TOKENS, kind=kind, faults=Faults(block_at=block, cleanup_turns=cleanup_turns)
        )
        lock = out.lock = CountingLock()
        manager = out.manager = StreamManager(probe.stream, "assistant", lock=lock)
        loop = asyncio.get_running_loop()
        if left == "primed":
            out.kept.append(aiter(manager))  # a server keeps it and shuts down before the first step
        elif left == "stepped":
            iterator = aiter(manager)
            out.kept += [iterator, await anext(iterator)]  # kept mid-stream, nobody in a task
        elif left in ("blocked", "stopping"):
            out.kept.append(loop.create_task(_drain(manager)))
            await asyncio.wait_for(probe.blocked.wait(), 5)
            if left == "stopping":
                out.kept.append(loop.create_task(manager.aclose()))  # under way when the loop shuts down
                await asyncio.sleep(0)
        elif left == "busy":
            out.kept.append(loop.create_task(_busy(manager)))
            for _ in range(5):
                await asyncio.sleep(0)
        else:
            out.kept += [loop.create_task(manager.message()), loop.create_task(manager.completion())]
            await asyncio.wait_for(probe.blocked.wait(), 5)

    return out, main


async def _drain(manager: StreamManager[Any]) -> None:
    async for _ in manager:
        pass


async def _busy(manager: StreamManager[Any]) -> None:
    async for _ in manager:
        await asyncio.Event().wait()  # busy with the token when the loop shuts down


def judge(out: Leftover, reports: Reports) -> None:
    """Nothing reported; the lock free; the state terminal, the engine closed, the error causeless."""
    assert reports.all() == [], reports
    assert out.manager is not None and out.lock is not None and out.probe is not None
    assert out.manager.state.is_terminal, out.manager.state
    assert not out.lock.locked() and out.lock.releases == out.lock.acquires <= 1
    assert out.probe.closed(), out.probe.timeline
    error = out.manager._error  # pyright: ignore[reportPrivateUsage]  # read, not awaited: its loop is gone
    if isinstance(error, StreamIncompleteError):
        assert error.__cause__ is None, repr(error.__cause__)


@pytest.mark.parametrize("warnings_as", ["always", "error"])
@pytest.mark.parametrize("cleanup_turns", [0, 3])
@pytest.mark.parametrize("kind", ["gen", "cls"])
@pytest.mark.parametrize("left", LEFT)
async def test_sm15_nothing_warns_and_everything_is_released_at_asyncio_run_shutdown(
    left: Left, kind: EngineKind, cleanup_turns: int, warnings_as: Literal["always", "error"]
) -> None:
    """Item 1 is ``left="primed"``: before, the engine generator's first iteration was its close, after the
    loop's shutdown_asyncgens(), and warned (ResourceWarning), or under -W error became the result's cause.
    ``stepped`` with a cleanup that takes turns is the loop closing the manager's iterator and the engine
    at once: before, one of the two closes found the engine "already running"."""
    out, main = scenario(left, kind, cleanup_turns)
    _, reports = await in_thread(lambda: asyncio_run_reporting(main, warnings_as=warnings_as), name=left)
    judge(out, reports)


async def test_the_primed_iterator_at_shutdown_ends_incomplete_with_the_engine_closed_unread() -> None:
    out, main = scenario("primed", "gen", 0)
    _, reports = await in_thread(lambda: asyncio_run_reporting(main, warnings_as="error"), name="primed")
    judge(out, reports)
    assert out.manager is not None and out.probe is not None
    assert out.manager.state is StreamState.INCOMPLETE and not out.probe.started


# ---------------------------------------------------------------------------------------------- item 2
def _close_the_loop_then_collect() -> tuple[list[StreamState], CountingLock, list[str], list[str]]:
    """A consumer blocked in the engine (with a waiter); the loop is closed without cancelling anything,
    everything is dropped, and the garbage collector runs, in a thread where no loop runs. Only the lock,
    the state history and the engine's log are kept (anything holding the engine would keep it all)."""
    loop = asyncio.new_event_loop()
    reported: list[str] = []
    loop.set_exception_handler(lambda loop, context: reported.append(str(context.get("message"))))
    lock = CountingLock()
    log: list[str] = []

    async def engine() -> AsyncGenerator[str, None]:
        try:
            yield "a"
            log.append("blocked")
            await asyncio.Event().wait()
            yield "b"
        finally:
            log.append("cleanup")

    manager = RecordingManager(engine(), "assistant", lock=lock)
    history = manager.assigned

    async def start(manager: StreamManager[Any]) -> None:
        # Not kept, on purpose: once the loop is closed, nothing but the collector may reach them.
        for coro in (_drain(manager), manager.completion()):
            _ = asyncio.ensure_future(coro)
        for _ in range(5):
            await asyncio.sleep(0)

    loop.run_until_complete(start(manager))
    loop.close()
    del manager, loop
    unraisable: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(f"{u.exc_type.__name__}: {u.exc_value}")
    try:
        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert all("Task was destroyed but it is pending" in line for line in reported), reported
    assert log[0] == "blocked", log
    return history, lock, log, unraisable


async def test_sm12_sm15_a_stream_collected_after_loop_close_releases_the_lock_without_a_running_loop() -> (
    None
):
    """Item 2. On 3.13 the collector closes the pending consumer, which runs the manager's exit path with
    no loop running: before, it raised "no running event loop" (unraisable) before releasing the lock.
    Before 3.13 the collector does not close a pending task's async generators, so no exit path runs at
    all (nor the engine's cleanup): there is nothing for a manager to do, and nothing may be reported."""
    history, lock, log, unraisable = await in_thread(_close_the_loop_then_collect, name="loop.close()")
    assert unraisable == []
    if sys.version_info >= (3, 13):
        assert history[-1] is StreamState.INCOMPLETE and not lock.locked() and lock.releases == 1
        assert log == ["blocked", "cleanup"]
    else:
        assert history[-1] is StreamState.STREAMING and lock.locked() and log == ["blocked"]
