"""The checks that a stop never leaks a cancellation (SM-26): the consumer's task is not left cancelled,
timeouts and task groups around the consumer keep working, and a real cancellation arriving with a stop
still propagates.

They judge the consumer's *task*, never how its loop ended (that is SM-24's). ``Task.cancelling()``,
``asyncio.timeout()`` and ``TaskGroup`` are Python 3.11+; on 3.10 the checks judge what can be seen there
(no cancellation left pending, ``asyncio.wait_for`` around the consumer) and say so in a note.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any, Final, cast

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, seconds
from lmstream.conformance.model import CheckFailure, TargetKind
from lmstream.conformance.targets import ManagerTarget

from ._registry import check
from ._stop_consumers import Consumer, stop_while_blocked, wait_until_blocked
from ._stop_snippets import CONSUME, STOP, stop_reproduction
from ._stop_support import BLOCKED, LATER, PROMPT, SCRIPT, AfterProbe, Rig, make_rig, spawn_stoppers, until

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_EXPECTED = (
    "a stop never leaves the consumer's task cancelled (on 3.11+ its cancelling() count is unchanged), "
    "asyncio.timeout() and TaskGroup around the consumer keep working, and a real cancellation of the "
    "consumer arriving with the stop still propagates as CancelledError"
)
_NO_COUNT: Final = (
    "Python 3.10 has no Task.cancelling(), asyncio.timeout() or TaskGroup: judged by what can be seen there "
    "(no cancellation left pending, asyncio.wait_for around the consumer)"
)


def _cancelling(task: asyncio.Task[Any] | None) -> int | None:
    """``task.cancelling()`` on 3.11+, ``None`` on 3.10."""
    if sys.version_info >= (3, 11) and task is not None:
        return task.cancelling()
    return None


def _fail(observed: str, repro: str) -> CheckFailure:
    return CheckFailure(observed, expected=_EXPECTED, reproduction=repro)


# ---------------------------------------------------------------------------------------------- the task
@dataclass
class _TaskView:
    """The consumer's task as it saw itself: cancellation counts, and a cancellation that surfaced."""

    before: int | None = None
    after_loop: int | None = None
    after_stop: int | None = None
    surfaced: str | None = None


def _watched(ctx: CheckContext, rig: Rig, view: _TaskView) -> Consumer:
    """A consumer that reads its task's count before the stream, after its loop and after aclose()
    returned, and then awaits a few times: a cancellation left pending surfaces there."""

    def start() -> None:
        view.before = _cancelling(asyncio.current_task())

    async def then() -> None:
        task = asyncio.current_task()
        view.after_loop = _cancelling(task)
        try:
            await rig.stopped.wait()
            view.after_stop = _cancelling(task)
            for _ in range(3):
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            view.surfaced = "after the stop, its next await raised CancelledError"

    return Consumer(ctx, rig.manager, start=start, then=then)


def _judge_view(consumer: Consumer, view: _TaskView, where: str, repro: str) -> None:
    if view.surfaced is not None:
        raise _fail(
            f"{where}: the stop left a cancellation pending in the consumer's task: {view.surfaced}", repro
        )
    if consumer.task.cancelled():
        raise _fail(f"{where}: the consumer's task ended cancelled ({consumer.describe()})", repro)
    counts = (view.before, view.after_loop, view.after_stop)
    if sys.version_info >= (3, 11) and len(set(counts)) != 1:
        raise _fail(
            f"{where}: the consumer task's cancelling() was {view.before} before the stream, "
            f"{view.after_loop} when its loop ended and {view.after_stop} once aclose() had returned",
            repro,
        )


_COUNT_BODY: Final = (
    "task = asyncio.current_task()",
    "print('cancelling() before:', task.cancelling())",
)


