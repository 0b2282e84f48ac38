"""The checks of where a stoppable manager says it stands (SM-27).

A watcher task samples ``state`` on every event-loop turn: every sample must be a
:class:`~lmstream.spec.StreamState` and every move allowed by :data:`~lmstream.spec.STATE_TRANSITIONS`. At
chosen points ``state`` must be the one the registry names, and the final state must say how the stream
visibly ended: a result, completed; a :class:`~lmstream.spec.StreamIncompleteError`, stopped after
``aclose()`` and incomplete after the consumer left; another error, failed. Judging the final state against
the visible ending, not against the script, leaves engine errors, protocol errors and ``after`` errors to
SM-8, SM-9 and SM-13, and a stop that did not stop to SM-24.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import Fail
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamIncompleteError, StreamState

from ._manager_support import TOKENS, Outcome, consume
from ._registry import check
from ._stop_consumers import Consumer, results_now, stop_while_blocked, wait_until_blocked
from ._stop_snippets import CONSUME, RESULT, STOP, stop_reproduction
from ._stop_support import (
    BLOCKED,
    LATER,
    SCRIPT,
    AfterProbe,
    Rig,
    StateWatcher,
    describe_state,
    make_rig,
    settled,
    spawn_stoppers,
    until,
)

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_SM27 = (
    "state is always a StreamState, moving only along STATE_TRANSITIONS: pending until something is "
    "requested, streaming while the lock is awaited, the engine read or after run, then completed, failed, "
    "incomplete or stopped as the stream ended, and never changing again"
)


# ---------------------------------------------------------------------------------------------- points
def _point(rig: Rig, watcher: StateWatcher, where: str, expected: StreamState, repro: str) -> None:
    value = watcher.sample()
    if value is not expected:
        raise CheckFailure(
            f"state was {describe_state(value)} {where}, not {expected.value!r} (so far: {watcher.path()})",
            expected=_SM27,
            reproduction=repro,
        )
    _judge_watcher(watcher, repro)


def _judge_watcher(watcher: StateWatcher, repro: str, where: str = "") -> None:
    if watcher.problem is not None:
        raise CheckFailure(
            f"{where}{watcher.problem} (sampled on every event-loop turn: {watcher.path()})",
            expected=_SM27,
            reproduction=repro,
        )


@check("SM-27", _MANAGER, summary="state is pending, then streaming (lock, engine, after), then completed")
async def state_at_each_point_of_a_completed_stream(target: ManagerTarget, ctx: CheckContext) -> None:
    after = AfterProbe(gated=True)
    rig = await make_rig(target, ctx, BLOCKED, lock=True, after=after)
    repro = stop_reproduction(
        ctx,
        rig.items,
        [
            "print(repr(manager.state))  # pending",
            "await lock.acquire()",
            *CONSUME,
            "await asyncio.sleep(0.01)",
            "print(repr(manager.state))  # streaming: the lock is awaited",
            "lock.release()",
            "await until_blocked(probe)",
            "print(repr(manager.state))  # streaming: the engine is read",
            "probe.release()",
            "await asyncio.wait_for(consumer, 1)",
            "print(repr(manager.state))  # completed",
        ],
        lock=True,
        after=True,
    )
    lock = rig.lock
    assert lock is not None
    await lock.acquire()
    watcher = StateWatcher(ctx, rig.manager)
    _point(rig, watcher, "right after the manager was built", StreamState.PENDING, repro)
    consumer = Consumer(ctx, rig.manager)
    await ctx.settle(5)
    _point(rig, watcher, "while the consumer waited for the lock", StreamState.STREAMING, repro)
    lock.release()
    await wait_until_blocked(ctx, rig, consumer)
    _point(rig, watcher, "while the engine was read (awaiting its third item)", StreamState.STREAMING, repro)
    rig.probe.release()
    if await until(ctx, lambda: after.entered or consumer.ended, timeout=LATER) and after.entered:
        _point(rig, watcher, "while after ran", StreamState.STREAMING, repro)
    else:
        ctx.note(f"after was never called ({consumer.describe()}): the state while it runs was not seen")
    after.release()
    await ctx.wait_tasks([consumer.task], timeout=LATER)
    await settled(ctx, rig)
    outcome = (await results_now(ctx, rig.manager))[0][1]
    ending = _ending(outcome, stopped=False)
    if ending is not None:
        _point(rig, watcher, f"once the stream had ended ({_how(outcome)})", ending, repro)
        await ctx.settle(5)
        _point(rig, watcher, "a few turns later", ending, repro)
    await watcher.stop(ctx)
    _judge_watcher(watcher, repro)


def _ending(outcome: Outcome, *, stopped: bool) -> StreamState | None:
    """The final state that says how the stream visibly ended (``None`` when its result never came)."""
    if outcome.pending:
        return None
    if outcome.error is None:
        return StreamState.COMPLETED
    if isinstance(outcome.error, StreamIncompleteError):
        return StreamState.STOPPED if stopped else StreamState.INCOMPLETE
    return StreamState.FAILED


def _how(outcome: Outcome) -> str:
    return f"completion() {outcome.describe()}"


# ---------------------------------------------------------------------------------------------- endings
_WATCH: Final = (
    "states = [manager.state]",
    "async def watch():  # on every event-loop turn",
    "    while True:",
    "        if manager.state is not states[-1]:",
    "            states.append(manager.state)",
    "        await asyncio.sleep(0)",
    "watcher = asyncio.create_task(watch())",
)
_SHOW: Final = ("await asyncio.sleep(0.05)", "watcher.cancel()", RESULT, "print(states)")
_READ: Final = (*CONSUME, "await asyncio.wait([consumer], timeout=1)")


@dataclass(frozen=True)
class _Case:
    """One way for a stream to end: a script, what is done to it, whether aclose() did it, and how a
    reproduction does the same."""

    name: str
    items: tuple[object, ...]
    run: Callable[[CheckContext, Rig], Awaitable[None]]
    snippet: tuple[str, ...]
    stopped: bool = False
    after_error: bool = False


async def _read_all(ctx: CheckContext, rig: Rig) -> None:
    await ctx.wait_tasks([Consumer(ctx, rig.manager).task], timeout=LATER)


async def _leave_after_two(ctx: CheckContext, rig: Rig) -> None:
    await consume(ctx, rig.manager, stop_after=2, how="break")


async def _cancel_blocked(ctx: CheckContext, rig: Rig) -> None:
    consumer = Consumer(ctx, rig.manager, reraise_cancel=True)
    await wait_until_blocked(ctx, rig, consumer)
    consumer.task.cancel()
    await ctx.wait_tasks([consumer.task], timeout=LATER)


async def _stop_blocked(ctx: CheckContext, rig: Rig) -> None:
    stop = await stop_while_blocked(ctx, rig, Consumer(ctx, rig.manager))
    if stop.released:
        ctx.note(stop.note())


async def _stop_first(ctx: CheckContext, rig: Rig) -> None:
    await ctx.wait_tasks(spawn_stoppers(ctx, rig), timeout=LATER)
    await _read_all(ctx, rig)


_BLOCK_THEN: Final = (*CONSUME, "await until_blocked(probe)")
_CASES: Final = (
    _Case("the engine raised", (*TOKENS[:2], Fail(RuntimeError("engine failed"))), _read_all, _READ),
    _Case("the engine yielded bytes", (*TOKENS[:2], b"bytes"), _read_all, _READ),
    _Case("after raised", SCRIPT, _read_all, _READ, after_error=True),
    _Case(
        "the consumer broke out after 2 tokens",
        SCRIPT,
        _leave_after_two,
        ("async for token in manager:", "    if token == 'lo':", "        break"),
    ),
    _Case(
        "the consumer was cancelled in the engine's wait",
        BLOCKED,
        _cancel_blocked,
        (*_BLOCK_THEN, "consumer.cancel()", "await asyncio.wait([consumer], timeout=1)"),
    ),
    _Case(
        "aclose() came with the engine blocked",
        BLOCKED,
        _stop_blocked,
        (*_BLOCK_THEN, STOP),
        stopped=True,
    ),
    _Case("aclose() came before iteration", SCRIPT, _stop_first, (STOP, *_READ), stopped=True),
)


@check(
    "SM-27",
    _MANAGER,
    summary="state moves forward only, to the state that says how the stream ended (7 ways)",
)
async def state_moves_forward_for_every_ending(target: ManagerTarget, ctx: CheckContext) -> None:
    for case in _CASES:
        after = AfterProbe(error=RuntimeError("after failed") if case.after_error else None)
        rig = await make_rig(target, ctx, case.items, lock=True, after=after)
        repro = stop_reproduction(
            ctx,
            rig.items,
            [*_WATCH, *case.snippet, *_SHOW],
            lock=True,
            after=True,
            after_body=("raise RuntimeError('after failed')",)
            if case.after_error
            else ("calls.append(completion)",),
        )
        watcher = StateWatcher(ctx, rig.manager)
        try:
            await case.run(ctx, rig)
        except CheckSkipped as skipped:
            ctx.note(f"when {case.name}: not judged, {skipped.reason}")
            await watcher.stop(ctx)
            continue
        await settled(ctx, rig)
        outcome = (await results_now(ctx, rig.manager))[0][1]
        await ctx.settle(5)
        await watcher.stop(ctx)
        _judge_watcher(watcher, repro, f"when {case.name}: ")
        ending = _ending(outcome, stopped=case.stopped)
        if ending is None:
            ctx.note(f"when {case.name}, completion() had not returned {seconds(LATER)} later: not judged")
            continue
        final = watcher.sample()
        if final is not ending:
            raise CheckFailure(
                f"when {case.name} and {_how(outcome)}, the final state was {describe_state(final)}, not "
                f"{ending.value!r} (sampled on every turn: {watcher.path()})",
                expected=_SM27,
                reproduction=repro,
            )
