"""The checks of two cleanups that overlap: a stop from another task is still closing the engine (its
cleanup takes a few event-loop turns) when the consumer, busy in its loop body until then, takes its next
step; and of the moment a loop ended by a stop ends (SM-32).

The consumer's step finds the stream stopped and must end its loop cleanly, every result raising
StreamIncompleteError (SM-24), but only once the stop is complete: the engine closed, the lock released,
state terminal (SM-32).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import AsyncGeneratorType
from typing import Any, Final, cast

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, script
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget

from ._manager_support import ROLE, CountingLock, Outcome, construct
from ._registry import check
from ._stop_consumers import (
    Consumer,
    judge_incomplete,
    pending_outcomes,
    results_now,
    spawn_pending,
    stop_while_blocked,
)
from ._stop_snippets import stop_reproduction
from ._stop_support import (
    BLOCKED,
    LATER,
    NO_ACLOSE,
    SCRIPT,
    Rig,
    StopProbe,
    aclose_of,
    as_state,
    describe_state,
    spawn_stoppers,
    state_of,
    stop_stream,
    terminal,
    turns_until,
    until,
)

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_CLEANUP_TURNS: Final = 8


@dataclass
class _AtEnd:
    """What was true the moment the consumer's loop ended."""

    engine_closed: bool = False
    lock_held: bool = False
    state: object = None

    def incomplete(self) -> list[str]:
        missing: list[str] = []
        if not self.engine_closed:
            missing.append("the engine stream was still being closed (its cleanup had not ended)")
        if self.lock_held:
            missing.append("the lock was still held")
        state = as_state(self.state)
        if state is None or not state.is_terminal:
            missing.append(f"state was {describe_state(self.state)}, not terminal")
        return missing


class _WatchedLock(CountingLock):
    """A counting lock that also records, at each release, whether the engine's cleanup had ended."""

    def __init__(self) -> None:
        super().__init__()
        self.cleanup_done_at_release: list[bool] = []
        self.rig: Rig | None = None

    def release(self) -> None:
        rig = self.rig
        self.cleanup_done_at_release.append(rig is not None and rig.probe.cleanup_ran)
        super().release()


@dataclass
class _Overlap:
    rig: Rig
    consumer: Consumer
    at_end: _AtEnd
    results: list[tuple[str, Outcome]]
    lock: _WatchedLock
    overlapped: bool
    errors: list[BaseException] = field(default_factory=list[BaseException])


async def _watched_rig(target: ManagerTarget, lock: _WatchedLock, items: Sequence[object] = SCRIPT) -> Rig:
    """A rig (as :func:`make_rig` builds one) whose lock is ``lock``."""
    probe = StopProbe()
    engine = cast("AsyncGeneratorType[Any, None]", stop_stream(items, probe, cleanup_turns=_CLEANUP_TURNS))
    manager = construct(target, engine, ROLE, after=None, lock=lock)
    if not callable(getattr(manager, "aclose", None)):
        raise CheckSkipped(NO_ACLOSE)
    rig = Rig(manager, probe, engine, tuple(items), lock, None, _CLEANUP_TURNS)
    lock.rig = rig
    return rig


async def _look(rig: Rig, at_end: _AtEnd) -> None:
    at_end.engine_closed = rig.engine_closed() and rig.probe.cleanup_ran
    at_end.lock_held = rig.lock is not None and rig.lock.locked()
    at_end.state = state_of(rig.manager)


async def _overlap(target: ManagerTarget, ctx: CheckContext) -> _Overlap:
    """A consumer busy after 2 tokens; a stop from another task begins closing the engine (8 turns); the
    consumer's next step comes while it does.

    :raises CheckSkipped: when the consumer never got 2 tokens.
    """
    lock = _WatchedLock()
    rig = await _watched_rig(target, lock)
    at_end = _AtEnd()
    consumer = Consumer(ctx, rig.manager, pause_at=2, then=lambda: _look(rig, at_end))
    if not await until(ctx, lambda: consumer.paused or consumer.ended, timeout=LATER) or not consumer.paused:
        raise CheckSkipped(f"the consumer never got 2 tokens ({consumer.describe()}): see SM-1 to SM-17")
    pending = spawn_pending(ctx, rig.manager)
    await ctx.settle()
    stoppers = spawn_stoppers(ctx, rig)
    await turns_until(lambda: rig.probe.cleanup_started or stoppers[0].done(), turns=40)
    overlapped = rig.probe.cleanup_started and not rig.probe.cleanup_ran
    consumer.resume()
    await ctx.wait_tasks([consumer.task, *stoppers], timeout=LATER)
    results = [*await pending_outcomes(ctx, pending), *await results_now(ctx, rig.manager)]
    return _Overlap(rig, consumer, at_end, results, lock, overlapped)