@check("SM-26", _MANAGER, summary="after a stop of a blocked loop, the consumer's task is not left cancelled")
async def stop_leaves_the_task_uncancelled(target: ManagerTarget, ctx: CheckContext) -> None:
    body = [
        "counts = []",
        "async def consume():",
        "    task = asyncio.current_task()",
        "    counts.append(task.cancelling())",
        "    async for token in manager:",
        "        pass",
        "    counts.append(task.cancelling())",
        "    await asyncio.sleep(0.05)  # raises CancelledError if the stop left one pending",
        "    counts.append(task.cancelling())",
        "consumer = asyncio.create_task(consume())",
    ]
    # Blocked in the engine.
    rig = await make_rig(target, ctx, BLOCKED, lock=True, after=AfterProbe())
    if sys.version_info < (3, 11):  # noted once the check applies (make_rig skips a manager without aclose)
        ctx.note(_NO_COUNT)
    view = _TaskView()
    consumer = _watched(ctx, rig, view)
    stop = await stop_while_blocked(ctx, rig, consumer)
    if stop.released:
        ctx.note(stop.note())
    repro = stop_reproduction(
        ctx,
        rig.items,
        [
            *body,
            "await until_blocked(probe)",
            STOP,
            "await asyncio.wait_for(consumer, 1)",
            "print(counts)  # all equal",
        ],
        lock=True,
        after=True,
    )
    if await ctx.wait_tasks([consumer.task], timeout=LATER):
        _judge_view(consumer, view, "stopped while blocked in the engine", repro)
    else:
        ctx.note("stopped while blocked in the engine: aclose() never returned, the task was not judged")

    # Waiting for a lock held elsewhere.
    rig = await make_rig(target, ctx, SCRIPT, lock=True, after=AfterProbe())
    lock = rig.lock
    assert lock is not None
    await lock.acquire()
    view = _TaskView()
    consumer = _watched(ctx, rig, view)
    await ctx.settle(5)
    stoppers = spawn_stoppers(ctx, rig)
    if not await until(ctx, lambda: consumer.ended, timeout=PROMPT):
        ctx.note(
            f"the consumer's loop had not ended {seconds(PROMPT)} after aclose() while it waited for the "
            "lock (SM-24's check reports it); the lock was then released"
        )
    lock.release()
    await ctx.wait_tasks([consumer.task, *stoppers], timeout=LATER)
    repro = stop_reproduction(
        ctx,
        rig.items,
        [
            "await lock.acquire()  # held elsewhere",
            *body,
            "await asyncio.sleep(0.01)  # the consumer waits for the lock",
            "stop = asyncio.create_task(manager.aclose())",
            "await asyncio.sleep(0.01)",
            "lock.release()",
            "await asyncio.wait_for(stop, 1)",
            "await asyncio.wait_for(consumer, 1)",
            "print(counts)  # all equal",
        ],
        lock=True,
        after=True,
    )
    if consumer.task.done():
        _judge_view(consumer, view, "stopped while waiting for the lock", repro)
    else:
        ctx.note("stopped while waiting for the lock: aclose() never returned, the task was not judged")


# ---------------------------------------------------------------------------------------------- scopes
class _ChildFailed(Exception):
    """What the failing child of the TaskGroup case raises."""


async def _loop(manager: Any) -> None:
    """Iterate ``manager``; how the loop ends is SM-24's to judge, so whatever it raises is dropped here."""
    try:
        async for _ in manager:
            pass
    except Exception:
        pass
    except asyncio.CancelledError:  # the loop ended by a CancelledError that is not the task's (SM-24)
        task = asyncio.current_task()
        if task is not None and _cancelling(task):
            raise


async def _in_wait_for(rig: Rig) -> str:
    """The consumer inside ``asyncio.wait_for(..., long)``, then a short ``wait_for`` that must time out."""

    async def inner() -> str:
        await _loop(rig.manager)
        await rig.stopped.wait()
        return "returned"

    try:
        await asyncio.wait_for(inner(), timeout=LATER * 8)
    except (Exception, asyncio.CancelledError) as exc:
        return f"asyncio.wait_for() around the consumer raised {describe_exception(exc)}"
    try:
        await asyncio.wait_for(asyncio.Event().wait(), timeout=0.001)
    except asyncio.TimeoutError:
        return "ok"
    except asyncio.CancelledError:
        return "a later asyncio.wait_for(..., 0.001) raised CancelledError instead of TimeoutError"
    return "a later asyncio.wait_for(..., 0.001) did not time out"  # pragma: no cover - it always does


