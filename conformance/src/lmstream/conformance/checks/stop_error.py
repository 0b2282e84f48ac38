"""The checks of what a stoppable manager's incomplete error says (SM-28).

Every :class:`~lmstream.spec.StreamIncompleteError` that a pending or later ``completion()``, ``message()``
or ``await`` raises is judged: its ``reason`` must be ``stopped`` after ``aclose()`` and ``incomplete``
after the consumer left (a break, an exception in its loop body, a cancellation), equal to the manager's
final state; its ``text`` must be exactly the concatenation of the tokens the consumer received. Whether
the results raise that error at all is SM-10's, SM-11's, SM-24's and SM-25's to judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import Block
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamIncompleteError, StreamState

from ._manager_support import Outcome, consume
from ._registry import check
from ._stop_consumers import (
    Consumer,
    incomplete_errors,
    pending_outcomes,
    results_now,
    spawn_pending,
    stop_while_blocked,
    wait_until_blocked,
)
from ._stop_snippets import CONSUME, STOP, stop_reproduction
from ._stop_support import (
    LATER,
    SCRIPT,
    AfterProbe,
    Rig,
    as_state,
    describe_state,
    make_rig,
    settled,
    spawn_stoppers,
    state_of,
    until,
)

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_SM28 = (
    "StreamIncompleteError.reason is StreamState.STOPPED after aclose() and StreamState.INCOMPLETE after the "
    "consumer stopped early or was cancelled, equal to the final state, and its text is exactly the "
    "concatenation of the tokens the consumer received"
)

_ODD: Final[tuple[object, ...]] = ("héllo", " ", "\n", "wörld 🌍", "  ", Block(), "never")
"""Tokens that show any re-encoding, stripping or joining of the text; the engine blocks after five."""

_ERROR: Final = (
    "error = (await asyncio.gather(manager.completion(), return_exceptions=True))[0]",
    "print(repr(''.join(tokens)), repr(error.text), error.reason, manager.state)",
)
"""Reproduction lines: the error's text and reason beside what the consumer received."""


@dataclass
class _Judged:
    """The incomplete errors one case produced, what they must carry, and how to reproduce the case."""

    case: str
    errors: list[tuple[str, StreamIncompleteError]]
    text: str
    reason: StreamState
    final: object
    repro: str


def _judged(
    case: str, rig: Rig, labelled: Sequence[tuple[str, Outcome]], text: str, reason: StreamState, repro: str
) -> _Judged:
    return _Judged(case, incomplete_errors(labelled), text, reason, state_of(rig.manager), repro)


def _judge_errors(judged: Sequence[_Judged]) -> None:
    """Fail on the first error whose reason or text is wrong; skip when there was no error to judge."""
    if not any(j.errors for j in judged):
        cases = ", ".join(j.case for j in judged)
        raise CheckSkipped(
            f"no result raised StreamIncompleteError ({cases}): nothing to judge (see SM-10, SM-11, SM-24 "
            "and SM-25)"
        )
    for j in judged:
        final = as_state(j.final)
        for label, error in j.errors:
            reason = as_state(error.reason)
            if reason is not j.reason or reason is not final:
                raise CheckFailure(
                    f"{j.case}, {label} raised StreamIncompleteError with reason "
                    f"{describe_state(error.reason)}; the manager's final state is "
                    f"{describe_state(j.final)} and the reason must be {j.reason.value!r}",
                    expected=_SM28,
                    reproduction=j.repro,
                )
            if error.text != j.text:
                raise CheckFailure(
                    f"{j.case}, {label} raised StreamIncompleteError with text {error.text!r}; the consumer "
                    f"received {j.text!r}",
                    expected=_SM28,
                    reproduction=j.repro,
                )


