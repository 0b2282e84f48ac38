"""The manager checks of iteration: what it yields (SM-1), when it asks the engine (SM-2) and that it
happens once (SM-3).

Every check builds its managers with the target over scripted engine streams
(:func:`~lmstream.conformance.checks._manager_support.build`) and consumes them in its own task, bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmstream.conformance.context import CheckContext, CheckTimeout
from lmstream.conformance.describe import describe_exception, describe_items
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import Pause
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamConsumedError, describe_item

from ._manager_support import (
    RESULT_METHODS,
    TOKENS,
    build,
    call_name,
    consume,
    manager_reproduction,
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
    "print(tokens)",
]
"""The reproduction body that reads the manager to its end and prints the tokens."""


# ---------------------------------------------------------------------------------------------- SM-1
_SM1_SCRIPT: tuple[str, ...] = (" Hel", "lo", "", ",  ", "wörld 🙂", "!\n", "\r\n", "  ")
"""Tokens with whitespace at both ends, an empty token and non-ASCII text: stripping, merging, dropping or
re-encoding shows."""


@check(
    "SM-1",
    _MANAGER,
    summary="a full read yields the engine's tokens in order, each unchanged (whitespace, empty, non-ASCII)",
)
async def tokens_pass_through_unchanged(target: ManagerTarget, ctx: CheckContext) -> None:
    built = await build(target, ctx, _SM1_SCRIPT)
    seen = await consume(ctx, built.manager)
    expected = f"the engine's tokens, in order and unchanged: {describe_items(_SM1_SCRIPT, limit=8)}"
    problem = ""
    if seen.error is not None:
        problem = f"the loop raised {describe_exception(seen.error)} after {len(seen.tokens)} token(s)"
    elif seen.tokens != list(_SM1_SCRIPT):
        problem = _first_difference(seen.tokens, _SM1_SCRIPT)
    if problem:
        raise CheckFailure(
            f"{problem}. Consumer saw {len(seen.tokens)} token(s): {describe_items(seen.tokens, limit=8)}",
            expected=expected,
            reproduction=manager_reproduction(ctx, _SM1_SCRIPT, READ),
        )


def _first_difference(seen: Sequence[object], sent: Sequence[str]) -> str:
    for index, (got, want) in enumerate(zip(seen, sent, strict=False)):
        if got != want:
            return f"token {index + 1} is {describe_item(got)} where the engine yielded {want!r}"
    if len(seen) < len(sent):
        return f"{len(sent) - len(seen)} token(s) missing: the engine yielded {len(sent)}"
    return f"{len(seen) - len(sent)} token(s) more than the engine yielded"


# ---------------------------------------------------------------------------------------------- SM-2
@check(
    "SM-2",
    _MANAGER,
    summary="when the consumer holds token k (even after the loop turns), the engine was asked for k items",
)
async def no_read_ahead(target: ManagerTarget, ctx: CheckContext) -> None:
    script = (TOKENS[0], Pause(0.001), *TOKENS[1:])  # one slow item: a background reader gets ahead there
    built = await build(target, ctx, script)
    probe = built.probe
    ahead: list[str] = []

    async def step(received: int) -> None:
        if received and not ahead:
            await ctx.settle()  # a reader in another task gets the chance to run ahead
            if probe.requests > received:
                ahead.append(
                    f"when the consumer had received token {received} of {len(TOKENS)} (and let the event "
                    f"loop turn), the engine had been asked for {probe.requests} item(s), not {received}"
                )

    await ctx.settle()
    if probe.requests > 1:
        ahead.append(
            f"before anything iterated the manager, the engine had been asked for {probe.requests} items"
        )
    seen = await consume(ctx, built.manager, step=step)
    if ahead:
        raise CheckFailure(
            f"{ahead[0]}: the manager reads ahead of its consumer ({seen.describe()})",
            expected="each token reaches the consumer before the next item is requested from the engine",
            reproduction=manager_reproduction(
                ctx,
                script,
                [
                    "iterator = aiter(manager)",
                    "print(repr(await anext(iterator)))",
                    "await asyncio.sleep(0.01)",
                    "print('items requested from the engine:', probe.requests, '(expected 1)')",
                ],
                probe=True,
            ),
        )


# ---------------------------------------------------------------------------------------------- SM-3
async def _second_iteration(ctx: CheckContext, manager: Any) -> str | None:
    """What a further iteration did when it should raise StreamConsumedError (``None`` when it did)."""
    try:
        iterator = aiter(manager)
    except StreamConsumedError:
        return None
    except Exception as exc:
        return f"aiter(manager) raised {_not_consumed(exc)}"
    try:
        item = await ctx.bounded(
            anext(iterator), what="the first __anext__() of the further iteration", timeout=waiter_bound(ctx)
        )
    except StreamConsumedError:
        return None
    except StopAsyncIteration:
        return "the further iteration ended at once without an error (an empty iteration)"
    except CheckTimeout as exc:
        return f"the further iteration neither raised nor yielded: {exc.observed}"
    except Exception as exc:
        return f"its first __anext__() raised {_not_consumed(exc)}"
    await ctx.close_quietly(iterator, what="the further iteration")
    return f"the further iteration yielded {describe_item(item)}"


def _not_consumed(exc: BaseException) -> str:
    kind = (
        "a RuntimeError, but not lmstream.spec.StreamConsumedError (a RuntimeError subclass, so existing "
        "handlers keep working)"
        if isinstance(exc, RuntimeError)
        else "not lmstream.spec.StreamConsumedError"
    )
    return f"{describe_exception(exc)}: {kind}"


_SM3_EXPECTED = (
    "a second iteration, or one after completion()/message()/await drained the stream, raises "
    "lmstream.spec.StreamConsumedError (from aiter() or its first __anext__()) before yielding anything"
)


@check(
    "SM-3",
    _MANAGER,
    summary="iterating again, mid-stream or after the end, raises StreamConsumedError before anything",
)
async def second_iteration_raises_consumed(target: ManagerTarget, ctx: CheckContext) -> None:
    built = await build(target, ctx, TOKENS)
    manager = built.manager
    try:
        first = aiter(manager)
        await ctx.bounded(anext(first), what="the first token")
    except (StopAsyncIteration, Exception) as exc:
        if isinstance(exc, StopAsyncIteration):
            what = "ended"
        elif isinstance(exc, CheckTimeout):
            what = f"did not yield ({exc.observed})"
        else:
            what = f"raised {describe_exception(exc)}"
        raise CheckSkipped(
            f"the first iteration {what} before its first token (SM-1's check reports it), so there is no "
            "iteration under way to iterate again"
        ) from None
    problem = await _second_iteration(ctx, manager)
    when = "while the first iteration was under way (1 token read)"
    if problem is None:
        rest = 0
        while True:
            try:
                await ctx.bounded(anext(first), what="the rest of the first iteration")
            except StopAsyncIteration:
                break
            rest += 1
        problem = await _second_iteration(ctx, manager)
        when = f"after the first iteration read all {rest + 1} token(s)"
    else:
        await ctx.close_quietly(first, what="the first iteration")
    if problem is not None:
        raise CheckFailure(
            f"iterating the manager a second time {when}: {problem}",
            expected=_SM3_EXPECTED,
            reproduction=manager_reproduction(
                ctx,
                TOKENS,
                [
                    "async for token in manager:",
                    "    pass",
                    "try:",
                    "    async for token in manager:",
                    "        print('second iteration yielded', repr(token))",
                    "except Exception as exc:",
                    "    print(type(exc).__mro__)",
                ],
            ),
        )


@check(
    "SM-3",
    _MANAGER,
    summary="iterating after completion()/message()/await drained the stream raises StreamConsumedError",
)
async def iteration_after_result_raises_consumed(target: ManagerTarget, ctx: CheckContext) -> None:
    for method in RESULT_METHODS:
        built = await build(target, ctx, TOKENS)
        outcome = await wait_result(ctx, built.manager, method)  # it drives the stream
        if outcome.pending or outcome.error is not None:
            raise CheckSkipped(
                f"{call_name(method)} before any iteration {outcome.describe()}, so there is no drained "
                "stream to iterate again (SM-6's check reports it)"
            )
        problem = await _second_iteration(ctx, built.manager)
        if problem is not None:
            call = "await manager" if method == "await" else f"await manager.{method}()"
            raise CheckFailure(
                f"iterating the manager after {call_name(method)} drained the stream: {problem}",
                expected=_SM3_EXPECTED,
                reproduction=manager_reproduction(
                    ctx,
                    TOKENS,
                    [
                        f"{call}",
                        "try:",
                        "    async for token in manager:",
                        "        print('the iteration yielded', repr(token))",
                        "except Exception as exc:",
                        "    print(type(exc).__mro__)",
                    ],
                ),
            )
