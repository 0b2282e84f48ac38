"""The round checks of SM-19: when a manager of the round fails (its engine raised, read or while the round
drained it; it yielded a bytes item), ends incomplete (the consumer broke out or closed its iterator) or is
stopped (``aclose()``), the round's next step raises that same error (StreamIncompleteError for an incomplete
or stopped manager), and the round produces nothing more. How the round checks work: :mod:`.round`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Final, Literal

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import Fail
from lmstream.conformance.targets import RoundTarget
from lmstream.spec import StreamIncompleteError, describe_item

from ._manager_support import consume
from ._registry import check
from ._round_support import (
    FIRST_TOKENS,
    NEVER,
    EngineStep,
    Result,
    RoundRun,
    RoundStep,
    first_manager,
    judged,
    next_manager,
    next_raises,
    result_of,
)

__all__: list[str] = []

_ROUND = TargetKind.ROUND
_END: Final = (
    "when a manager of the round fails or ends incomplete or stopped, the round's next step raises that "
    "same error (StreamIncompleteError for an incomplete or stopped manager) and no further manager is "
    "produced"
)


# ---------------------------------------------------------------------------------------------- helpers
async def _anext(iterator: AsyncIterator[Any]) -> Any:
    return await iterator.__anext__()


async def _await(awaitable: Any) -> object:
    return await awaitable


# ---------------------------------------------------------------------------------------------- SM-19
Accepts = Callable[[BaseException, Result], bool]


def _same_error(*candidates: BaseException | None) -> Accepts:
    """Accept the very object of a candidate, or the very error the manager's completion() raises."""

    def accepts(error: BaseException, own: Result) -> bool:
        return any(error is c for c in (*candidates, own.error) if c is not None)

    return accepts


def _incomplete(error: BaseException, own: Result) -> bool:
    return isinstance(error, StreamIncompleteError)


async def _judge_end(
    run: RoundRun,
    rounds: AsyncIterator[Any],
    manager: Any,
    *,
    failed: str,
    accepts: Accepts,
    wanted: str,
    got: RoundStep | None = None,
) -> None:
    """The round's next step after manager 1 ``failed`` must raise an accepted error; then nothing more."""
    ctx = run.ctx
    if got is None:
        got = await next_manager(ctx, rounds, what=f"the round's next step after manager 1 {failed}")
    if got.error is None:
        if got.produced:
            observed = "the round produced a further manager (the next step's)"
        elif got.ended:
            observed = "the round ended (StopAsyncIteration), as if it had succeeded"
        else:
            observed = f"the round's next step had not returned after {seconds(got.waited)}"
        raise run.failure(f"manager 1 {failed}; {observed}", _END)
    own = Result()
    if not accepts(got.error, own):
        own = await result_of(ctx, manager, what="manager 1's completion()", timeout=ctx.grace)
        if not accepts(got.error, own):
            raise run.failure(
                f"manager 1 {failed}; the round's next step raised {describe_exception(got.error)}, not "
                f"{wanted} (manager 1's own {own.describe()})",
                _END,
            )
    again = await next_manager(
        ctx, rounds, what="a further step of the round after it raised", timeout=ctx.grace
    )
    if again.produced or again.pending:
        raise run.failure(
            f"manager 1 {failed}, and the round's next step raised {type(got.error).__name__}; asked again, "
            f"{again.describe()}",
            _END,
        )


def _failing_body(expect: str) -> list[str]:
    return [
        "manager = await anext(rounds)",
        "try:",
        "    print([token async for token in manager])",
        "except Exception as error:",
        "    print('the loop raised', repr(error))",
        *next_raises(expect),
    ]


@check(
    "SM-19",
    _ROUND,
    summary="an engine error in a manager, read or skipped, is raised by the round's next step",
)
async def engine_error_ends_the_round(target: RoundTarget, ctx: CheckContext) -> None:
    await _engine_error_read(target, ctx)
    await _engine_error_skipped(target, ctx)


async def _engine_error_read(target: RoundTarget, ctx: CheckContext) -> None:
    error = ConnectionResetError("the engine lost its connection")
    plan = (EngineStep(("a", Fail(error))), NEVER)
    async with RoundRun(target, ctx, plan, _failing_body("the same ConnectionResetError")) as run:
        rounds = run.start()
        manager = await first_manager(ctx, rounds)
        seen = await consume(ctx, manager, what="manager 1's stream to end")
        if seen.error is None:
            raise CheckSkipped(
                f"the round's manager did not fail when its engine raised: it gave {seen.describe()} "
                "(see SM-8)"
            )
        await _judge_end(
            run,
            rounds,
            manager,
            failed=f"failed: its engine raised {error!r} and the loop raised {type(seen.error).__name__}",
            accepts=_same_error(error, seen.error),
            wanted=f"that same error object, {error!r}",
        )


