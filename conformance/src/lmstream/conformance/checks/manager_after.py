"""The manager checks of the ``after`` callback (SM-13): awaited exactly once, with the final completion,
after the engine stream ended normally and before the consumer's loop ends or any waiter is released;
never on an error, an early stop or a cancellation; and its own error reaches everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception
from lmstream.conformance.model import CheckFailure, TargetKind
from lmstream.conformance.scripted import Block, Fail
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import describe_item

from ._manager_support import (
    AWAIT_RESULT,
    TOKENS,
    Built,
    Consumed,
    Waiter,
    build,
    collect,
    consume,
    describe_waiters,
    manager_reproduction,
    spawn_labelled,
    wait_result,
    waiter_bound,
)
from ._registry import check

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER

READ = [
    "tokens = []",
    "async for token in manager:",
    "    tokens.append(token)",
]
"""The reproduction lines that read the manager to its end."""
_How = Literal["break", "aclose", "raise", "cancel"] | None
"""How a scenario ends the stream: ``None`` reads it to the end."""


# ---------------------------------------------------------------------------------------------- SM-13
_AFTER_PRELUDE = [
    "async def after(completion):",
    "    print('after called with', completion)",
]


@check(
    "SM-13",
    _MANAGER,
    summary="after is awaited once, with the final completion, before the loop ends or any waiter returns",
)
async def after_runs_once_before_anyone_sees_the_end(target: ManagerTarget, ctx: CheckContext) -> None:
    waiters: list[Waiter] = []
    seen = Consumed()
    at_call: list[str] = []

    async def after(completion: object) -> None:
        calls.append(completion)
        await ctx.settle()  # a manager that released its waiters before calling after is caught here
        if seen.over:
            at_call.append("the consumer's loop had already ended")
        done = [w for w in waiters if w.task.done()]
        if done:
            at_call.append(f"{len(done)} of {len(waiters)} waiter(s) had already been released")

    calls: list[object] = []
    built = await build(target, ctx, TOKENS, after=after)

    async def step(received: int) -> None:
        if received == 1:
            waiters.extend(spawn_labelled(ctx, built.manager, "during iteration"))
            await ctx.settle()

    await consume(ctx, built.manager, step=step, into=seen)
    bound = await collect(ctx, waiters)
    more = await wait_result(ctx, built.manager, timeout=waiter_bound(ctx))
    problems: list[str] = []
    if seen.error is not None:
        problems.append(f"the consumer's loop raised {describe_exception(seen.error)}")
    if len(calls) != 1:
        problems.append(f"after was called {len(calls)} time(s)")
    elif more.error is None and not more.pending and not (calls[0] is more.value or calls[0] == more.value):
        problems.append(
            f"after was called with {describe_item(calls[0])}, not the final completion "
            f"({describe_item(more.value)})"
        )
    if at_call:
        problems.append(f"when after was called, {' and '.join(at_call)}")
    bad = [w for w in waiters if w.outcome is None or w.outcome.pending or w.outcome.error is not None]
    if bad:
        problems.append(describe_waiters(bad, bound))
    if problems:
        raise CheckFailure(
            f"a stream that ended normally, with after given: {'; '.join(problems)}",
            expected="after is awaited exactly once, with the final completion, after the engine stream "
            "ended normally and before the consumer's loop ends or any waiter is released",
            reproduction=manager_reproduction(
                ctx,
                TOKENS,
                [
                    "async for token in manager:",
                    "    pass",
                    "print('loop ended')",
                    "print(await asyncio.wait_for(manager.completion(), 1))",
                ],
                after="after",
                prelude=_AFTER_PRELUDE,
            ),
        )


async def _run_with_after(
    target: ManagerTarget, ctx: CheckContext, script: Sequence[object], how: _How
) -> tuple[Built, Consumed]:
    """Build a manager with a recording ``after`` and end its stream ``how`` (``None``: read to the end)."""
    built = await build(target, ctx, script, after=True)
    if how == "cancel":
        seen = Consumed()
        task = ctx.spawn(consume(ctx, built.manager, into=seen), name="lmstream consumer (to be cancelled)")
        await ctx.bounded(built.block_reached(), what="the engine to reach its blocking step")
        task.cancel()
        await ctx.wait_tasks([task], timeout=waiter_bound(ctx))
    elif how is None:
        seen = await consume(ctx, built.manager)
    else:
        seen = await consume(ctx, built.manager, stop_after=2, how=how)
    await ctx.settle(10)  # let a dropped iterator be finalized
    return built, seen


@check("SM-13", _MANAGER, summary="after is not called when the engine raises or breaks the stream contract")
async def after_not_called_on_error(target: ManagerTarget, ctx: CheckContext) -> None:
    cases = {
        "the engine raised mid-stream": (
            *TOKENS[:2],
            Fail(ConnectionResetError("scripted engine failure")),
            *TOKENS[2:],
        ),
        "the engine yielded bytes (an ES-2 violation)": (*TOKENS[:2], b"lo", *TOKENS[2:]),
    }
    for what, script in cases.items():
        built, seen = await _run_with_after(target, ctx, script, None)
        if seen.error is None:  # the manager did not fail the stream: SM-8 or SM-9 reports that
            ctx.note(
                f"{what}, but the manager's stream ended normally ({seen.describe()}); whether after was "
                "called is not judged for this case (SM-8's or SM-9's check reports the stream)"
            )
            continue
        if built.after_calls:
            raise CheckFailure(
                f"{what} ({seen.describe()}), yet after was called with "
                f"{describe_item(built.after_calls[0])}",
                expected="after is never called when the stream fails",
                reproduction=manager_reproduction(
                    ctx,
                    script,
                    ["async for token in manager:", "    pass"],
                    after="after",
                    prelude=_AFTER_PRELUDE,
                ),
            )


@check(
    "SM-13",
    _MANAGER,
    summary="after is not called on an early stop (break, aclose(), raise) or a cancellation",
)
async def after_not_called_on_early_stop(target: ManagerTarget, ctx: CheckContext) -> None:
    hows: tuple[_How, ...] = ("break", "aclose", "raise", "cancel")
    for how in hows:
        script = (*TOKENS[:2], Block(), *TOKENS[2:]) if how == "cancel" else TOKENS
        built, seen = await _run_with_after(target, ctx, script, how)
        if built.after_calls:
            what = _STOPS[how]
            raise CheckFailure(
                f"the consumer {what} ({seen.describe()}), yet after was called with "
                f"{describe_item(built.after_calls[0])}",
                expected="after is never called on an early stop or a cancellation",
                reproduction=manager_reproduction(
                    ctx,
                    TOKENS,
                    ["async for token in manager:", "    break", "await asyncio.sleep(0.01)"],
                    after="after",
                    prelude=_AFTER_PRELUDE,
                ),
            )


_STOPS: dict[_How, str] = {
    "break": "broke out of its loop after 2 tokens",
    "aclose": "closed its iterator with aclose() after 2 tokens",
    "raise": "raised in its loop body after 2 tokens",
    "cancel": "was cancelled while awaiting the third token",
}


class _AfterFailed(Exception):
    """What the SM-13 check's after raises."""


