"""The checks of a consumer cancelled while ``after`` runs: the engine stream has ended normally, the manager
awaits ``after``, and the consumer's task is cancelled (a timeout, a client gone). The stream then ends as a
cancelled one: CancelledError propagates in the consumer's task and every waiter gets
:class:`~lmstream.spec.StreamIncompleteError` (SM-11), the lock is released exactly once (SM-12), ``state``
moves from streaming to incomplete (SM-27) and the error says ``incomplete``, with all the text the consumer
received (SM-28).

One scenario, run once per check; each check judges its own requirement's part of what it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamState

from ._manager_support import TEXT, Outcome, outcomes, spawn_waiters
from ._registry import check
from ._stop_consumers import Consumer, incomplete_errors, judge_incomplete, results_now
from ._stop_snippets import CONSUME, RESULT, stop_reproduction
from ._stop_support import (
    LATER,
    AfterProbe,
    Rig,
    StateWatcher,
    as_state,
    describe_state,
    make_rig,
    state_of,
    terminal,
    until,
)

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_BODY: Final = (
    *CONSUME,
    "await asyncio.sleep(0.01)  # after now runs (it sleeps 1 s)",
    "consumer.cancel()",
    "print(await asyncio.gather(consumer, return_exceptions=True))  # [CancelledError()]",
    "print('lock held:', lock.locked(), 'state:', manager.state)",
    RESULT,
)
_AFTER: Final = ("calls.append(completion)", "await asyncio.sleep(1)  # still running when the cancel comes")


@dataclass
class _Seen:
    """What a cancellation of the consumer while ``after`` ran left behind."""

    rig: Rig
    consumer: Consumer
    ended: bool
    results: list[tuple[str, Outcome]]
    watcher: StateWatcher
    state: object
    released_early: bool
    """A waiter was released while after still ran (SM-13's failure): what follows is not SM-11's."""


async def _cancel_while_after_runs(
    target: ManagerTarget, ctx: CheckContext, *, stoppable: bool = False
) -> _Seen:
    """Read the standard script with a gated ``after`` and a lock; cancel the consumer while ``after``
    waits, with results pending; collect what followed.

    :param stoppable: the check is of a stop requirement (SM-27, SM-28): skip a manager without aclose().
    :raises CheckSkipped: when ``after`` was never called (SM-13's business).
    """
    after = AfterProbe(gated=True)
    rig = await make_rig(target, ctx, lock=True, after=after, require_aclose=stoppable)
    watcher = StateWatcher(ctx, rig.manager)
    consumer = Consumer(ctx, rig.manager, reraise_cancel=True)
    if not await until(ctx, lambda: after.entered or consumer.ended, timeout=LATER) or not after.entered:
        await watcher.stop(ctx)
        raise CheckSkipped(f"after was never called ({consumer.describe()}); see SM-13's checks")
    pending = spawn_waiters(ctx, rig.manager, 3, ("completion", "message", "await"))
    await ctx.settle()
    released_early = any(task.done() for task in pending)
    consumer.task.cancel()
    ended = await ctx.wait_tasks([consumer.task], timeout=LATER)
    after.release()  # for a manager that went on without cancelling it
    found = await outcomes(ctx, pending, timeout=LATER)
    names = ("completion()", "message()", "await manager")
    results = [(f"a pending {name}", o) for name, o in zip(names, found, strict=True)]
    results += await results_now(ctx, rig.manager)
    await until(ctx, lambda: terminal(rig.manager), timeout=LATER)
    await watcher.stop(ctx)
    return _Seen(rig, consumer, ended, results, watcher, state_of(rig.manager), released_early)


def _repro(ctx: CheckContext, seen: _Seen) -> str:
    return stop_reproduction(ctx, seen.rig.items, _BODY, lock=True, after=True, after_body=_AFTER)


_WHERE: Final = "the consumer was cancelled while after ran (the engine stream had ended), results pending"


@check("SM-11", _MANAGER, summary="the consumer cancelled while after runs: CancelledError, waiters released")
async def cancellation_while_after_runs_propagates(target: ManagerTarget, ctx: CheckContext) -> None:
    seen = await _cancel_while_after_runs(target, ctx)
    if seen.released_early:
        raise CheckSkipped("a waiter was released while after still ran (SM-13's checks report it)")
    expected = (
        "CancelledError propagates in the cancelled consumer's task, and waiters in other tasks get "
        "StreamIncompleteError"
    )
    task = seen.consumer.task
    problem: str | None = None
    if not seen.ended:
        problem = f"the consumer's task had not ended {seconds(LATER)} after it was cancelled"
    elif not task.cancelled():
        problem = f"the consumer's task did not end with CancelledError ({seen.consumer.describe()})"
    else:
        problem = judge_incomplete(seen.results)  # the lock is SM-12's to judge
    if problem is not None:
        raise CheckFailure(f"{_WHERE}: {problem}", expected=expected, reproduction=_repro(ctx, seen))


@check("SM-12", _MANAGER, summary="the consumer cancelled while after runs: the lock released exactly once")
async def lock_released_once_when_cancelled_during_after(target: ManagerTarget, ctx: CheckContext) -> None:
    seen = await _cancel_while_after_runs(target, ctx)
    lock = seen.rig.lock
    assert lock is not None
    await until(ctx, lambda: lock.releases >= 1 and not lock.locked(), timeout=LATER)
    if not (lock.acquisitions == lock.releases == 1 and not lock.locked()):
        raise CheckFailure(
            f"{_WHERE}: the lock was {lock.describe()}",
            expected="the lock is held for the stream and released exactly once, on cancellation too",
            reproduction=_repro(ctx, seen),
        )


@check(
    "SM-27", _MANAGER, summary="the consumer cancelled while after runs: state goes streaming -> incomplete"
)
async def state_when_cancelled_during_after(target: ManagerTarget, ctx: CheckContext) -> None:
    seen = await _cancel_while_after_runs(target, ctx, stoppable=True)
    expected = (
        "state moves only along STATE_TRANSITIONS and ends incomplete when the consumer was cancelled (while "
        "after ran too)"
    )
    problem = seen.watcher.problem
    if problem is None and as_state(seen.state) is not StreamState.INCOMPLETE:
        problem = f"state ended {describe_state(seen.state)}"
    if problem is not None:
        raise CheckFailure(
            f"{_WHERE}: {problem} (sampled on every event-loop turn: {seen.watcher.path()})",
            expected=expected,
            reproduction=_repro(ctx, seen),
        )


@check("SM-28", _MANAGER, summary="the consumer cancelled while after runs: reason incomplete, all the text")
async def incomplete_error_when_cancelled_during_after(target: ManagerTarget, ctx: CheckContext) -> None:
    seen = await _cancel_while_after_runs(target, ctx, stoppable=True)
    expected = (
        "StreamIncompleteError.reason is StreamState.INCOMPLETE when the consumer was cancelled, equal to "
        "the final state, and its text is exactly the tokens the consumer received (here all of them)"
    )
    received = seen.consumer.text
    for label, error in incomplete_errors(seen.results):
        if as_state(error.reason) is not StreamState.INCOMPLETE or error.text != received:
            raise CheckFailure(
                f"{_WHERE}: {label} raised StreamIncompleteError with reason {describe_state(error.reason)} "
                f"and text {error.text!r} (the consumer received {received!r})",
                expected=expected,
                reproduction=_repro(ctx, seen),
            )
    if received != TEXT:
        ctx.note(f"the consumer received {received!r}, not the whole script ({TEXT!r}): see SM-1")
