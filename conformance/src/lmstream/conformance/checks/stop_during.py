"""The checks of a stop during iteration (SM-24): the consumer's loop ends at its next step, cleanly and at
once, wherever the consumer is (blocked in the engine, busy in its loop body, waiting for the lock); then the
engine is closed, the lock released no more than once, ``after`` never called and every result raises
:class:`~lmstream.spec.StreamIncompleteError`.

A lock still held after the stop is reported by SM-22's checks (``aclose()`` returned before the stop was
complete), and the error's reason and text by SM-28's: see :mod:`._stop_support`.
"""

from __future__ import annotations

from collections.abc import Sequence

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, describe_items, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import describe_item

from ._manager_support import Outcome
from ._registry import check
from ._stop_consumers import (
    Consumer,
    judge_incomplete,
    pending_outcomes,
    results_now,
    spawn_pending,
    stop_while_blocked,
    wait_until_blocked,
)
from ._stop_snippets import CONSUME, ENDED_AT_ONCE, RESULT, stop_reproduction
from ._stop_support import (
    BLOCKED,
    LATER,
    PROMPT,
    SCRIPT,
    AfterProbe,
    Rig,
    make_rig,
    spawn_stoppers,
    turns_until,
    until,
)

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_EXPECTED = (
    "a stop during iteration ends the consumer's loop at its next step, at once and without an exception, "
    "even while the engine (or the lock) is blocked; then the engine stream is closed, the lock released "
    "once, after never called, and every pending and later result raises StreamIncompleteError"
)


def _fail(observed: str, repro: str) -> CheckFailure:
    return CheckFailure(observed, expected=_EXPECTED, reproduction=repro)


def _judge_loop(consumer: Consumer, where: str, received: int, repro: str) -> None:
    """The loop raised nothing and got no token after the stop (it had ``received`` when the stop came)."""
    if consumer.error is not None:
        raise _fail(f"{where}, the consumer's loop raised {describe_exception(consumer.error)}", repro)
    if len(consumer.tokens) > received:
        late = describe_items(consumer.tokens[received:])
        raise _fail(f"{where}, the consumer's loop received {late} after the stop", repro)


async def _judge_aftermath(
    ctx: CheckContext,
    rig: Rig,
    pending: Sequence[tuple[str, Outcome]],
    where: str,
    repro: str,
    *,
    cleanup_done: bool = False,
    held_elsewhere: int = 0,
) -> None:
    """What must follow a stop during iteration, within :data:`LATER`: the engine closed (its cleanup
    finished, with ``cleanup_done``), the lock released at most once (``held_elsewhere``: acquisitions
    that are not the manager's), no after, every result incomplete."""
    closed = await until(
        ctx, lambda: rig.engine_closed() and (rig.probe.cleanup_ran or not cleanup_done), timeout=LATER
    )
    if not closed:
        raise _fail(f"{where}, the engine stream had not been closed {seconds(LATER)} after the stop", repro)
    lock = rig.lock
    if lock is not None and lock.releases > 1:
        raise _fail(f"{where}, the lock was released {lock.releases} times", repro)
    if lock is not None and lock.acquisitions - held_elsewhere > lock.releases:
        ctx.note(f"{where}, the lock was still held after the stop (SM-22's check reports it)")
    if rig.after is not None and rig.after.calls:
        raise _fail(f"{where}, after was called, with {describe_item(rig.after.calls[0])}", repro)
    wrong = judge_incomplete([*pending, *await results_now(ctx, rig.manager)])
    if wrong is not None:
        raise _fail(f"{where}, {wrong}", repro)


# ---------------------------------------------------------------------------------------------- engine
@check(
    "SM-24",
    _MANAGER,
    summary="aclose() while the engine is blocked ends the loop at once, without the engine",
)
async def stop_ends_a_loop_blocked_in_the_engine(target: ManagerTarget, ctx: CheckContext) -> None:
    rig = await make_rig(target, ctx, BLOCKED, lock=True, after=AfterProbe(), cleanup_turns=3)
    consumer = Consumer(ctx, rig.manager)
    await wait_until_blocked(ctx, rig, consumer)
    pending = spawn_pending(ctx, rig.manager)
    stop = await stop_while_blocked(ctx, rig, consumer)
    repro = stop_reproduction(
        ctx,
        rig.items,
        [
            *CONSUME,
            "await until_blocked(probe)  # the engine awaits its third item",
            "stop = asyncio.create_task(manager.aclose())",
            *ENDED_AT_ONCE,
            "probe.release()  # in case it did not",
            "await asyncio.wait_for(stop, 1)",
            "print('engine closed:', stream.ag_frame is None, 'lock held:', lock.locked(), 'after:', calls)",
            f"{RESULT}  # StreamIncompleteError",
        ],
        lock=True,
        after=True,
        cleanup_turns=3,
    )
    where = "after aclose() with the engine blocked awaiting its third item"
    if not stop.prompt:
        then = (
            f"; it ended {seconds(stop.waited)} after the stop, once the check released the engine"
            if consumer.ended
            else ""
        )
        raise _fail(
            f"{where}, the consumer's loop had not ended {seconds(PROMPT)} later: the stop waited for the "
            f"engine's next item{then} ({consumer.describe()})",
            repro,
        )
    _judge_loop(consumer, where, 2, repro)
    await _judge_aftermath(ctx, rig, await pending_outcomes(ctx, pending), where, repro)


