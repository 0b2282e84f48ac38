"""The checks of errors that are not :class:`Exception` s: an engine (SM-8) or an ``after`` (SM-13) that
raises a :class:`BaseException` subclass of its own (an abort signal, as some frameworks define). The rules
say "an exception E" and "X" whatever they are: the consumer and every waiter get that very object, the
lock is released, nothing hangs. (``CancelledError`` is not one of these: SM-11 says what it does.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from lmstream.conformance.context import CheckContext, CheckTimeout
from lmstream.conformance.describe import script
from lmstream.conformance.model import CheckFailure, TargetKind
from lmstream.conformance.scripted import Fail
from lmstream.conformance.targets import ManagerTarget

from ._manager_support import TOKENS, Built, Waiter, build, collect, describe_waiters, spawn_labelled
from ._registry import check

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER


class Aborted(BaseException):
    """A framework's abort signal: a BaseException, not an Exception."""


async def _read(ctx: CheckContext, built: Built) -> tuple[BaseException | None, list[Waiter]]:
    """Read the manager in this task (what the loop raised, BaseExceptions included), starting waiters once
    the first token arrived and once the loop ended."""
    waiters: list[Waiter] = []

    async def loop() -> None:
        iterator = aiter(built.manager)
        while True:
            try:
                await anext(iterator)
            except StopAsyncIteration:
                return
            if not waiters:
                waiters.extend(spawn_labelled(ctx, built.manager, "during iteration"))
                await ctx.settle()

    error: BaseException | None = None
    try:
        await ctx.bounded(loop(), what="the manager's stream to end")
    except (CheckTimeout, asyncio.CancelledError):
        raise
    except BaseException as exc:  # the point: an error that is not an Exception
        error = exc
    return error, [*waiters, *spawn_labelled(ctx, built.manager, "after the loop ended")]


def _problems(seen_error: BaseException | None, error: BaseException, text: str) -> list[str]:
    if seen_error is error:
        return []
    got = "ended normally" if seen_error is None else f"raised {type(seen_error).__name__}({seen_error})"
    return [f"the consumer's loop {got}, not the {text} itself"]


@check(
    "SM-8", _MANAGER, summary="an engine error that is a BaseException, not an Exception, reaches everyone"
)
async def engine_error_that_is_not_an_exception_reaches_everyone(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    error = Aborted("the engine was aborted")
    built = await build(target, ctx, (*TOKENS[:2], Fail(error), *TOKENS[2:]), lock=True)
    seen, waiters = await _read(ctx, built)
    bound = await collect(ctx, waiters)
    problems = _problems(seen, error, "engine's error")
    bad = [w for w in waiters if w.outcome is None or w.outcome.error is not error]
    if bad:
        problems.append(describe_waiters(bad, bound))
    if problems:
        raise CheckFailure(
            f"the engine raised {error!r} (a BaseException subclass) after 2 tokens: {'; '.join(problems)}",
            expected="if the engine raises E, whatever its class, the consumer's loop and every waiter get E",
            reproduction=_reproduction(ctx, engine=True),
        )


@check("SM-13", _MANAGER, summary="an after that raises a BaseException, not an Exception: everyone gets it")
async def after_error_that_is_not_an_exception_reaches_everyone(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    error = Aborted("after was aborted")

    async def after(completion: Any) -> None:
        raise error

    built = await build(target, ctx, TOKENS, lock=True, after=after)
    seen, waiters = await _read(ctx, built)
    bound = await collect(ctx, waiters)
    problems = _problems(seen, error, "error after raised")
    bad = [w for w in waiters if w.outcome is None or w.outcome.error is not error]
    if bad:
        problems.append(describe_waiters(bad, bound))
    if problems:
        raise CheckFailure(
            f"after raised {error!r} (a BaseException subclass): {'; '.join(problems)}",
            expected="if after raises X, whatever its class, the consumer and every waiter get X",
            reproduction=_reproduction(ctx, engine=False),
        )


def _reproduction(ctx: CheckContext, *, engine: bool) -> str:
    imports, expression = ctx.target_reference()
    if engine:
        setup = [
            "async def stream():",
            "    yield ' Hel'",
            "    raise Aborted('the engine was aborted')",
            f"manager = {expression}(stream(), 'assistant')",
        ]
    else:
        setup = [
            "async def stream():",
            "    yield ' Hel'",
            "async def after(completion):",
            "    raise Aborted('after was aborted')",
            f"manager = {expression}(stream(), 'assistant', after=after)",
        ]
    return script(
        imports,
        [
            "class Aborted(BaseException):",
            "    pass",
            *setup,
            "try:",
            "    async for token in manager:",
            "        pass",
            "except BaseException as exc:",
            "    print('the loop raised', repr(exc))",
            "try:",
            "    await asyncio.wait_for(manager.completion(), 1)",
            "except BaseException as exc:",
            "    print('completion() raised', repr(exc))  # Aborted(...), not a TimeoutError",
        ],
    )
