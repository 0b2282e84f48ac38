"""The checks of a manager's iterator that is closed or dropped before its first step (SM-10, SM-28), and of
one dropped after a first step that ran in a task of its own, which must be closed without the garbage
collector's help (SM-10).

``aiter(manager)`` hands out an iterator before anything is requested; an application that then gives up
(an error in its own code, a request cancelled before the reply began) closes or drops it. The manager must
then end the stream as an early stop: the engine stream closed, the lock free, every result raising
:class:`~lmstream.spec.StreamIncompleteError` with reason ``incomplete`` and empty text.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from typing import Any, Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, seconds
from lmstream.conformance.model import CheckFailure, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamState

from ._manager_support import Outcome
from ._registry import check
from ._stop_consumers import incomplete_errors, judge_incomplete, pending_outcomes, results_now, spawn_pending
from ._stop_snippets import RESULT, stop_reproduction
from ._stop_support import (
    LATER,
    AfterProbe,
    Rig,
    as_state,
    describe_state,
    make_rig,
    spawn_stoppers,
    state_of,
    terminal,
    until,
)

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_SM10 = (
    "when the manager's iterator is closed or finalized before its first step, the engine stream is closed "
    "(at the latest when the iterator is), the lock is free, and every pending and later result raises "
    "StreamIncompleteError; nothing hangs"
)

_HOW: Final[dict[str, tuple[str, ...]]] = {
    "closed with aclose()": ("iterator = aiter(manager)", "await iterator.aclose()"),
    "dropped (finalized)": ("iterator = aiter(manager)", "del iterator", "await asyncio.sleep(0.01)"),
}


async def _leave_unstepped(
    ctx: CheckContext, rig: Rig, how: str
) -> tuple[list[tuple[str, Outcome]], str | None]:
    """Take the iterator, leave it unstepped as ``how`` says; the results (pending and later) and what was
    wrong with the engine or the lock right after, if anything."""
    iterator: Any = aiter(rig.manager)
    pending = spawn_pending(ctx, rig.manager)  # after aiter(): nobody else drives the stream (SM-6)
    await ctx.settle()
    problem: str | None = None
    if how == "closed with aclose()":
        try:
            await ctx.bounded(
                iterator.aclose(), what="aclose() of the manager's unstepped iterator", timeout=LATER
            )
        except CheckFailure as exc:
            problem = f"aclose() of the iterator: {exc.observed}"
        except Exception as exc:
            problem = f"aclose() of the iterator raised {describe_exception(exc)}"
        if problem is None and not rig.engine_closed():
            problem = "the engine stream was still open when aclose() of the iterator returned"
    else:
        del iterator
    if problem is None and not await until(ctx, rig.engine_closed, timeout=LATER):
        problem = f"the engine stream was still open {seconds(LATER)} later"
    lock = rig.lock
    if problem is None and lock is not None and (lock.locked() or lock.acquisitions != lock.releases):
        problem = f"the lock was {lock.describe()}"
    return [*await pending_outcomes(ctx, pending), *await results_now(ctx, rig.manager)], problem


@check(
    "SM-10",
    _MANAGER,
    summary="the iterator closed with aclose() or dropped before its first step: engine closed, all released",
)
async def iterator_left_before_its_first_step_releases_everything(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    for how, lines in _HOW.items():
        rig = await make_rig(target, ctx, lock=True, after=AfterProbe(), require_aclose=False)
        labelled, problem = await _leave_unstepped(ctx, rig, how)
        wrong = problem or judge_incomplete(labelled)
        if wrong is not None:
            raise CheckFailure(
                f"the manager's iterator was {how} before its first step, a completion() and others pending: "
                f"{wrong}",
                expected=_SM10,
                reproduction=stop_reproduction(
                    ctx,
                    rig.items,
                    [
                        lines[0],
                        "pending = asyncio.ensure_future(manager.completion())",
                        "await asyncio.sleep(0)",
                        *lines[1:],
                        "print('engine closed:', stream.ag_frame is None, 'lock held:', lock.locked())",
                        "print(await asyncio.wait([pending], timeout=1))  # StreamIncompleteError",
                        RESULT,
                    ],
                    lock=True,
                    after=True,
                ),
            )


async def _step_in_a_task(iterator: Any) -> object:
    """One step of ``iterator`` in a task of its own (as ``asyncio.wait_for(anext(it), t)`` makes on 3.11)."""
    return await asyncio.ensure_future(anext(iterator))


@check(
    "SM-10",
    _MANAGER,
    summary="an iterator dropped after a step in a task of its own is closed without the garbage collector",
)
async def dropped_iterator_is_closed_without_the_garbage_collector(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    rig = await make_rig(target, ctx, lock=True, require_aclose=False)
    collecting = gc.isenabled()
    gc.disable()  # a reference cycle would keep the iterator alive until the collector ran
    try:
        iterator: Any = aiter(rig.manager)
        pending = spawn_pending(ctx, rig.manager)
        try:
            await ctx.bounded(
                _step_in_a_task(iterator), what="the first step, in a task of its own", timeout=LATER
            )
        except Exception as exc:
            ctx.note(
                f"the first step, in a task of its own, raised {describe_exception(exc)} (not judged here)"
            )
        del iterator
        closed = await until(ctx, rig.engine_closed, timeout=LATER)
    finally:
        if collecting:
            gc.enable()
    wrong = (
        None
        if closed
        else f"the engine stream was still open {seconds(LATER)} after the iterator was dropped"
    )
    wrong = wrong or judge_incomplete(
        [*await pending_outcomes(ctx, pending), *await results_now(ctx, rig.manager)]
    )
    if wrong is not None:
        raise CheckFailure(
            "with the garbage collector off, the manager's iterator was dropped after one step that ran in "
            f"a task of its own: {wrong}",
            expected=(
                "an iterator dropped by its consumer is finalized at once (no reference cycle keeps it until "
                "the garbage collector runs): the engine stream is closed and every result raises "
                "StreamIncompleteError"
            ),
            reproduction=stop_reproduction(
                ctx,
                rig.items,
                [
                    "import gc",
                    "gc.disable()",
                    "iterator = aiter(manager)",
                    "print(await asyncio.ensure_future(anext(iterator)))",
                    "del iterator",
                    "await asyncio.sleep(0.01)",
                    "print('engine closed:', stream.ag_frame is None)  # True",
                    RESULT,
                ],
                lock=True,
            ),
        )


# ---------------------------------------------------------------------------------------------- SM-28
def _judge_errors(labelled: Sequence[tuple[str, Outcome]], reason: StreamState, state: object) -> str | None:
    for label, error in incomplete_errors(labelled):
        found = as_state(error.reason)
        if found is not reason:
            return f"{label} raised StreamIncompleteError with reason {describe_state(error.reason)}"
        if error.text != "":
            return f"{label} raised StreamIncompleteError with text {error.text!r}; nothing was handed out"
    if as_state(state) is not reason:
        return f"state was {describe_state(state)} at the end"
    return None


@check(
    "SM-28",
    _MANAGER,
    summary="iterator closed or dropped before its first step, or a stop before it: right reason, empty text",
)
async def unstepped_stream_says_why_and_nothing(target: ManagerTarget, ctx: CheckContext) -> None:
    expected = (
        "StreamIncompleteError.reason is StreamState.INCOMPLETE when the consumer left (its iterator closed "
        "or dropped before the first step) and StreamState.STOPPED after aclose(), equal to the final state; "
        "its text is empty, as nothing was handed out"
    )
    for how, lines in _HOW.items():
        rig = await make_rig(target, ctx, lock=True, after=AfterProbe())
        labelled, _ = await _leave_unstepped(ctx, rig, how)
        wrong = _judge_errors(labelled, StreamState.INCOMPLETE, await _final_state(ctx, rig))
        if wrong is not None:
            raise CheckFailure(
                f"the manager's iterator was {how} before its first step: {wrong}",
                expected=expected,
                reproduction=stop_reproduction(
                    ctx, rig.items, [*lines, RESULT, "print(manager.state)"], lock=True, after=True
                ),
            )
    rig = await make_rig(target, ctx, lock=True, after=AfterProbe())
    await ctx.wait_tasks(spawn_stoppers(ctx, rig), timeout=LATER)  # no result pending: it would drive it
    labelled = await results_now(ctx, rig.manager)
    wrong = _judge_errors(labelled, StreamState.STOPPED, await _final_state(ctx, rig))
    if wrong is not None:
        raise CheckFailure(
            f"after a stop before iteration: {wrong}",
            expected=expected,
            reproduction=stop_reproduction(
                ctx,
                rig.items,
                ["await asyncio.wait_for(manager.aclose(), 1)", RESULT, "print(manager.state)"],
                lock=True,
                after=True,
            ),
        )


async def _final_state(ctx: CheckContext, rig: Rig) -> object:
    """``state`` once terminal (or after :data:`LATER`)."""
    await until(ctx, lambda: terminal(rig.manager), timeout=LATER)
    return state_of(rig.manager)
