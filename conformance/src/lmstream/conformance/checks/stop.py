"""The stop checks of ``aclose()`` itself: SM-21 (the manager offers it, and ``state``) and SM-22 (from any
task, at any time, any number of times, concurrently; complete when it returns).

The other stop checks: :mod:`.stop_edges` (SM-23 after the end, SM-25 before iteration),
:mod:`.stop_during` (SM-24), :mod:`.stop_cancel` (SM-26), :mod:`.stop_state` (SM-27) and
:mod:`.stop_error` (SM-28). Who judges which observation is said in :mod:`._stop_support`. Every SM-22 to
SM-28 check skips a manager without ``aclose()`` with the reason :data:`~._stop_support.NO_ACLOSE`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, seconds
from lmstream.conformance.model import CheckFailure, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamState, describe_item

from ._registry import check
from ._stop_consumers import Consumer, stop_while_blocked
from ._stop_snippets import CONSUME, LOOK, STOP_AND_LOOK, stop_reproduction
from ._stop_support import (
    BLOCKED,
    LATER,
    AfterProbe,
    Rig,
    Snapshot,
    aclose_of,
    describe_state,
    make_rig,
    spawn_stoppers,
    state_of,
    until,
)

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_SM22 = (
    "every aclose() call, from any task, before, during or after iteration, however many and however "
    "concurrent, returns, and only once the stop is complete: engine stream closed, lock released, state "
    "terminal"
)


# ---------------------------------------------------------------------------------------------- SM-21
@check(
    "SM-21", _MANAGER, summary="the manager offers a coroutine aclose() and a read-only state (StreamState)"
)
async def offers_aclose_and_state(target: ManagerTarget, ctx: CheckContext) -> None:
    rig = await make_rig(target, ctx, require_aclose=False)
    manager = rig.manager
    problems: list[str] = []
    aclose: Any = getattr(manager, "aclose", None)
    if aclose is None:
        problems.append("it has no aclose()")
    elif not callable(aclose):
        problems.append(f"its aclose is {describe_item(aclose)}, not a method")
    elif not inspect.iscoroutinefunction(aclose):
        result: object = aclose()
        if inspect.isawaitable(result):
            ctx.note("aclose() is not a coroutine function, but it returns an awaitable: accepted")
            waiting = ctx.spawn(_awaited(result), name="lmstream: the awaitable aclose() returned")
            await ctx.wait_tasks([waiting], timeout=LATER)
        else:
            problems.append(f"aclose() returned {describe_item(result)}, not an awaitable")
    state = state_of(manager)
    if not isinstance(state, StreamState):
        described = describe_state(state)
        problems.append(
            "it has no state" if described == "no state" else f"its state is {described}, not a StreamState"
        )
    else:
        other = (await make_rig(target, ctx, require_aclose=False)).manager
        try:
            other.state = StreamState.STOPPED
        except Exception:  # read-only: assigning fails, whatever the error
            pass
        else:
            problems.append("its state can be assigned (manager.state = StreamState.STOPPED succeeded)")
    if problems:
        raise CheckFailure(
            f"the manager ({type(manager).__name__}): " + "; ".join(problems),
            expected="aclose(), a coroutine method that stops the stream, and state, a read-only "
            "StreamState (the StoppableStreamManager protocol)",
            reproduction=stop_reproduction(
                ctx,
                rig.items,
                [
                    "aclose = getattr(manager, 'aclose', None)",
                    "print('aclose:', aclose, inspect.iscoroutinefunction(aclose))",
                    "print('state:', repr(getattr(manager, 'state', 'no state')))",
                ],
                imports=["import inspect"],
            ),
        )


async def _awaited(awaitable: Any) -> None:
    await awaitable


# ---------------------------------------------------------------------------------------------- SM-22
@dataclass
class _Calls:
    """Sequential aclose() calls made from one task: the snapshot after each, and how they ended."""

    snapshots: list[Snapshot]
    error: BaseException | None = None
    done: bool = False


async def _sequential(ctx: CheckContext, rig: Rig, times: int) -> _Calls:
    """``times`` aclose() calls in a row from a task of their own, waited for :data:`LATER` each."""
    calls = _Calls([])

    async def stop() -> None:
        try:
            for _ in range(times):
                await aclose_of(rig.manager)
                calls.snapshots.append(rig.snapshot())
        except Exception as exc:
            calls.error = exc
        calls.done = True

    task = ctx.spawn(stop(), name="lmstream stopper")
    await ctx.wait_tasks([task], timeout=LATER * times)
    return calls


def _judge_calls(calls: _Calls, times: int, where: str, repro: str) -> None:
    if calls.error is not None:
        raise CheckFailure(
            f"{where}, aclose() call {len(calls.snapshots) + 1} of {times} raised "
            f"{describe_exception(calls.error)}",
            expected=_SM22,
            reproduction=repro,
        )
    for index, snapshot in enumerate(calls.snapshots, 1):
        missing = snapshot.incomplete()
        if missing:
            raise CheckFailure(
                f"{where}, aclose() call {index} of {times} returned while " + "; ".join(missing),
                expected=_SM22,
                reproduction=repro,
            )
    if not calls.done:
        raise CheckFailure(
            f"{where}, aclose() call {len(calls.snapshots) + 1} of {times} had not returned after "
            f"{seconds(LATER)}",
            expected=_SM22,
            reproduction=repro,
        )


def _judge_stoppers(tasks: Sequence[asyncio.Task[Snapshot]], where: str, repro: str) -> None:
    pending = [t for t in tasks if not t.done()]
    for index, task in enumerate(tasks, 1):
        if task.done() and (task.cancelled() or task.exception() is not None or task.result().error):
            error = asyncio.CancelledError() if task.cancelled() else task.exception() or task.result().error
            assert error is not None
            raise CheckFailure(
                f"{where}, aclose() call {index} of {len(tasks)} raised {describe_exception(error)}",
                expected=_SM22,
                reproduction=repro,
            )
        if task.done():
            missing = task.result().incomplete()
            if missing:
                raise CheckFailure(
                    f"{where}, aclose() call {index} of {len(tasks)} returned while " + "; ".join(missing),
                    expected=_SM22,
                    reproduction=repro,
                )
    if pending:
        raise CheckFailure(
            f"{where}, {len(pending)} of {len(tasks)} aclose() calls had not returned after {seconds(LATER)}",
            expected=_SM22,
            reproduction=repro,
        )


_THREE_STOPS = [*STOP_AND_LOOK, "for _ in range(3):", "    await asyncio.wait_for(stop_and_look(), 1)"]


@check(
    "SM-22",
    _MANAGER,
    summary="aclose() 3 times before, in the consumer's loop body and after the end: complete on return",
)
async def aclose_any_time_any_number_of_times(target: ManagerTarget, ctx: CheckContext) -> None:
    # Before iteration, from another task.
    rig = await make_rig(target, ctx, lock=True, after=AfterProbe())
    repro = stop_reproduction(ctx, rig.items, _THREE_STOPS, lock=True, after=True)
    _judge_calls(await _sequential(ctx, rig, 3), 3, "before iteration, from another task", repro)

    # During iteration, from the consumer's own loop body; the engine's close takes a few turns.
    rig = await make_rig(target, ctx, lock=True, after=AfterProbe(), cleanup_turns=3)
    calls = _Calls([])

    async def stop_in_body(count: int) -> None:
        if count != 2:
            return
        try:
            for _ in range(2):
                await aclose_of(rig.manager)
                calls.snapshots.append(rig.snapshot())
        except Exception as exc:
            calls.error = exc
        calls.done = True

    consumer = Consumer(ctx, rig.manager, body=stop_in_body)
    await until(ctx, lambda: calls.done or consumer.ended, timeout=LATER * 2)
    body = [
        "async for token in manager:",
        "    await manager.aclose()  # in the loop body of the consumer's own task",
        "    await manager.aclose()",
        f"    {LOOK}",
    ]
    repro = stop_reproduction(ctx, rig.items, body, lock=True, after=True, cleanup_turns=3)
    if not calls.snapshots and calls.error is None and consumer.ended:
        ctx.note(f"the consumer's loop ended before its second token ({consumer.describe()}): no stop in it")
    else:
        _judge_calls(calls, 2, "in the consumer's own loop body, after 2 tokens", repro)
    if not await ctx.wait_tasks([consumer.task], timeout=LATER):
        ctx.note("after aclose() in its own loop body, the consumer's loop had not ended (see SM-24)")

    # After the end, from another task.
    rig = await make_rig(target, ctx, lock=True, after=AfterProbe())
    consumer = Consumer(ctx, rig.manager)
    await ctx.wait_tasks([consumer.task], timeout=LATER)
    if not consumer.ended or consumer.error is not None:
        ctx.note(f"a stop after the end was not tried: without a stop, {consumer.describe()}")
        return
    repro = stop_reproduction(
        ctx, rig.items, ["async for token in manager:", "    pass", *_THREE_STOPS], lock=True, after=True
    )
    _judge_calls(await _sequential(ctx, rig, 3), 3, "after the end, from another task", repro)


@check(
    "SM-22", _MANAGER, summary="aclose() from 50 tasks at once, engine blocked or consumer busy: all complete"
)
async def aclose_from_fifty_tasks_at_once(target: ManagerTarget, ctx: CheckContext) -> None:
    fifty = [
        *STOP_AND_LOOK,
        "stops = [asyncio.create_task(stop_and_look()) for _ in range(50)]",
        "await asyncio.wait(stops, timeout=1)",
    ]
    # The engine blocked awaiting its next item.
    rig = await make_rig(target, ctx, BLOCKED, lock=True, after=AfterProbe(), cleanup_turns=3)
    stop = await stop_while_blocked(ctx, rig, Consumer(ctx, rig.manager), stoppers=50)
    if stop.released:
        ctx.note(stop.note())
    repro = stop_reproduction(
        ctx,
        rig.items,
        [*CONSUME, "await until_blocked(probe)", *fifty],
        lock=True,
        after=True,
        cleanup_turns=3,
    )
    _judge_stoppers(stop.stoppers, "with the engine blocked after 2 tokens", repro)

    # The consumer busy in its loop body; the engine's close takes a few turns.
    rig = await make_rig(target, ctx, lock=True, after=AfterProbe(), cleanup_turns=3)
    consumer = Consumer(ctx, rig.manager, pause_at=2)
    if not await until(ctx, lambda: consumer.paused or consumer.ended, timeout=LATER) or not consumer.paused:
        ctx.note(f"the consumer never got 2 tokens ({consumer.describe()}): no stop while it was busy")
        return
    stoppers = spawn_stoppers(ctx, rig, 50)
    await ctx.wait_tasks(stoppers, timeout=LATER)
    body = [
        "paused, resume = asyncio.Event(), asyncio.Event()",
        "async def consume():",
        "    async for token in manager:",
        "        paused.set()",
        "        await resume.wait()  # busy in the loop body",
        "consumer = asyncio.create_task(consume())",
        "await paused.wait()",
        *fifty,
        "resume.set()",
    ]
    repro = stop_reproduction(ctx, rig.items, body, lock=True, after=True, cleanup_turns=3)
    _judge_stoppers(stoppers, "with the consumer busy in its loop body after 2 tokens", repro)
    consumer.resume()
    await ctx.wait_tasks([consumer.task], timeout=LATER)