if sys.version_info >= (3, 11):

    async def _in_timeout(rig: Rig) -> str:
        """The consumer inside ``asyncio.timeout(None)``, rescheduled to expire once the stop returned."""
        try:
            async with asyncio.timeout(None) as scope:
                await _loop(rig.manager)
                await rig.stopped.wait()
                scope.reschedule(asyncio.get_running_loop().time())
                await asyncio.Event().wait()
        except TimeoutError:
            return "ok"
        except asyncio.CancelledError:
            return (
                "asyncio.timeout() around the consumer, expiring after the stop, raised CancelledError "
                "instead of TimeoutError"
            )
        return "asyncio.timeout() around the consumer never expired"  # pragma: no cover - see above

    async def _in_task_group(rig: Rig) -> str:
        """The consumer in a TaskGroup's body; after the stop a child fails: the group must raise it."""
        try:
            async with asyncio.TaskGroup() as group:
                await _loop(rig.manager)
                await rig.stopped.wait()
                group.create_task(_fail_soon())
                await asyncio.Event().wait()
        except (Exception, asyncio.CancelledError) as exc:
            inner = getattr(exc, "exceptions", None)  # an ExceptionGroup (the name is 3.11+ only)
            if isinstance(inner, tuple) and [type(e) for e in cast("tuple[object, ...]", inner)] == [
                _ChildFailed
            ]:
                return "ok"
            return (
                "a TaskGroup around the consumer, whose child failed after the stop, raised "
                f"{describe_exception(exc)} instead of an ExceptionGroup of the child's error"
            )
        return "the TaskGroup around the consumer ended without an error"  # pragma: no cover - see above

    async def _fail_soon() -> None:
        await asyncio.sleep(0)
        raise _ChildFailed("a child of the task group failed")


_SCOPES: Final[dict[str, tuple[str, ...]]] = {
    "asyncio.wait_for()": (
        "async def consume():",
        "    async for token in manager:",
        "        pass",
        "    await stopped.wait()",
        "async def around():",
        "    await asyncio.wait_for(consume(), 10)",
        "    await asyncio.wait_for(asyncio.sleep(1), 0.001)",
    ),
    "asyncio.timeout()": (
        "async def around():",
        "    async with asyncio.timeout(None) as scope:",
        "        async for token in manager:",
        "            pass",
        "        await stopped.wait()",
        "        scope.reschedule(asyncio.get_running_loop().time())",
        "        await asyncio.sleep(1)",
    ),
    "a TaskGroup": (
        "async def fail():",
        "    raise ValueError('a child failed')",
        "async def around():",
        "    async with asyncio.TaskGroup() as group:",
        "        async for token in manager:",
        "            pass",
        "        await stopped.wait()",
        "        group.create_task(fail())",
        "        await asyncio.sleep(1)",
    ),
}
"""Reproduction lines of each scope around the consumer (the consumer task is ``around()``)."""

_SCOPE_END: Final = (
    "stopped = asyncio.Event()",
    "consumer = asyncio.create_task(around())",
    "await until_blocked(probe)",
    STOP,
    "stopped.set()",
    "await asyncio.wait([consumer], timeout=1)",
    "print(repr(consumer.exception()))  # TimeoutError or an ExceptionGroup, never CancelledError",
)


