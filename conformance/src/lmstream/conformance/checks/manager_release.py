"""The manager checks of streams that end early: the consumer stops (SM-10) or is cancelled (SM-11), and the
manager must close the engine stream, release the lock and release every waiter with
:class:`~lmstream.spec.StreamIncompleteError`. Nothing may hang: waiters are given
:func:`~lmstream.conformance.checks._manager_support.waiter_bound` seconds once the consumer has finished
(kani's manager strands them here), and the message says how long it waited.
"""

from __future__ import annotations

import asyncio

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, describe_items
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import Block
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamIncompleteError

from ._manager_support import (
    AWAIT_RESULT,
    TOKENS,
    Built,
    Consumed,
    Outcome,
    Stop,
    Waiter,
    build,
    collect,
    consume,
    describe_waiters,
    engine_not_closed,
    lock_not_released,
    manager_reproduction,
    run_with_waiters,
    spawn_labelled,
    waiter_bound,
)
from ._registry import check

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER


# ---------------------------------------------------------------------------------------------- SM-10
_HOW = {
    "break": "broke out of its loop",
    "aclose": "closed its iterator with aclose()",
    "raise": "raised an exception in its loop body",
}
_REPRO_STOP = {
    "break": ["        break"],
    "aclose": ["        await iterator.aclose()", "        break"],
    "raise": ["        raise ValueError('the consumer gave up')"],
}


async def _early_stop(target: ManagerTarget, ctx: CheckContext, how: Stop) -> None:
    built = await build(target, ctx, TOKENS, lock=True)
    dropped_before = len(ctx.dropped_asyncgens)
    seen, waiters = await run_with_waiters(ctx, built, stop_after=2, how=how)
    problems: list[str] = []
    if how == "aclose":  # its aclose() has returned: the engine and the lock must be released already
        problems += [
            p
            for p in (engine_not_closed(ctx, built, dropped_before), lock_not_released(built, exact=False))
            if p
        ]
        problems = [f"when the iterator's aclose() returned, {p}" for p in problems]
    bound = await collect(ctx, waiters)
    await ctx.settle()  # a dropped iterator is finalized by now: the manager has had its chance
    if how != "aclose":
        problems += [
            p
            for p in (engine_not_closed(ctx, built, dropped_before), lock_not_released(built, exact=False))
            if p
        ]
    text = "".join(str(t) for t in TOKENS[:2])
    bad = [w for w in waiters if not _incomplete_with(w.outcome, text)]
    if seen.error is not None:
        problems.insert(0, f"the loop raised {describe_exception(seen.error)}")
    if bad:
        problems.append(describe_waiters(bad, bound))
    if problems:
        raise CheckFailure(
            f"the consumer {_HOW[how]} after 2 tokens ({describe_items(seen.tokens)}): {'; '.join(problems)}",
            expected="after an early stop the manager closes the engine stream and releases the lock no "
            "later than when its iterator is closed or finalized, and every pending and later completion()/"
            f"message()/await raises StreamIncompleteError with the text so far, {text!r}",
            reproduction=manager_reproduction(
                ctx,
                TOKENS,
                [
                    "iterator = aiter(manager)",
                    "try:",
                    "    async for token in iterator:",
                    *_REPRO_STOP[how],
                    "except ValueError:",
                    "    pass",
                    "del iterator",
                    "await asyncio.sleep(0.01)",
                    "print('lock held:', lock.locked(), '| engine stream closed:', stream.ag_frame is None)",
                    *AWAIT_RESULT,
                ],
                lock=True,
            ),
        )


def _incomplete_with(outcome: Outcome | None, text: str) -> bool:
    error = None if outcome is None else outcome.error
    return isinstance(error, StreamIncompleteError) and error.text == text


@check(
    "SM-10", _MANAGER, summary="a break closes the engine, releases the lock and every waiter (incomplete)"
)
async def break_releases_everything(target: ManagerTarget, ctx: CheckContext) -> None:
    await _early_stop(target, ctx, "break")


@check(
    "SM-10",
    _MANAGER,
    summary="the iterator's aclose() closes the engine and the lock before returning, then waiters",
)
async def aclose_releases_everything(target: ManagerTarget, ctx: CheckContext) -> None:
    await _early_stop(target, ctx, "aclose")


@check(
    "SM-10", _MANAGER, summary="an exception in the loop body closes the engine, the lock and every waiter"
)
async def raise_in_loop_body_releases_everything(target: ManagerTarget, ctx: CheckContext) -> None:
    await _early_stop(target, ctx, "raise")


# ---------------------------------------------------------------------------------------------- SM-11
_SM11_EXPECTED = (
    "when the consuming task is cancelled, CancelledError propagates in that task; the engine stream is "
    "closed, the lock released, and waiters in other tasks get StreamIncompleteError"
)


