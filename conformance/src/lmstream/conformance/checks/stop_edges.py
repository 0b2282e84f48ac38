"""The stop checks at the edges of a stream: SM-23 (a stop once the engine stream has ended changes
nothing, even while ``after`` runs) and SM-25 (a stop before iteration reads nothing of the engine).

SM-23 is judged as a difference: the same scenario is run without the stop, and the stopped run must end
exactly as that one did (so a manager's own SM-4, SM-7 or SM-13 failures are not counted again here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, seconds
from lmstream.conformance.model import CheckFailure, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import describe_item

from ._manager_support import Outcome
from ._registry import check
from ._stop_consumers import Consumer, judge_incomplete, results_now
from ._stop_snippets import CONSUME, RESULT, STOP, stop_reproduction
from ._stop_support import (
    LATER,
    AfterProbe,
    Rig,
    as_state,
    describe_state,
    make_rig,
    spawn_stoppers,
    state_of,
    until,
)

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER


# ---------------------------------------------------------------------------------------------- SM-23
@dataclass
class _Ending:
    """How a stream ended, as comparable words: the loop, the results, state, after, the lock."""

    loop: str
    results: list[str]
    state: str
    after: str
    lock: str

    def differences(self, other: _Ending) -> list[str]:
        names = ("the consumer's loop", "the results", "state", "after", "the lock")
        mine = (self.loop, self.results, self.state, self.after, self.lock)
        theirs = (other.loop, other.results, other.state, other.after, other.lock)
        return [
            f"{name}: {a if isinstance(a, str) else '; '.join(a)} (without a stop: "
            f"{b if isinstance(b, str) else '; '.join(b)})"
            for name, a, b in zip(names, mine, theirs, strict=True)
            if a != b
        ]


def _describe_result(outcome: Outcome, after: AfterProbe) -> str:
    given = after.calls[0] if after.calls else None
    if outcome.pending:
        return "still waiting"
    if outcome.error is not None:
        if outcome.error is after.error:
            return "raised the error after raised"
        return f"raised {type(outcome.error).__name__}"
    if given is not None and outcome.value is given:
        return "returned the completion after was given"
    if given is not None and outcome.value is getattr(given, "message", None):
        return "returned that completion's message"
    return f"returned {describe_item(outcome.value)}"


async def _end_while_after_runs(
    target: ManagerTarget, ctx: CheckContext, *, stop: bool, error: Exception | None
) -> _Ending | None:
    """Run the standard script with a gated after; with ``stop``, aclose() while after runs. ``None`` when
    after was never called (nothing to judge: SM-13's business)."""
    after = AfterProbe(gated=True, error=error)
    rig = await make_rig(target, ctx, lock=True, after=after)
    consumer = Consumer(ctx, rig.manager)
    if not await until(ctx, lambda: after.entered or consumer.ended, timeout=LATER) or not after.entered:
        return None
    stoppers = spawn_stoppers(ctx, rig) if stop else []
    await ctx.settle(5)  # the stop, if any, is under way while after still runs
    after.release()
    await ctx.wait_tasks([consumer.task, *stoppers], timeout=LATER)
    labelled = await results_now(ctx, rig.manager)
    if consumer.error is not None and consumer.error is error:
        loop = f"{len(consumer.tokens)} token(s), then it raised the error after raised"
    elif consumer.error is not None:
        loop = f"{len(consumer.tokens)} token(s), then it raised {type(consumer.error).__name__}"
    else:
        loop = f"{len(consumer.tokens)} token(s), then it {'ended' if consumer.ended else 'had not ended'}"
    ran = "cancelled" if after.cancelled else "ran to its end" if after.finished or after.error else "running"
    lock = rig.lock
    assert lock is not None
    return _Ending(
        loop,
        [f"{label} {_describe_result(outcome, after)}" for label, outcome in labelled],
        describe_state(state_of(rig.manager)),
        f"called {len(after.calls)} time(s), {ran}",
        f"acquired {lock.acquisitions}, released {lock.releases}",
    )


def _same_outcome(first: Outcome, second: Outcome) -> bool:
    """The same value (the same object, or an equal one: SM-7 is not judged here), or the same error type."""
    if first.pending or second.pending:
        return first.pending == second.pending
    if first.error is not None or second.error is not None:
        return type(first.error) is type(second.error)
    if first.value is second.value:
        return True
    try:
        return bool(first.value == second.value)
    except Exception:  # an __eq__ that raises is not equality
        return False


class _AfterFailed(Exception):
    """What the after callback of SM-23's second case raises."""


@check("SM-23", _MANAGER, summary="aclose() after the end, or while after runs, changes nothing at all")
async def stop_after_the_end_changes_nothing(target: ManagerTarget, ctx: CheckContext) -> None:
    expected = (
        "once the engine stream has ended, aclose() changes nothing: after runs to its end and the stream "
        "completes (or fails, if after raises) exactly as it would have"
    )
    # After the end: the results before and after the stop are the same.
    rig = await make_rig(target, ctx, lock=True, after=AfterProbe())
    consumer = Consumer(ctx, rig.manager)
    await ctx.wait_tasks([consumer.task], timeout=LATER)
    state_before = as_state(state_of(rig.manager))
    before = await results_now(ctx, rig.manager)
    stoppers = spawn_stoppers(ctx, rig, 2)
    await ctx.wait_tasks(stoppers, timeout=LATER)
    after_stop = await results_now(ctx, rig.manager)
    state_after = as_state(state_of(rig.manager))
    repro = stop_reproduction(
        ctx,
        rig.items,
        [
            *CONSUME,
            "await asyncio.wait_for(consumer, 1)",
            "print(await manager.completion(), manager.state)",
            STOP,
            "print(await manager.completion(), manager.state, calls)",
        ],
        lock=True,
        after=True,
    )
    for (label, first), (_, second) in zip(before, after_stop, strict=True):
        if not _same_outcome(first, second):
            raise CheckFailure(
                f"after the end, {label} {first.describe()} before aclose() and {second.describe()} after it",
                expected=expected,
                reproduction=repro,
            )
    if state_after != state_before:
        raise CheckFailure(
            f"after the end, state was {describe_state(state_before)} before aclose() and "
            f"{describe_state(state_of(rig.manager))} after it",
            expected=expected,
            reproduction=repro,
        )
    if rig.after is not None and len(rig.after.calls) > 1:
        raise CheckFailure(
            f"after the end, aclose() made the manager call after again ({len(rig.after.calls)} calls)",
            expected=expected,
            reproduction=repro,
        )

    # While after runs (it returns, or it raises): the same ending as without the stop.
    body = [
        *CONSUME,
        "await asyncio.sleep(0.01)",
        f"{STOP}  # while after runs",
        "await asyncio.wait_for(consumer, 1)",
        "print(tokens, manager.state, calls)",
        RESULT,
    ]
    slow_after = [
        "calls.append(completion)",
        "await asyncio.sleep(0.05)  # still running when the stop comes",
    ]
    for error in (None, _AfterFailed("after failed")):
        control = await _end_while_after_runs(target, ctx, stop=False, error=error)
        stopped = await _end_while_after_runs(target, ctx, stop=True, error=error)
        if control is None or stopped is None:
            ctx.note("after was never called (see SM-13): a stop while it runs was not tried")
            continue
        differences = stopped.differences(control)
        if differences:
            how = "returned" if error is None else "raised"
            raise CheckFailure(
                f"with aclose() while after ran (after then {how}), " + "; ".join(differences),
                expected=expected,
                reproduction=stop_reproduction(
                    ctx, rig.items, body, lock=True, after=True, after_body=slow_after
                ),
            )


# ---------------------------------------------------------------------------------------------- SM-25
@check(
    "SM-25",
    _MANAGER,
    summary="aclose() before iteration: engine closed unread, iteration empty, results raise",
)
async def stop_before_iteration_reads_nothing(target: ManagerTarget, ctx: CheckContext) -> None:
    expected = (
        "a stop before iteration closes the engine stream without iterating it; a later iteration yields "
        "nothing (and raises nothing); results raise StreamIncompleteError; the lock is never taken and "
        "after never called"
    )
    rig = await make_rig(target, ctx, lock=True, after=AfterProbe())
    body = [
        STOP,
        "print('requests:', probe.requests, 'engine closed:', stream.ag_frame is None)",
        "print([token async for token in manager])",
        "print('requests:', probe.requests, 'lock taken:', lock.locked(), 'after:', calls)",
        RESULT,
    ]
    repro = stop_reproduction(ctx, rig.items, body, lock=True, after=True)
    stoppers = spawn_stoppers(ctx, rig)
    if not await ctx.wait_tasks(stoppers, timeout=LATER):
        ctx.note(f"aclose() before iteration had not returned after {seconds(LATER)} (see SM-22)")
    await _judge_unread(ctx, rig, "after aclose()", expected, repro)
    consumer = Consumer(ctx, rig.manager)
    await ctx.wait_tasks([consumer.task], timeout=LATER)
    if not consumer.ended or consumer.error is not None or consumer.tokens:
        raise CheckFailure(
            f"iterating the manager after a stop before iteration: {consumer.describe()}",
            expected=expected,
            reproduction=repro,
        )
    await _judge_unread(ctx, rig, "after the later iteration", expected, repro)
    wrong = judge_incomplete(await results_now(ctx, rig.manager))
    if wrong is not None:
        raise CheckFailure(f"after a stop before iteration, {wrong}", expected=expected, reproduction=repro)

    # The iterator was taken (aiter()) but never stepped when the stop came.
    rig = await make_rig(target, ctx, lock=True, after=AfterProbe())
    iterator = aiter(rig.manager)
    stoppers = spawn_stoppers(ctx, rig)
    await ctx.wait_tasks(stoppers, timeout=LATER)
    step = ctx.spawn(_first_step(iterator), name="lmstream: the first step")
    repro = stop_reproduction(
        ctx,
        rig.items,
        [
            "iterator = aiter(manager)",
            STOP,
            "print(await anext(iterator, 'nothing: ok'))",
            "print('requests:', probe.requests, 'engine closed:', stream.ag_frame is None)",
        ],
        lock=True,
        after=True,
    )
    if not await ctx.wait_tasks([step], timeout=LATER):
        raise CheckFailure(
            f"the iterator taken before a stop: its first step had not ended after {seconds(LATER)}",
            expected=expected,
            reproduction=repro,
        )
    if step.exception() is not None or step.result() is not _ENDED:
        got = step.exception()
        seen = (
            f"raised {describe_exception(got)}" if got is not None else f"gave {describe_item(step.result())}"
        )
        raise CheckFailure(
            f"the iterator taken before a stop: its first step {seen}", expected=expected, reproduction=repro
        )
    await _judge_unread(ctx, rig, "with the iterator taken before the stop", expected, repro)


_ENDED: Any = object()


async def _first_step(iterator: Any) -> object:
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return _ENDED


async def _judge_unread(ctx: CheckContext, rig: Rig, where: str, expected: str, repro: str) -> None:
    """The SM-25 conditions: the engine never read, closed (eventually), the lock never taken, no after."""
    problem = None
    if rig.probe.requests:
        problem = f"the engine stream was read ({rig.probe.requests} request(s): {rig.probe.yielded!r})"
    elif not await until(ctx, rig.engine_closed, timeout=LATER):
        problem = f"the engine stream had not been closed {seconds(LATER)} later"
    elif rig.lock is not None and rig.lock.acquisitions:
        problem = f"the lock was taken ({rig.lock.acquisitions} time(s))"
    elif rig.after is not None and rig.after.calls:
        problem = f"after was called with {describe_item(rig.after.calls[0])}"
    if problem is not None:
        raise CheckFailure(f"{where}, {problem}", expected=expected, reproduction=repro)