@check(
    "SM-26",
    _MANAGER,
    summary="after a stop, asyncio.timeout(), TaskGroup and wait_for around the consumer work",
)
async def timeouts_and_task_groups_keep_working(target: ManagerTarget, ctx: CheckContext) -> None:
    scenarios: list[tuple[str, Any]] = [("asyncio.wait_for()", _in_wait_for)]
    if sys.version_info >= (3, 11):
        scenarios += [("asyncio.timeout()", _in_timeout), ("a TaskGroup", _in_task_group)]
    for name, scenario in scenarios:
        rig = await make_rig(target, ctx, BLOCKED, lock=True, after=AfterProbe())
        if sys.version_info < (3, 11) and name == "asyncio.wait_for()":  # noted once the check applies
            ctx.note(_NO_COUNT)
        consumer = ctx.spawn(scenario(rig), name=f"lmstream consumer in {name}")
        if not await _blocked_then_stopped(ctx, rig, consumer, name):
            continue
        if not await ctx.wait_tasks([consumer], timeout=LATER):
            ctx.note(
                f"{name} around the consumer: it had not ended {seconds(LATER)} after the stop (not judged)"
            )
            continue
        verdict = "the consumer's task ended cancelled" if consumer.cancelled() else consumer.result()
        if verdict != "ok":
            raise _fail(
                f"with the engine blocked and a stop: {verdict}",
                stop_reproduction(ctx, rig.items, [*_SCOPES[name], *_SCOPE_END], lock=True, after=True),
            )


async def _blocked_then_stopped(ctx: CheckContext, rig: Rig, consumer: asyncio.Task[Any], name: str) -> bool:
    """Stop once the engine is blocked under ``consumer``; release the engine if the stop needs it (SM-24).
    Whether the stop was made."""
    await until(ctx, lambda: rig.probe.blocked or consumer.done(), timeout=LATER)
    if not rig.probe.blocked:
        ctx.note(f"{name} around the consumer: the engine never blocked, no stop was tried")
        return False
    stoppers = spawn_stoppers(ctx, rig)
    if not await ctx.wait_tasks(stoppers, timeout=PROMPT):
        ctx.note(f"{name} around the consumer: the stop waited for the engine (SM-24); it was released")
        rig.probe.release()
    return True


# ---------------------------------------------------------------------------------------------- real one
@check("SM-26", _MANAGER, summary="a real cancellation of the consumer arriving with a stop still propagates")
async def real_cancellation_still_propagates(target: ManagerTarget, ctx: CheckContext) -> None:
    orders = ["the cancellation, then the stop in the same turn"]
    if sys.version_info >= (3, 11):
        orders.append("the stop, then the cancellation one turn later")
    for order in orders:
        rig = await make_rig(target, ctx, BLOCKED, lock=True, after=AfterProbe())
        if sys.version_info < (3, 11) and order is orders[0]:  # noted once the check applies
            ctx.note(
                "Python 3.10 cannot tell a stop's cancellation from a real one that follows it: only a real "
                "cancellation arriving first is tried"
            )
        consumer = Consumer(ctx, rig.manager, reraise_cancel=True)
        await wait_until_blocked(ctx, rig, consumer)
        if order.startswith("the cancellation"):
            consumer.task.cancel()
            stoppers = spawn_stoppers(ctx, rig)
        else:
            stoppers = spawn_stoppers(ctx, rig)
            await asyncio.sleep(0)  # the stop has begun (and has interrupted the consumer, if it does)
            consumer.task.cancel()
        ended = await ctx.wait_tasks([consumer.task], timeout=LATER)
        first, second = (
            ("consumer.cancel()", "stop = asyncio.create_task(manager.aclose())")
            if order.startswith("the cancellation")
            else ("stop = asyncio.create_task(manager.aclose())", "await asyncio.sleep(0)")
        )
        repro = stop_reproduction(
            ctx,
            rig.items,
            [
                *CONSUME,
                "await until_blocked(probe)",
                first,
                second,
                *([] if order.startswith("the cancellation") else ["consumer.cancel()"]),
                "await asyncio.wait([consumer], timeout=1)",
                "print(consumer.cancelled())  # True",
            ],
            lock=True,
            after=True,
        )
        where = f"with the engine blocked, {order}"
        if not ended:
            raise _fail(f"{where}: the consumer's task had not ended {seconds(LATER)} later", repro)
        if not consumer.task.cancelled():
            raise _fail(
                f"{where}: the consumer's task did not end with CancelledError ({consumer.describe()})", repro
            )
        await ctx.wait_tasks(stoppers, timeout=LATER)
