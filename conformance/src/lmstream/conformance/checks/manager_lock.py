"""The manager checks of the lock (SM-12): held from before the first item is requested until the stream
has ended, and released exactly once on every path: completion, engine error, protocol error, a failing
``after``, early stop and cancellation.

The lock is a :class:`~lmstream.conformance.checks._manager_support.CountingLock` (an ``asyncio.Lock`` that
counts); the engine stream is wrapped in a
:class:`~lmstream.conformance.checks._manager_support.LockWatch`, which records whether the lock was held
at each request. Releases that happen when a dropped iterator is finalized are awaited (bounded by
:func:`~lmstream.conformance.checks._manager_support.waiter_bound`), never slept for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from lmstream.conformance.context import CheckContext, CheckTimeout
from lmstream.conformance.describe import describe_exception
from lmstream.conformance.model import CheckFailure, TargetKind
from lmstream.conformance.scripted import Block, Fail
from lmstream.conformance.targets import ManagerTarget

from ._manager_support import (
    TOKENS,
    Built,
    CountingLock,
    LockWatch,
    Stop,
    build,
    consume,
    lock_not_released,
    manager_reproduction,
    read_then_wait,
    waiter_bound,
)
from ._registry import check

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_EXPECTED = (
    "a given lock is held from before the first item is requested until the stream has ended, and released "
    "exactly once on every path: completion, engine error, protocol error, early stop, cancellation"
)


def _lock(built: Built) -> CountingLock:
    lock = built.lock
    if lock is None:  # pragma: no cover - every check here builds with lock=True
        raise RuntimeError("the manager was built without a lock")
    return lock


async def _released(ctx: CheckContext, built: Built, count: int = 1) -> None:
    """Wait (bounded by the waiter bound) until the lock was released ``count`` times in all, then let the
    loop turn, so that a second release would be seen too."""
    with contextlib.suppress(CheckTimeout):
        await ctx.bounded(
            _lock(built).wait_released(count), what="the lock's release", timeout=waiter_bound(ctx)
        )
    await ctx.settle()


def _failure(
    ctx: CheckContext,
    what: str,
    problem: str,
    script: Sequence[object],
    body: list[str],
    *,
    probe: bool = False,
) -> CheckFailure:
    return CheckFailure(
        f"{what}: {problem}",
        expected=_EXPECTED,
        reproduction=manager_reproduction(ctx, script, body, lock=True, probe=probe),
    )


@check(
    "SM-12",
    _MANAGER,
    summary="a contended lock is awaited before the first request, held at every request, released once",
)
async def lock_held_for_the_whole_stream(target: ManagerTarget, ctx: CheckContext) -> None:
    built = await build(target, ctx, TOKENS, lock=True, wrap=LockWatch)
    lock = _lock(built)
    watch: LockWatch = built.stream
    await lock.acquire()  # another holder first: the manager must wait for it
    consumer = ctx.spawn(consume(ctx, built.manager), name="lmstream consumer")
    await ctx.settle(5)
    early = built.probe.requests
    got = (
        "" if not consumer.done() else f" (the consumer's loop already ended: {consumer.result().describe()})"
    )
    lock.release()
    finished = await ctx.wait_tasks([consumer])
    body = [
        "await lock.acquire()  # another task holds the lock",
        "task = asyncio.ensure_future(manager.completion())",
        "await asyncio.sleep(0.01)",
        "print('items requested while another task held the lock:', probe.requests, '(expected 0)')",
        "lock.release()",
        "await asyncio.wait_for(task, 1)",
        "print('lock held after the end:', lock.locked())",
    ]
    what = "a full read, the lock first held by another task"

    def fail(problem: str) -> CheckFailure:
        return _failure(ctx, what, problem, TOKENS, body, probe=True)

    if early:
        raise fail(f"the engine was asked for {early} item(s) while another task held the lock{got}")
    if not finished:
        raise fail("the consumer's loop had not ended when the budget ran out")
    seen = consumer.result()
    if seen.error is not None:
        raise fail(f"the loop raised {describe_exception(seen.error)}")
    unheld = [index + 1 for index, held in enumerate(watch.held_at_requests) if not held]
    if unheld:
        raise fail(
            f"the lock was not held when the engine was asked for item(s) {unheld} of "
            f"{len(watch.held_at_requests)} (the last request is the one that ends the stream)"
        )
    await _released(ctx, built, 2)
    problem = lock_not_released(built, held_by_others=1)
    if problem:
        raise fail(f"after the stream ended normally, {problem}")


class _AfterFailed(Exception):
    """What a failing ``after`` raises in the SM-12 check."""


async def _fail_after(completion: object) -> None:
    raise _AfterFailed("after could not record the reply")


@check(
    "SM-12",
    _MANAGER,
    summary="the lock is released exactly once on an engine error, a protocol error and a failing after",
)
async def lock_released_once_on_failure(target: ManagerTarget, ctx: CheckContext) -> None:
    cases: list[tuple[str, tuple[object, ...], bool]] = [
        ("the engine raised mid-stream", (*TOKENS[:2], Fail(ConnectionResetError("engine failure"))), False),
        ("the engine yielded bytes (an ES-2 violation)", (*TOKENS[:2], b"lo", *TOKENS[2:]), False),
        ("after raised", TOKENS, True),
    ]
    for what, script, failing_after in cases:
        built = await build(target, ctx, script, lock=True, after=_fail_after if failing_after else False)
        seen = await consume(ctx, built.manager)
        await _released(ctx, built)
        problem = lock_not_released(built)
        if problem:
            raise _failure(ctx, f"{what} ({seen.describe()})", problem, script, read_then_wait(lock=True))


@check("SM-12", _MANAGER, summary="the lock is released exactly once after a break, an aclose() or a raise")
async def lock_released_once_on_early_stop(target: ManagerTarget, ctx: CheckContext) -> None:
    hows: tuple[Stop, ...] = ("break", "aclose", "raise")
    for how in hows:
        built = await build(target, ctx, TOKENS, lock=True)
        seen = await consume(ctx, built.manager, stop_after=2, how=how)
        await _released(ctx, built)
        problem = lock_not_released(built)
        if problem:
            raise _failure(
                ctx,
                f"the consumer left its loop after 2 tokens ({how}; {seen.describe()})",
                problem,
                TOKENS,
                [
                    "async for token in manager:",
                    "    break",
                    "await asyncio.sleep(0.01)",
                    "print('lock held:', lock.locked())",
                ],
            )


@check(
    "SM-12",
    _MANAGER,
    summary="on cancellation the lock is released once, or never taken when it was still being awaited",
)
async def lock_released_once_on_cancellation(target: ManagerTarget, ctx: CheckContext) -> None:
    script = (*TOKENS[:2], Block(), *TOKENS[2:])
    built = await build(target, ctx, script, lock=True)
    consumer = ctx.spawn(consume(ctx, built.manager), name="lmstream consumer")
    await ctx.bounded(built.block_reached(), what="the engine to reach its blocking step")
    consumer.cancel()
    await ctx.wait_tasks([consumer], timeout=waiter_bound(ctx))
    await _released(ctx, built)
    body = [
        "async def consume():",
        "    async for token in manager:",
        "        print(repr(token))",
        "task = asyncio.ensure_future(consume())",
        "await asyncio.sleep(0.01)",
        "task.cancel()",
        "await asyncio.gather(task, return_exceptions=True)",
        "print('lock held:', lock.locked())",
    ]
    problem = lock_not_released(built)
    if problem:
        raise _failure(ctx, "the consumer was cancelled while the engine blocked", problem, script, body)

    built = await build(target, ctx, TOKENS, lock=True)
    lock = _lock(built)
    await lock.acquire()  # held elsewhere: the consumer is cancelled while waiting for it
    consumer = ctx.spawn(consume(ctx, built.manager), name="lmstream consumer")
    await ctx.settle(5)
    consumer.cancel()
    await ctx.wait_tasks([consumer], timeout=waiter_bound(ctx))
    taken, released = lock.acquisitions - 1, lock.releases
    lock.release()
    await ctx.settle(5)  # a manager still trying to take the lock would take it now
    if taken or released or lock.locked():
        after = f"; once the other holder released it, it was {'held again' if lock.locked() else 'free'}"
        raise _failure(
            ctx,
            "the consumer was cancelled while waiting for the lock another task held",
            f"the manager took the lock {taken} time(s) and released it {released} time(s) while the other "
            f"holder had it{after} (it must neither take nor release a lock it never got)",
            TOKENS,
            ["await lock.acquire()", *body[:-1], "print('still ours:', lock.locked())"],
        )
