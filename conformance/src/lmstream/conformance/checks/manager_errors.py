"""The manager checks of streams that fail: an engine error (SM-8) and an engine that breaks the stream
contract (SM-9) must reach the consumer and every waiter, and nothing may hang.

Waiters are started once the first token has reached the consumer (iteration is then under way, whatever
the manager's design) and after the consumer's loop ended; all of them are then given
:func:`~lmstream.conformance.checks._manager_support.waiter_bound` seconds, so a manager that strands them
(kani's does, on an engine error) fails within the check's grace, and the message says how long it waited.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Sequence

from lmstream.conformance import scripted
from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, describe_items
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import Fail
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamIncompleteError, StreamProtocolError, describe_item

from ._manager_support import (
    AWAIT_RESULT,
    RESULT_METHODS,
    TOKENS,
    Consumed,
    Outcome,
    Waiter,
    build,
    call_name,
    collect,
    completion_for,
    consume,
    describe_waiters,
    first_done,
    manager_reproduction,
    read_then_wait,
    rejected_completion,
    run_with_waiters,
    spawn_labelled,
    wait_result,
    waiter_bound,
)
from ._registry import check

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER


class ScriptedEngineError(ConnectionResetError):
    """The error the SM-8 scripts raise from the engine stream (a fresh object each time)."""


# ---------------------------------------------------------------------------------------------- SM-8
_SM8_EXPECTED = (
    "if the engine raises E, the consumer's loop raises E (the same object), and every pending and later "
    "completion()/message()/await raises E; nothing hangs"
)


@check(
    "SM-8",
    _MANAGER,
    summary="an engine error mid-stream reaches the consumer and pending and later waiters, as that object",
)
async def engine_error_reaches_consumer_and_waiters(target: ManagerTarget, ctx: CheckContext) -> None:
    error = ScriptedEngineError("the engine lost its connection")
    script = (*TOKENS[:2], Fail(error), *TOKENS[2:])
    built = await build(target, ctx, script)
    seen, waiters = await run_with_waiters(ctx, built)
    bound = await collect(ctx, waiters)
    problems: list[str] = []
    if seen.error is not error:
        problems.append(f"the consumer's loop {_ended(seen, error)}")
    bad = [w for w in waiters if w.outcome is None or w.outcome.error is not error]
    if bad:
        problems.append(describe_waiters(bad, bound))
    if problems:
        raise CheckFailure(
            f"the engine raised {error!r} after 2 tokens: {'; '.join(problems)}",
            expected=_SM8_EXPECTED,
            reproduction=manager_reproduction(ctx, _repro_script(script), read_then_wait()),
        )


# ---------------------------------------------------------------------------------------------- SM-35
def _raised_in_the_engine(error: BaseException) -> bool:
    """Whether ``error``'s traceback, as it was raised last, passes through the scripted engine's code."""
    engine_file = scripted.__file__
    return any(frame.f_code.co_filename == engine_file for frame, _ in traceback.walk_tb(error.__traceback__))


@check(
    "SM-35",
    _MANAGER,
    summary="an engine error reaches every later waiter with the traceback of the engine's own code",
)
async def engine_error_keeps_its_traceback_for_waiters(target: ManagerTarget, ctx: CheckContext) -> None:
    error = ScriptedEngineError("the engine lost its connection")
    script = (*TOKENS[:2], Fail(error), *TOKENS[2:])
    built = await build(target, ctx, script)
    seen = await consume(ctx, built.manager)
    if seen.error is not error or not _raised_in_the_engine(error):
        raise CheckSkipped(
            "the consumer's loop did not raise the engine's error from the engine's code "
            f"({_ended(seen, error) if seen.error is not error else 'its traceback has no engine frame'}; "
            "SM-8's check reports it)"
        )
    for method in RESULT_METHODS:
        outcome = await wait_result(ctx, built.manager, method, timeout=waiter_bound(ctx))
        if outcome.error is not error:
            continue  # which error a waiter gets is SM-8's to judge
        if not _raised_in_the_engine(error):
            raise CheckFailure(
                f"the engine raised {error!r} after 2 tokens; the consumer's loop got it with the engine's "
                f"frames in its traceback, but a later {call_name(method)} raised it with a traceback that "
                "starts at the manager (the engine's frames are gone)",
                expected=(
                    "every completion()/message()/await raises an engine's error with the traceback of the "
                    "engine's own code, as the consumer got it"
                ),
                reproduction=manager_reproduction(
                    ctx,
                    _repro_script(script),
                    [
                        "try:",
                        "    async for token in manager:",
                        "        pass",
                        "except ConnectionResetError:",
                        "    pass",
                        "try:",
                        "    await asyncio.wait_for(manager.completion(), 1)",
                        "except ConnectionResetError as exc:",
                        "    traceback.print_exception(exc)  # the engine's frame should be in it",
                    ],
                    prelude=["import traceback"],
                ),
            )


@check(
    "SM-8",
    _MANAGER,
    summary="with nobody iterating, an engine error reaches every concurrent and later waiter",
)
async def engine_error_reaches_waiters_without_consumer(target: ManagerTarget, ctx: CheckContext) -> None:
    error = ScriptedEngineError("the engine lost its connection")
    script = (TOKENS[0], Fail(error))
    built = await build(target, ctx, script)
    waiters = spawn_labelled(ctx, built.manager, "concurrently, nobody iterating")
    waited = await first_done(ctx, waiters)  # one of them drives the stream to its end
    if any(w.task.done() for w in waiters):  # later callers come now
        waiters += spawn_labelled(ctx, built.manager, "after the first one returned")
        bound, since = await collect(ctx, waiters), "the first waiter returned"
    else:  # none returned within the budget: they have had their time
        await collect(ctx, waiters, timeout=0.0)
        bound, since = waited, "they were started"
    if built.probe.requests == 0:
        raise CheckSkipped(
            "waiters started before iteration never read the stream: "
            f"{describe_waiters(waiters, bound, since=since)} (SM-6's check reports it)"
        )
    bad = [w for w in waiters if w.outcome is None or w.outcome.error is not error]
    problems = [describe_waiters(bad, bound, since=since)] if bad else []
    if problems:
        raise CheckFailure(
            f"the engine raised {error!r} after 1 token, nobody iterating: {'; '.join(problems)}",
            expected=_SM8_EXPECTED,
            reproduction=manager_reproduction(
                ctx,
                _repro_script(script),
                [
                    "calls = [manager.completion(), manager.message(), manager]",
                    "tasks = [asyncio.ensure_future(call) for call in calls]",
                    "await asyncio.wait(tasks, timeout=1)",
                    "print([repr(t.exception()) if t.done() else 'still waiting' for t in tasks])",
                ],
            ),
        )


@check(
    "SM-8",
    _MANAGER,
    summary="an engine raising CancelledError or GeneratorExit itself: the loop gets it, waiters incomplete",
)
async def engine_cancelling_itself_is_not_an_engine_error(target: ManagerTarget, ctx: CheckContext) -> None:
    """SM-8's rationale: an engine that raises CancelledError or GeneratorExit itself (nobody cancelled or
    closed anything) is cancelling or closing, not failing. The consumer's loop gets that exception, the
    very object; every waiter gets StreamIncompleteError, never that exception in a task nobody cancelled."""
    for signal in (asyncio.CancelledError("the engine's own"), GeneratorExit("the engine's own")):
        await _engine_raises_itself(target, ctx, signal)


async def _engine_raises_itself(target: ManagerTarget, ctx: CheckContext, signal: BaseException) -> None:
    script = (*TOKENS[:2], Fail(signal))
    built = await build(target, ctx, script)
    waiters: list[Waiter] = []
    loop_ended: list[BaseException | None] = []

    async def consumer() -> None:
        try:
            async for _ in built.manager:
                if not waiters:
                    waiters.extend(spawn_labelled(ctx, built.manager, "during iteration"))
                    await ctx.settle()
        except BaseException as exc:  # CancelledError and GeneratorExit included: what is judged
            loop_ended.append(exc)
        else:
            loop_ended.append(None)

    task = ctx.spawn(consumer(), name="lmstream consumer")
    await ctx.wait_tasks([task], timeout=waiter_bound(ctx))
    waiters += spawn_labelled(ctx, built.manager, "after the loop ended")
    bound = await collect(ctx, waiters)
    name = type(signal).__name__
    # What SM-8's rationale decides is judged here: the waiters get no error but StreamIncompleteError, the
    # consumer's loop no exception but the engine's (a loop that ends normally swallowed it). Waiters left
    # hanging are what SM-10's and SM-11's checks report; they are noted, not judged.
    problems: list[str] = []
    got = loop_ended[0] if loop_ended else None
    if not loop_ended:
        ctx.note(f"after the engine's own {name}, the consumer's loop had not ended (see SM-10, SM-11)")
    elif got is None:
        problems.append(f"the consumer's loop ended normally: the engine's own {name} was swallowed")
    elif got is not signal:
        problems.append(
            f"the consumer's loop raised {describe_exception(got)}, not the engine's {name} itself"
        )
    wrong = [w for w in waiters if w.outcome is not None and not w.outcome.pending]
    wrong = [
        w for w in wrong if w.outcome is not None and not isinstance(w.outcome.error, StreamIncompleteError)
    ]
    if wrong:
        problems.append(describe_waiters(wrong, bound))
    if any(w.outcome is None or w.outcome.pending for w in waiters):
        ctx.note(f"after the engine's own {name}, some waiters were still waiting (see SM-10, SM-11)")
    if problems:
        raise CheckFailure(
            f"the engine raised {signal!r} itself after 2 tokens: {'; '.join(problems)}",
            expected=(
                f"an engine's own {name} is a {'cancellation' if name == 'CancelledError' else 'close'}, "
                "not an engine error: the consumer's loop raises it (the same object), and every "
                "pending and later completion()/message()/await raises StreamIncompleteError"
            ),
            reproduction=manager_reproduction(
                ctx,
                script,
                [
                    "try:",
                    "    async for token in manager:",
                    "        print(repr(token))",
                    "except BaseException as exc:",
                    "    print('the loop raised', repr(exc))",
                    *AWAIT_RESULT,
                ],
                prelude=[f"from {type(signal).__module__} import {name}"] if name == "CancelledError" else [],
            ),
        )


def _ended(seen: Consumed, wanted: BaseException) -> str:
    if seen.error is None:
        return f"ended normally after {len(seen.tokens)} token(s) instead of raising {wanted!r}"
    cause = " (the engine's error is its cause)" if seen.error.__cause__ is wanted else ""
    return f"raised {describe_exception(seen.error)}, not the engine's error itself{cause}"


def _repro_script(script: Sequence[object]) -> list[object]:
    """The script for a snippet: the scripted error as a plain ConnectionResetError (importable)."""
    return [
        Fail(ConnectionResetError(*s.error.args))
        if isinstance(s, Fail) and isinstance(s.error, ScriptedEngineError)
        else s
        for s in script
    ]


# ---------------------------------------------------------------------------------------------- SM-9
def _protocol_problems(seen: Consumed, waiters: Sequence[Waiter], rid: str, bad_item: object) -> list[str]:
    problems: list[str] = []
    if any(t is bad_item or not isinstance(t, str) for t in seen.tokens):
        problems.append(f"the non-conforming item reached the consumer: {describe_items(seen.tokens)}")
    error = seen.error
    if not isinstance(error, StreamProtocolError) or error.requirement_id != rid:
        found = "ended normally" if error is None else f"raised {describe_exception(error)}"
        problems.append(f"the consumer's loop {found}, not a StreamProtocolError naming {rid}")
    if any(not _protocol_error(w.outcome, rid) for w in waiters):
        problems.append("|waiters|")
    return problems


def _protocol_error(outcome: Outcome | None, rid: str) -> bool:
    return (
        outcome is not None
        and isinstance(outcome.error, StreamProtocolError)
        and outcome.error.requirement_id == rid
    )


async def _judge_violation(
    target: ManagerTarget,
    ctx: CheckContext,
    rid: str,
    what: str,
    script: tuple[object, ...],
    bad_index: int,
) -> None:
    built = await build(target, ctx, script)
    seen, waiters = await run_with_waiters(ctx, built)
    skip = rejected_completion(built, seen.error, "SM-9") if rid == "ES-3" else None
    if skip is not None:
        raise skip
    bound = await collect(ctx, waiters)
    problems = _protocol_problems(seen, waiters, rid, script[bad_index])
    if problems:
        bad = [w for w in waiters if not _protocol_error(w.outcome, rid)]
        text = "; ".join(describe_waiters(bad, bound) if p == "|waiters|" else p for p in problems)
        raise CheckFailure(
            f"the engine {what} ({describe_items(script)}): {text}",
            expected=f"the consumer and every waiter get StreamProtocolError naming {rid}, and the "
            "non-conforming item never reaches the consumer",
            reproduction=manager_reproduction(ctx, script, read_then_wait()),
        )


@check(
    "SM-9",
    _MANAGER,
    summary="bytes, None, an int, a dict or an exception yielded mid-stream: StreamProtocolError for all",
)
async def es2_violation_is_reported(target: ManagerTarget, ctx: CheckContext) -> None:
    bad_items: list[object] = [b"lo", None, 7, {"text": "lo"}, ValueError("yielded, not raised")]
    for bad in bad_items:
        script = (TOKENS[0], bad, *TOKENS[1:])
        await _judge_violation(target, ctx, "ES-2", f"yielded {describe_item(bad)}", script, 1)


@check(
    "SM-9",
    _MANAGER,
    summary="a token after the completion, or two completions, give everyone StreamProtocolError (ES-3)",
)
async def es3_violation_is_reported(target: ManagerTarget, ctx: CheckContext) -> None:
    cases: dict[str, tuple[object, ...]] = {
        "yielded a token after its completion": (TOKENS[0], completion_for(TOKENS[0]), TOKENS[1]),
        "yielded two completions": (TOKENS[0], completion_for(TOKENS[0]), completion_for(TOKENS[0])),
    }
    for what, script in cases.items():
        await _judge_violation(target, ctx, "ES-3", what, script, 2)
