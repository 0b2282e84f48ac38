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
from collections.abc import AsyncGenerator
from typing import Any, Literal

import pytest

from lmstream.reference import StreamManager
from lmstream.spec import StreamState

from ._elsewhere import asyncio_run_reporting, in_thread
from ._harness import CountingLock, EngineKind, RecordingManager, drain_into
from ._shutdown import LEFT, Left, Leftover, judge, leave


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
    kept: list[Leftover] = []

    async def main() -> None:
        kept.append(await leave(left, kind, cleanup_turns, CountingLock()))

    _, reports = await in_thread(lambda: asyncio_run_reporting(main, warnings_as=warnings_as), name=left)
    judge(kept, reports)


async def test_the_primed_iterator_at_shutdown_ends_incomplete_with_the_engine_closed_unread() -> None:
    kept: list[Leftover] = []

    async def main() -> None:
        kept.append(await leave("primed", "gen", 0, None))

    _, reports = await in_thread(lambda: asyncio_run_reporting(main, warnings_as="error"), name="primed")
    judge(kept, reports)
    assert kept[0].manager.state is StreamState.INCOMPLETE and not kept[0].probe.started


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
        for coro in (drain_into(manager, []), manager.completion()):
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
