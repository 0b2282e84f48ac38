"""Streams left behind at an ``asyncio.run()`` shutdown, and the judge of what the shutdown did to them
(``test_shutdown`` and the shutdown soak of ``test_soak``). Nothing here is a test.

``main()`` leaves each stream in one state (:data:`LEFT`); asyncio then cancels every task and closes every
async generator (``loop.shutdown_asyncgens()``). Whatever the state, nothing may warn, the loop may report
nothing, every lock must be free, every state terminal, every engine closed and no result's error may carry
a cause.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from lmstream.reference import StreamManager
from lmstream.spec import StreamIncompleteError

from ._elsewhere import Reports
from ._harness import CountingLock, EngineKind, Faults, HarnessFailure, Probe

TOKENS = ["a", " b", " c"]

Left = Literal["primed", "stepped", "blocked", "busy", "waiter", "stopping", "finished", "untouched"]
LEFT: tuple[Left, ...] = (
    "primed",
    "stepped",
    "blocked",
    "busy",
    "waiter",
    "stopping",
    "finished",
    "untouched",
)
"""How ``main()`` leaves a stream: an iterator taken and never stepped, one stepped and kept (nobody in a
task), a consumer blocked in the engine or busy in its loop body, waiters driving it, a stop under way,
a stream read to its end, a manager never used."""


@dataclass
class Leftover:
    """One stream ``main()`` left behind, kept past ``asyncio.run()`` to be judged afterwards."""

    left: Left
    probe: Probe
    manager: StreamManager[Any]
    lock: CountingLock | None
    kept: list[object] = field(default_factory=list[object])

    def __repr__(self) -> str:
        return f"Leftover({self.left}, {self.probe!r}, lock={self.lock is not None})"


async def leave(left: Left, kind: EngineKind, cleanup_turns: int, lock: CountingLock | None) -> Leftover:
    """Start a stream and leave it ``left`` (inside a running ``main()``)."""
    block = 1 if left in ("blocked", "waiter", "stopping") else None
    probe = Probe(TOKENS, kind=kind, faults=Faults(block_at=block, cleanup_turns=cleanup_turns))
    manager = StreamManager(probe.stream, "assistant", lock=lock)
    out = Leftover(left, probe, manager, lock)
    loop = asyncio.get_running_loop()
    if left == "primed":
        out.kept.append(aiter(manager))  # a server keeps it and shuts down before the first step
    elif left == "stepped":
        iterator = aiter(manager)
        step = loop.create_task(_first(iterator))
        await _turns_until(step.done)  # (not done: it waits for a lock another stream holds; kept so)
        out.kept += [iterator, step]
    elif left in ("blocked", "stopping"):
        out.kept.append(loop.create_task(_drain(manager)))
        await _until_waiting(out)
        if left == "stopping":
            out.kept.append(loop.create_task(manager.aclose()))  # under way when the loop shuts down
            await asyncio.sleep(0)
    elif left == "busy":
        out.kept.append(loop.create_task(_busy(manager)))
        for _ in range(5):
            await asyncio.sleep(0)
    elif left == "waiter":
        out.kept += [loop.create_task(manager.message()), loop.create_task(manager.completion())]
        await _until_waiting(out)
    elif left == "finished":
        reading = loop.create_task(_drain(manager))
        await _turns_until(reading.done)  # (not done: it waits for a lock another stream holds)
        out.kept.append(reading)
    return out


async def _until_waiting(out: Leftover) -> None:
    """Let the stream get to its engine's block, or to waiting for a lock another stream holds."""
    lock = out.lock
    await _turns_until(
        lambda: out.probe.blocked.is_set() or (lock is not None and lock.locked() and not out.probe.started)
    )


async def _turns_until(condition: Callable[[], bool], turns: int = 50) -> None:
    """Let the loop run until ``condition()``, for at most ``turns`` turns (placing, not waiting)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)


async def _first(iterator: AsyncIterator[str]) -> str:
    return await anext(iterator)


async def _drain(manager: StreamManager[Any]) -> None:
    async for _ in manager:
        pass


async def _busy(manager: StreamManager[Any]) -> None:
    async for _ in manager:
        await asyncio.Event().wait()  # busy with the token when the loop shuts down


def judge(leftovers: list[Leftover], reports: Reports) -> None:
    """Nothing reported; every lock free; every state terminal (or pending, for a manager never used), every
    engine closed (or never started), no error with a cause.

    :raises HarnessFailure: naming the first stream that is not so.
    """
    if reports.all():
        raise HarnessFailure(f"the shutdown reported {reports} for {leftovers}")
    for out in leftovers:
        manager = out.manager
        if out.left == "untouched":
            if manager.state.is_terminal or out.probe.started:
                raise HarnessFailure(f"{out!r}: a manager never used was touched: {manager.state}")
            continue
        if not manager.state.is_terminal:
            raise HarnessFailure(f"{out!r}: the state is {manager.state.value} after the shutdown")
        if not out.probe.closed():
            raise HarnessFailure(f"{out!r}: the engine was not closed: {out.probe.timeline}")
        error = manager._error  # pyright: ignore[reportPrivateUsage]  # read, not awaited: its loop is gone
        if isinstance(error, StreamIncompleteError) and error.__cause__ is not None:
            raise HarnessFailure(f"{out!r}: the result's error has a cause: {error.__cause__!r}")
    for lock in {id(o.lock): o.lock for o in leftovers if o.lock is not None}.values():
        if lock.locked() or lock.releases != lock.acquires:
            raise HarnessFailure(
                f"a lock ended locked={lock.locked()}, acquired {lock.acquires}x, released {lock.releases}x "
                f"({leftovers})"
            )