async def _engine_error_skipped(target: RoundTarget, ctx: CheckContext) -> None:
    error = ConnectionResetError("the engine lost its connection while the round drained it")
    plan = (EngineStep(("a", Fail(error))), NEVER)
    body = [
        "skipped = await anext(rounds)  # never iterated",
        *next_raises("the same ConnectionResetError"),
    ]
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start()
        manager = await first_manager(ctx, rounds)
        got = await next_manager(ctx, rounds, what="the round's next step, manager 1 having been skipped")
        drained = run.steps.probe(0).raised is error
        if not judged(drained, ctx, "skipped-manager engine error", run.steps.snapshot(0).describe()):
            return
        await _judge_end(
            run,
            rounds,
            manager,
            failed=f"was skipped, and its engine raised {error!r} while the round drained it",
            accepts=_same_error(error),
            wanted=f"that same error object, {error!r}",
            got=got,
        )


@check(
    "SM-19", _ROUND, summary="a protocol error in a manager (a bytes item) is raised by the round's next step"
)
async def protocol_error_ends_the_round(target: RoundTarget, ctx: CheckContext) -> None:
    plan = (EngineStep(("a", b"\xff not a token", "c")), NEVER)
    async with RoundRun(target, ctx, plan, _failing_body("the loop's StreamProtocolError")) as run:
        rounds = run.start()
        manager = await first_manager(ctx, rounds)
        seen = await consume(ctx, manager, what="manager 1's stream to end")
        if seen.error is None:
            raise CheckSkipped(
                f"the round's manager did not fail when its engine yielded a bytes item: it gave "
                f"{seen.describe()} (see SM-9)"
            )
        await _judge_end(
            run,
            rounds,
            manager,
            failed=f"failed: its engine yielded a bytes item and the loop raised {type(seen.error).__name__}",
            accepts=_same_error(seen.error),
            wanted=f"that same error object, {describe_item(seen.error)}",
        )


@check(
    "SM-19", _ROUND, summary="a manager the consumer left (break, aclose()) makes the round's next step raise"
)
async def incomplete_manager_ends_the_round(target: RoundTarget, ctx: CheckContext) -> None:
    for how in ("break", "aclose"):
        await _left_manager(target, ctx, how)


async def _left_manager(target: RoundTarget, ctx: CheckContext, how: Literal["break", "aclose"]) -> None:
    plan = (EngineStep(FIRST_TOKENS), NEVER)
    leave = (
        ["async for token in manager:", "    break  # the consumer leaves after the first token"]
        if how == "break"
        else ["iterator = aiter(manager)", "print(repr(await anext(iterator)))", "await iterator.aclose()"]
    )
    body = ["manager = await anext(rounds)", *leave, *next_raises("StreamIncompleteError")]
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start()
        manager = await first_manager(ctx, rounds)
        await consume(ctx, manager, stop_after=1, how=how, what="manager 1's first token")
        left = "broke out of its loop" if how == "break" else "closed its iterator with aclose()"
        await _judge_end(
            run,
            rounds,
            manager,
            failed=f"ended incomplete: the consumer {left} after the first token",
            accepts=_incomplete,
            wanted="StreamIncompleteError",
        )


@check("SM-19", _ROUND, summary="a manager stopped with aclose() makes the round's next step raise")
async def stopped_manager_ends_the_round(target: RoundTarget, ctx: CheckContext) -> None:
    for read_first in (True, False):
        await _stopped_manager(target, ctx, read_first)


async def _stopped_manager(target: RoundTarget, ctx: CheckContext, read_first: bool) -> None:
    plan = (EngineStep(FIRST_TOKENS), NEVER)
    read = ["iterator = aiter(manager)", "print(repr(await anext(iterator)))"] if read_first else []
    body = [
        "manager = await anext(rounds)",
        *read,
        "await manager.aclose()",
        *next_raises("StreamIncompleteError"),
    ]
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start()
        manager = await first_manager(ctx, rounds)
        if not callable(getattr(manager, "aclose", None)):
            raise CheckSkipped("the round's managers do not offer aclose() (SM-21), so none can be stopped")
        if read_first:
            iterator = aiter(manager)
            run.hold(iterator, "manager 1's iterator")
            await ctx.bounded(_anext(iterator), what="manager 1's first token")
        try:
            await ctx.bounded(_await(manager.aclose()), what="manager 1's aclose() to return")
        except CheckFailure as exc:
            raise CheckSkipped(f"stopping manager 1: {exc.observed} (see SM-22)") from None
        except Exception as exc:
            raise CheckSkipped(f"manager 1's aclose() raised {describe_exception(exc)} (see SM-22)") from None
        await _judge_end(
            run,
            rounds,
            manager,
            failed="was stopped with aclose() "
            + ("after its first token" if read_first else "before it was read"),
            accepts=_incomplete,
            wanted="StreamIncompleteError",
        )
