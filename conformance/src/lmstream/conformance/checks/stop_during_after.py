"""The checks of a stop from another task while ``after`` runs, with waiters already waiting: the engine
stream has ended, so the stop changes nothing (SM-23): the waiters get the completion, not a stopped error
and not before ``after`` returns; ``aclose()`` returns only once the stream has completed (SM-22); ``state``
moves only along STATE_TRANSITIONS (SM-27).

One scenario, run once per check; each check judges its own requirement's part of what it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget

from ._manager_support import Outcome
from ._registry import check
from ._stop_consumers import Consumer, pending_outcomes, spawn_pending
from ._stop_snippets import CONSUME, LOOK, stop_reproduction
from ._stop_support import (
    LATER,
    AfterProbe,
    Rig,
    Snapshot,
    StateWatcher,
    make_rig,
    spawn_stoppers,
    until,
)

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_BODY: Final = (
    *CONSUME,
    "await asyncio.sleep(0.01)  # after now runs (it sleeps 0.05 s)",
    "waiter = asyncio.ensure_future(manager.completion())",
    "await asyncio.sleep(0)",
    "await asyncio.wait_for(manager.aclose(), 1)  # while after runs",
    LOOK,
    "print(await asyncio.gather(waiter, return_exceptions=True), calls)  # the completion after got",
)
_AFTER: Final = ("calls.append(completion)", "await asyncio.sleep(0.05)  # still running when the stop comes")
_WHERE: Final = "aclose() from another task while after ran, with completion(), message() and await pending"


@dataclass
class _Seen:
    rig: Rig
    after: AfterProbe
    consumer: Consumer
    released_early: list[str]
    returned_early: bool
    stop: Snapshot | None
    results: list[tuple[str, Outcome]]
    watcher: StateWatcher


async def _stop_while_after_runs(target: ManagerTarget, ctx: CheckContext) -> _Seen:
    """:raises CheckSkipped: when ``after`` was never called (SM-13's business)."""
    after = AfterProbe(gated=True)
    rig = await make_rig(target, ctx, lock=True, after=after)
    watcher = StateWatcher(ctx, rig.manager)
    consumer = Consumer(ctx, rig.manager)
    if not await until(ctx, lambda: after.entered or consumer.ended, timeout=LATER) or not after.entered:
        await watcher.stop(ctx)
        raise CheckSkipped(f"after was never called ({consumer.describe()}); see SM-13's checks")
    pending = spawn_pending(ctx, rig.manager)
    await ctx.settle()
    stoppers = spawn_stoppers(ctx, rig)
    await ctx.settle(10)  # the stop is under way while after still runs
    released_early = [label for label, task in pending if task.done()]
    returned_early = stoppers[0].done()
    after.release()
    await ctx.wait_tasks([consumer.task, *stoppers], timeout=LATER)
    results = await pending_outcomes(ctx, pending)
    await watcher.stop(ctx)
    stop = stoppers[0].result() if stoppers[0].done() and not stoppers[0].cancelled() else None
    return _Seen(rig, after, consumer, released_early, returned_early, stop, results, watcher)


def _repro(ctx: CheckContext, seen: _Seen) -> str:
    return stop_reproduction(ctx, seen.rig.items, _BODY, lock=True, after=True, after_body=_AFTER)


@check(
    "SM-23",
    _MANAGER,
    summary="aclose() while after runs, waiters pending: they get the completion all the same",
)
async def stop_while_after_runs_leaves_waiters_their_completion(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    seen = await _stop_while_after_runs(target, ctx)
    given = seen.after.calls[0] if seen.after.calls else None
    wrong = [
        f"{label} {outcome.describe()}"
        for label, outcome in seen.results
        if outcome.pending
        or outcome.error is not None
        or outcome.value not in (given, getattr(given, "message", None))
    ]
    if seen.consumer.error is not None:
        wrong.append(f"the consumer's loop: {seen.consumer.describe()}")
    if seen.released_early:
        wrong.insert(0, f"{', '.join(seen.released_early)} returned or raised before after had returned")
    if wrong:
        raise CheckFailure(
            f"{_WHERE}: " + "; ".join(wrong),
            expected=(
                "once the engine stream has ended, aclose() changes nothing: after runs to its end and every "
                "waiter gets the completion after was given (its message, for message() and await)"
            ),
            reproduction=_repro(ctx, seen),
        )


@check("SM-22", _MANAGER, summary="aclose() while after runs returns only once the stream has completed")
async def aclose_while_after_runs_returns_once_complete(target: ManagerTarget, ctx: CheckContext) -> None:
    seen = await _stop_while_after_runs(target, ctx)
    expected = (
        "aclose() returns only when the stop is complete: here, once after has returned and the stream has "
        "completed (engine closed, lock released, state terminal)"
    )
    problem: str | None
    if seen.returned_early:
        problem = "aclose() returned while after was still running"
        if seen.stop is not None and seen.stop.incomplete():
            problem += " (" + "; ".join(seen.stop.incomplete()) + ")"
    elif seen.stop is None:
        problem = f"aclose() had not returned {seconds(LATER)} after after did"
    elif seen.stop.error is not None:
        problem = f"aclose() raised {seen.stop.error!r}"
    else:
        missing = seen.stop.incomplete()
        problem = "aclose() returned while " + "; ".join(missing) if missing else None
    if problem is not None:
        raise CheckFailure(f"{_WHERE}: {problem}", expected=expected, reproduction=_repro(ctx, seen))


@check(
    "SM-27", _MANAGER, summary="aclose() while after runs: state goes streaming -> completed, never stopped"
)
async def state_when_stopped_while_after_runs(target: ManagerTarget, ctx: CheckContext) -> None:
    seen = await _stop_while_after_runs(target, ctx)
    # Only the moves are judged: a stream that ends stopped here breaks SM-23, whose checks report it.
    problem = seen.watcher.problem
    if problem is not None:
        raise CheckFailure(
            f"{_WHERE}: {problem} (sampled on every event-loop turn: {seen.watcher.path()})",
            expected="state moves only along STATE_TRANSITIONS; a stop once the engine stream has ended "
            "changes nothing, so it ends completed",
            reproduction=_repro(ctx, seen),
        )