# ---------------------------------------------------------------------------------------------- loop body
@check(
    "SM-24",
    _MANAGER,
    summary="aclose() while the consumer is busy, engine cleanup slow: its next step ends cleanly",
)
async def stop_ends_a_loop_busy_in_its_body(target: ManagerTarget, ctx: CheckContext) -> None:
    rig = await make_rig(target, ctx, SCRIPT, lock=True, after=AfterProbe(), cleanup_turns=8)
    consumer = Consumer(ctx, rig.manager, pause_at=2)
    if not await until(ctx, lambda: consumer.paused or consumer.ended, timeout=LATER) or not consumer.paused:
        raise CheckSkipped(
            f"the consumer never got 2 tokens ({consumer.describe()}), so it was never busy in its loop body "
            "during a stream (see the SM-1 to SM-17 checks)"
        )
    pending = spawn_pending(ctx, rig.manager)
    stoppers = spawn_stoppers(ctx, rig)
    # The stop begins closing the engine, which takes 8 event-loop turns; the consumer's next step comes
    # while it does (or as soon as the stop returned, for a manager that does not close it at once).
    await turns_until(lambda: rig.probe.cleanup_started or stoppers[0].done(), turns=40)
    consumer.resume()
    prompt = await ctx.wait_tasks([consumer.task], timeout=PROMPT)
    body = [
        "paused, resume = asyncio.Event(), asyncio.Event()",
        "tokens = []",
        "async def consume():",
        "    async for token in manager:",
        "        tokens.append(token)",
        "        if len(tokens) == 2:",
        "            paused.set()",
        "            await resume.wait()  # busy in the loop body",
        "consumer = asyncio.create_task(consume())",
        "await paused.wait()",
        "stop = asyncio.create_task(manager.aclose())",
        "for _ in range(40):  # until the engine's close has begun (it takes 8 turns)",
        "    if probe.cleanup_started:",
        "        break",
        "    await asyncio.sleep(0)",
        "resume.set()",
        "await asyncio.wait_for(consumer, 0.1)  # the next step ends the loop, without an exception",
        "await asyncio.wait_for(stop, 1)",
        "print(tokens, probe.cleanup_ran, lock.locked(), calls)",
        f"{RESULT}  # StreamIncompleteError",
    ]
    repro = stop_reproduction(ctx, rig.items, body, lock=True, after=True, cleanup_turns=8)
    where = "after aclose() from another task while the consumer was busy in its loop body"
    if not prompt:
        raise _fail(
            f"{where}, its next step had not ended the loop {seconds(PROMPT)} after it was taken "
            f"({consumer.describe()})",
            repro,
        )
    _judge_loop(consumer, where, 2, repro)
    await _judge_aftermath(ctx, rig, await pending_outcomes(ctx, pending), where, repro, cleanup_done=True)


# ---------------------------------------------------------------------------------------------- lock
@check(
    "SM-24",
    _MANAGER,
    summary="aclose() while the consumer waits for a lock held elsewhere ends the loop at once",
)
async def stop_ends_a_loop_waiting_for_the_lock(target: ManagerTarget, ctx: CheckContext) -> None:
    rig = await make_rig(target, ctx, SCRIPT, lock=True, after=AfterProbe())
    lock = rig.lock
    assert lock is not None
    await lock.acquire()  # held elsewhere (by the check) for the whole stop
    consumer = Consumer(ctx, rig.manager)
    await ctx.settle(5)
    if rig.probe.requests or consumer.ended:
        lock.release()
        raise CheckSkipped(
            f"the manager did not wait for the lock (the engine was read {rig.probe.requests} time(s); "
            f"{consumer.describe()}), so there was no wait to stop (see SM-12)"
        )
    pending = spawn_pending(ctx, rig.manager)
    stoppers = spawn_stoppers(ctx, rig)
    prompt = await ctx.wait_tasks([consumer.task], timeout=PROMPT)
    repro = stop_reproduction(
        ctx,
        rig.items,
        [
            "await lock.acquire()  # held elsewhere",
            *CONSUME,
            "await asyncio.sleep(0.01)  # the consumer waits for the lock",
            "stop = asyncio.create_task(manager.aclose())",
            *ENDED_AT_ONCE,
            "print('requests:', probe.requests, 'engine closed:', stream.ag_frame is None, 'after:', calls)",
            "lock.release()",
            "await asyncio.wait_for(stop, 1)",
            f"{RESULT}  # StreamIncompleteError",
        ],
        lock=True,
        after=True,
    )
    where = "after aclose() while the consumer waited for a lock held elsewhere"
    if not prompt:
        lock.release()
        await ctx.wait_tasks([consumer.task, *stoppers], timeout=LATER)
        raise _fail(
            f"{where}, the consumer's loop had not ended {seconds(PROMPT)} later: the stop waited for the "
            f"lock ({consumer.describe()})",
            repro,
        )
    _judge_loop(consumer, where, 0, repro)
    if rig.probe.requests:
        raise _fail(f"{where}, the engine stream was read ({rig.probe.requests} request(s))", repro)
    if lock.releases or lock.acquisitions != 1:
        raise _fail(
            f"{where}, the manager touched the lock it never got: {lock.acquisitions - 1} acquisition(s), "
            f"{lock.releases} release(s) of its own",
            repro,
        )
    await _judge_aftermath(ctx, rig, await pending_outcomes(ctx, pending), where, repro, held_elsewhere=1)
    lock.release()
    await ctx.settle(5)
    if lock.acquisitions != 1 or lock.locked():
        raise _fail(f"{where}, once the lock was free, the stopped manager took it", repro)
    await ctx.wait_tasks(stoppers, timeout=LATER)