_BODY: Final = (
    "paused, resume = asyncio.Event(), asyncio.Event()",
    "seen = []",
    "async def consume():",
    "    async for token in manager:",
    "        if token == 'lo':",
    "            paused.set()",
    "            await resume.wait()  # busy in the loop body",
    "    seen.append((stream.ag_frame is None, lock.locked(), manager.state))  # when the loop ended",
    "consumer = asyncio.create_task(consume())",
    "await paused.wait()",
    "waiter = asyncio.ensure_future(manager.completion())",
    "stop = asyncio.create_task(manager.aclose())",
    "for _ in range(3):",
    "    await asyncio.sleep(0)  # the stop is closing the engine (8 turns)",
    "resume.set()",
    "await asyncio.wait([consumer, stop], timeout=1)",
    "print(seen)  # [(True, False, <StreamState.STOPPED: 'stopped'>)]",
    "print(await asyncio.gather(waiter, manager.completion(), return_exceptions=True))  # one error, twice",
)
_WHERE: Final = (
    "the consumer, busy in its loop body after 2 tokens, took its next step while a stop from another task "
    "was closing the engine (its cleanup takes 8 event-loop turns)"
)


def _repro(ctx: CheckContext, rig: Rig) -> str:
    return stop_reproduction(ctx, rig.items, _BODY, lock=True, cleanup_turns=_CLEANUP_TURNS)


def _not_overlapped(ctx: CheckContext, run: _Overlap) -> None:
    if not run.overlapped:
        ctx.note("the stop had not begun closing the engine when the consumer stepped: no overlap was seen")


# ---------------------------------------------------------------------------------------------- SM-24
@check(
    "SM-24", _MANAGER, summary="a stop's close and the consumer's step overlap: the loop ends, all incomplete"
)
async def overlapping_cleanups_end_the_loop_cleanly(target: ManagerTarget, ctx: CheckContext) -> None:
    run = await _overlap(target, ctx)
    _not_overlapped(ctx, run)
    problem: str | None = None
    if not run.consumer.ended:
        problem = f"the consumer's loop had not ended ({run.consumer.describe()})"
    elif run.consumer.error is not None:
        problem = f"the consumer's loop raised {describe_exception(run.consumer.error)}"
    else:
        problem = judge_incomplete(run.results)
    if problem is not None:
        raise CheckFailure(
            f"{_WHERE}: {problem}",
            expected=(
                "a stop during iteration ends the consumer's loop at its next step without an exception, and "
                "every pending and later result raises StreamIncompleteError, even when that step comes "
                "while the stop is closing the engine"
            ),
            reproduction=_repro(ctx, run.rig),
        )


# ---------------------------------------------------------------------------------------------- SM-32
async def _early(ctx: CheckContext, rig: Rig, at_end: _AtEnd) -> list[str]:
    """What was not yet so when the loop ended but became so within :data:`LATER`: the stop was still under
    way. What never became so is SM-22's or SM-24's to report."""
    later = _AtEnd()
    await until(ctx, lambda: terminal(rig.manager) and rig.probe.cleanup_ran, timeout=LATER)
    await _look(rig, later)
    early: list[str] = []
    if not at_end.engine_closed and later.engine_closed:
        early.append("the engine stream was still being closed (its cleanup had not ended)")
    if at_end.lock_held and not later.lock_held:
        early.append("the lock was still held")
    then, now = as_state(at_end.state), as_state(later.state)
    if not (then is not None and then.is_terminal) and now is not None and now.is_terminal:
        early.append(f"state was {describe_state(at_end.state)}, not terminal yet")
    return early