async def _cancelled_consumer(
    ctx: CheckContext, built: Built, *, waiters: list[Waiter], contended: bool
) -> tuple[asyncio.Task[Consumed], Consumed]:
    """Start the consumer in a task of its own and cancel it where it blocks: in the engine (at the script's
    Block) or, ``contended``, waiting for the lock the check holds."""
    seen = Consumed()

    async def step(received: int) -> None:
        if received == 1 and not waiters:
            waiters.extend(spawn_labelled(ctx, built.manager, "during iteration"))
            await ctx.settle()

    task = ctx.spawn(consume(ctx, built.manager, step=step, into=seen), name="lmstream consumer")
    if contended:
        waiters.extend(spawn_labelled(ctx, built.manager, "while the consumer waits for the lock"))
        await ctx.settle()
        if task.done() or built.probe.requests:
            raise CheckSkipped(
                "the manager read the engine stream while another task held its lock, so its consumer was "
                "never waiting for the lock (SM-12's check reports it)"
            )
    else:
        await ctx.bounded(built.block_reached(), what="the engine to reach its blocking step")
    task.cancel()
    await ctx.wait_tasks([task], timeout=waiter_bound(ctx))
    return task, seen


def _task_end(task: asyncio.Task[Consumed]) -> str | None:
    """Why the cancelled consumer task did not end with CancelledError (``None`` when it did)."""
    if not task.done():
        return "the consumer task was still running after it was cancelled: the cancellation was swallowed"
    if task.cancelled():
        return None
    error = task.exception()
    if error is None:
        return "the consumer task ended normally: the manager swallowed the CancelledError"
    return f"the consumer task raised {describe_exception(error)} instead of CancelledError"


@check(
    "SM-11",
    _MANAGER,
    summary="cancelling the consumer inside the engine ends it with CancelledError and releases everything",
)
async def cancellation_in_the_engine_releases_everything(target: ManagerTarget, ctx: CheckContext) -> None:
    script = (*TOKENS[:2], Block(), *TOKENS[2:])
    built = await build(target, ctx, script, lock=True)
    dropped_before = len(ctx.dropped_asyncgens)
    waiters: list[Waiter] = []
    task, seen = await _cancelled_consumer(ctx, built, waiters=waiters, contended=False)
    waiters += spawn_labelled(ctx, built.manager, "after the cancellation")
    bound = await collect(ctx, waiters)
    await ctx.settle()
    problems = [
        p
        for p in (
            _task_end(task),
            engine_not_closed(ctx, built, dropped_before),
            lock_not_released(built, exact=False),
        )
        if p
    ]
    bad = [w for w in waiters if w.outcome is None or not isinstance(w.outcome.error, StreamIncompleteError)]
    if bad:
        problems.append(describe_waiters(bad, bound, since="the consumer was cancelled"))
    if problems:
        raise CheckFailure(
            f"the consumer was cancelled while awaiting token {len(seen.tokens) + 1} (the engine blocked): "
            f"{'; '.join(problems)}",
            expected=_SM11_EXPECTED,
            reproduction=manager_reproduction(
                ctx,
                script,
                [
                    "async def consume():",
                    "    async for token in manager:",
                    "        print(repr(token))",
                    "task = asyncio.ensure_future(consume())",
                    "await asyncio.sleep(0.01)  # the engine is blocked at Block()",
                    "task.cancel()",
                    "print(await asyncio.gather(task, return_exceptions=True))  # expect [CancelledError()]",
                    "print('lock held:', lock.locked(), '| engine stream closed:', stream.ag_frame is None)",
                    *AWAIT_RESULT,
                ],
                lock=True,
            ),
        )


@check(
    "SM-11",
    _MANAGER,
    summary="cancelling the consumer while it waits for a contended lock: CancelledError, engine closed",
)
async def cancellation_waiting_for_the_lock(target: ManagerTarget, ctx: CheckContext) -> None:
    built = await build(target, ctx, TOKENS, lock=True)
    lock = built.lock
    assert lock is not None
    await lock.acquire()  # the check holds the lock: the manager must wait for it
    waiters: list[Waiter] = []
    task, _ = await _cancelled_consumer(ctx, built, waiters=waiters, contended=True)
    waiters += spawn_labelled(ctx, built.manager, "after the cancellation")
    bound = await collect(ctx, waiters)
    problems = [p for p in (_task_end(task),) if p]
    if lock.acquisitions != 1 or lock.releases != 0 or not lock.locked():
        problems.append(
            f"the lock, held by the check throughout, was {lock.describe()} (the manager never got it, so "
            "it must neither take nor release it)"
        )
    stream = built.stream
    if getattr(stream, "ag_frame", None) is not None:
        problems.append("the engine stream, never started, was not closed (its aclose() was never awaited)")
    bad = [w for w in waiters if w.outcome is None or not isinstance(w.outcome.error, StreamIncompleteError)]
    if bad:
        problems.append(describe_waiters(bad, bound, since="the consumer was cancelled"))
    lock.release()
    if problems:
        raise CheckFailure(
            "the consumer was cancelled while waiting for the lock, which another task held: "
            f"{'; '.join(problems)}",
            expected=_SM11_EXPECTED,
            reproduction=manager_reproduction(
                ctx,
                TOKENS,
                [
                    "await lock.acquire()  # another task holds the lock",
                    "async def consume():",
                    "    async for token in manager:",
                    "        print(repr(token))",
                    "task = asyncio.ensure_future(consume())",
                    "await asyncio.sleep(0.01)",
                    "task.cancel()",
                    "print(await asyncio.gather(task, return_exceptions=True))  # expect [CancelledError()]",
                    "print('engine stream closed:', stream.ag_frame is None)",
                    *AWAIT_RESULT,
                ],
                lock=True,
            ),
        )