@check("SM-13", _MANAGER, summary="when after raises X, the consumer and every waiter get X itself")
async def after_error_reaches_everyone(target: ManagerTarget, ctx: CheckContext) -> None:
    error = _AfterFailed("after could not record the reply")

    async def after(completion: object) -> None:
        raise error

    built = await build(target, ctx, TOKENS, after=after)
    waiters: list[Waiter] = []

    async def step(received: int) -> None:
        if received == 1:
            waiters.extend(spawn_labelled(ctx, built.manager, "during iteration"))
            await ctx.settle()

    seen = await consume(ctx, built.manager, step=step)
    waiters += spawn_labelled(ctx, built.manager, "after the loop ended")
    bound = await collect(ctx, waiters)
    problems: list[str] = []
    if seen.error is not error:
        problems.append(f"the consumer's loop {_loop_end(seen)}")
    bad = [w for w in waiters if w.outcome is None or w.outcome.error is not error]
    if bad:
        problems.append(describe_waiters(bad, bound))
    if problems:
        raise CheckFailure(
            f"after raised {error!r}: {'; '.join(problems)}",
            expected="if after raises X, the consumer's loop and every pending and later completion()/"
            "message()/await raise X (the same object)",
            reproduction=manager_reproduction(
                ctx,
                TOKENS,
                [
                    "try:",
                    "    async for token in manager:",
                    "        pass",
                    "except Exception as exc:",
                    "    print('loop raised', repr(exc))",
                    *AWAIT_RESULT,
                ],
                after="after",
                prelude=["async def after(completion):", "    raise ValueError('after failed')"],
            ),
        )


def _loop_end(seen: Consumed) -> str:
    if seen.error is not None:
        return f"raised {describe_exception(seen.error)} instead"
    return "ended normally after " + f"{len(seen.tokens)} token(s)"