# ---------------------------------------------------------------------------------------------- stopped
@check(
    "SM-28",
    _MANAGER,
    summary="after aclose(), every StreamIncompleteError: reason stopped, the consumer's exact text",
)
async def stopped_error_says_why_and_what(target: ManagerTarget, ctx: CheckContext) -> None:
    judged: list[_Judged] = []
    # The engine blocked after five odd tokens.
    rig = await make_rig(target, ctx, _ODD, lock=True, after=AfterProbe())
    consumer = Consumer(ctx, rig.manager)
    await wait_until_blocked(ctx, rig, consumer)
    pending = spawn_pending(ctx, rig.manager)
    stop = await stop_while_blocked(ctx, rig, consumer)
    if stop.released:
        ctx.note(stop.note())
    labelled = [*await pending_outcomes(ctx, pending), *await results_now(ctx, rig.manager)]
    body = [*CONSUME, "await until_blocked(probe)", STOP, "await asyncio.wait_for(consumer, 1)", *_ERROR]
    repro = stop_reproduction(ctx, rig.items, body)
    judged.append(
        _judged(
            "stopped with the engine blocked after 5 tokens", rig, labelled, consumer.text, _STOPPED, repro
        )
    )

    # The consumer busy in its loop body after 3 tokens, stopped from another task.
    rig = await make_rig(target, ctx, SCRIPT, lock=True, after=AfterProbe(), cleanup_turns=3)
    consumer = Consumer(ctx, rig.manager, pause_at=3)
    if await until(ctx, lambda: consumer.paused or consumer.ended, timeout=LATER) and consumer.paused:
        pending = spawn_pending(ctx, rig.manager)
        await ctx.wait_tasks(spawn_stoppers(ctx, rig), timeout=LATER)
        consumer.resume()
        await ctx.wait_tasks([consumer.task], timeout=LATER)
        labelled = [*await pending_outcomes(ctx, pending), *await results_now(ctx, rig.manager)]
        body = [
            "tokens = []",
            "async for token in manager:",
            "    tokens.append(token)",
            "    if len(tokens) == 3:",
            "        await asyncio.create_task(manager.aclose())  # from another task, the consumer busy",
            *_ERROR,
        ]
        repro = stop_reproduction(ctx, rig.items, body, cleanup_turns=3)
        case = "stopped while the consumer was busy after 3 tokens"
        judged.append(_judged(case, rig, labelled, consumer.text, _STOPPED, repro))

    # Before iteration.
    rig = await make_rig(target, ctx, SCRIPT, lock=True, after=AfterProbe())
    await ctx.wait_tasks(spawn_stoppers(ctx, rig), timeout=LATER)
    consumer = Consumer(ctx, rig.manager)
    await ctx.wait_tasks([consumer.task], timeout=LATER)
    repro = stop_reproduction(ctx, rig.items, [STOP, "tokens = [token async for token in manager]", *_ERROR])
    later = await results_now(ctx, rig.manager)
    judged.append(_judged("stopped before iteration", rig, later, consumer.text, _STOPPED, repro))
    _judge_errors(judged)


_STOPPED: Final = StreamState.STOPPED


# ---------------------------------------------------------------------------------------------- incomplete
@check(
    "SM-28",
    _MANAGER,
    summary="after a break, a loop error or a cancellation: reason incomplete, the consumer's exact text",
)
async def incomplete_error_says_why_and_what(target: ManagerTarget, ctx: CheckContext) -> None:
    judged: list[_Judged] = []
    leave = {"break": "        break", "raise": "        raise ValueError('the loop body failed')"}
    for how in ("break", "raise"):
        rig = await make_rig(target, ctx, _ODD[:5], lock=True, after=AfterProbe())
        seen = await consume(ctx, rig.manager, stop_after=3, how=how)
        await settled(ctx, rig)
        body = [
            "tokens = []",
            "try:",
            "    async for token in manager:",
            "        tokens.append(token)",
            "        if len(tokens) == 3:",
            f"    {leave[how]}",
            "except ValueError:",
            "    pass",
            "await asyncio.sleep(0.01)  # a dropped iterator is finalized",
            *_ERROR,
        ]
        repro = stop_reproduction(ctx, rig.items, body)
        case = (
            "the consumer broke out after 3 tokens"
            if how == "break"
            else "the loop body raised after 3 tokens"
        )
        later = await results_now(ctx, rig.manager)
        judged.append(_judged(case, rig, later, seen.text, StreamState.INCOMPLETE, repro))

    rig = await make_rig(target, ctx, _ODD, lock=True, after=AfterProbe())
    consumer = Consumer(ctx, rig.manager, reraise_cancel=True)
    await wait_until_blocked(ctx, rig, consumer)
    pending = spawn_pending(ctx, rig.manager)
    consumer.task.cancel()
    await ctx.wait_tasks([consumer.task], timeout=LATER)
    labelled = [*await pending_outcomes(ctx, pending), *await results_now(ctx, rig.manager)]
    body = [
        *CONSUME,
        "await until_blocked(probe)",
        "consumer.cancel()",
        "await asyncio.wait([consumer])",
        *_ERROR,
    ]
    repro = stop_reproduction(ctx, rig.items, body)
    case = "the consumer was cancelled with the engine blocked after 5 tokens"
    judged.append(_judged(case, rig, labelled, consumer.text, StreamState.INCOMPLETE, repro))
    _judge_errors(judged)