_UNREAD_BODY: Final = (
    "class Slow:  # an engine stream whose close takes a few turns",
    "    def __aiter__(self):",
    "        return self",
    "    async def __anext__(self):",
    "        return 'never read'",
    "    async def aclose(self):",
    "        for _ in range(8):",
    "            await asyncio.sleep(0)",
    f"manager = TARGET_FACTORY(Slow(), {ROLE!r})",
    "stop = asyncio.create_task(manager.aclose())",
    "await asyncio.sleep(0)  # the stop is closing the engine",
    "print([token async for token in manager], manager.state)  # [] and already stopped",
)


class _SlowClose:
    """An engine stream that is never read here, whose close takes a few event-loop turns."""

    def __init__(self) -> None:
        self.closed = False

    def __aiter__(self) -> _SlowClose:
        return self

    async def __anext__(self) -> str:
        return "never read"

    async def aclose(self) -> None:
        for _ in range(_CLEANUP_TURNS):
            await asyncio.sleep(0)
        self.closed = True


@check(
    "SM-32",
    _MANAGER,
    summary="a loop ended by a stop ends once the stop is complete (blocked, busy, iterated during a close)",
)
async def loop_ended_by_a_stop_ends_once_the_stop_is_complete(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    expected = (
        "a loop ended by a stop ends only once the stop is complete: at that moment the engine stream is "
        "closed, the lock released and state terminal"
    )
    # Busy in its loop body, stepping while the stop closes the engine.
    run = await _overlap(target, ctx)
    _not_overlapped(ctx, run)
    early = (
        await _early(ctx, run.rig, run.at_end) if run.consumer.ended and run.consumer.error is None else []
    )
    if early:
        raise CheckFailure(
            f"{_WHERE}: its loop ended while " + "; ".join(early),
            expected=expected,
            reproduction=_repro(ctx, run.rig),
        )
    # Blocked in the engine.
    lock = _WatchedLock()
    rig = await _watched_rig(target, lock, BLOCKED)
    at_end = _AtEnd()
    consumer = Consumer(ctx, rig.manager, then=lambda: _look(rig, at_end))
    stop = await stop_while_blocked(ctx, rig, consumer)
    early = await _early(ctx, rig, at_end) if stop.prompt and consumer.error is None else []
    if early:
        raise CheckFailure(
            "a stop from another task with the engine blocked after 2 tokens (its cleanup takes 8 turns): "
            "the consumer's loop ended while " + "; ".join(early),
            expected=expected,
            reproduction=stop_reproduction(
                ctx,
                rig.items,
                [
                    "seen = []",
                    "async def consume():",
                    "    async for token in manager:",
                    "        pass",
                    "    seen.append((stream.ag_frame is None, lock.locked(), manager.state))",
                    "consumer = asyncio.create_task(consume())",
                    "await until_blocked(probe)",
                    "await asyncio.wait_for(manager.aclose(), 1)",
                    "await asyncio.wait([consumer], timeout=1)",
                    "print(seen)  # [(True, False, <StreamState.STOPPED: 'stopped'>)]",
                ],
                lock=True,
                cleanup_turns=_CLEANUP_TURNS,
            ),
        )
    # Iterated while a stop before iteration is still closing the (unread) engine.
    slow = _SlowClose()
    manager: Any = construct(target, slow, ROLE)
    stopper = ctx.spawn(aclose_of(manager), name="lmstream stopper")
    await asyncio.sleep(0)
    state: list[object] = []
    tokens: list[object] = []

    async def iterate() -> None:
        async for token in manager:
            tokens.append(token)
        state.append(slow.closed)
        state.append(state_of(manager))

    try:
        await ctx.bounded(
            iterate(), what="an iteration begun while the stop closed the engine", timeout=LATER
        )
    except Exception as exc:
        ctx.note(
            f"iterating while a stop before iteration closed the engine raised {describe_exception(exc)}"
        )
    await ctx.wait_tasks([stopper], timeout=LATER)
    if len(state) == 2 and not tokens:
        closed, found = state
        ended = as_state(found)
        if not closed or ended is None or not ended.is_terminal:
            imports, expression = ctx.target_reference()
            body = [line.replace("TARGET_FACTORY", expression) for line in _UNREAD_BODY]
            raise CheckFailure(
                "a stop before iteration was still closing the engine (its close takes 8 turns) when the "
                f"consumer began iterating: its loop ended with the engine "
                f"{'closed' if closed else 'not yet closed'} and state {describe_state(found)}",
                expected=expected,
                reproduction=script(imports, body),
            )
