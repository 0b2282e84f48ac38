"""The round checks of what a round's managers are: their role (SM-33: the round's for an engine stream, the
message's for a finished message), and how a manager ends when the round is closed (SM-20: as an early stop,
so its StreamIncompleteError says ``incomplete``, not ``stopped``, and so does its ``state`` if it has one).
How the round checks work: :mod:`.round`.
"""

from __future__ import annotations

from typing import Any, Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception
from lmstream.conformance.model import CheckSkipped, TargetKind
from lmstream.conformance.targets import RoundTarget
from lmstream.spec import StreamIncompleteError, StreamState, describe_item

from ._manager_support import ScriptMessage
from ._registry import check
from ._round_support import (
    NEVER,
    ROLE,
    EngineStep,
    RoundRun,
    first_manager,
    next_manager,
    result_of,
    show,
    until,
)

__all__: list[str] = []

_ROUND = TargetKind.ROUND


# ---------------------------------------------------------------------------------------------- SM-33
_TOOL: Final = ScriptMessage("function", "42")


@check("SM-33", _ROUND, summary="an engine step's manager has the round's role, a finished message's its own")
async def round_managers_have_the_right_role(target: RoundTarget, ctx: CheckContext) -> None:
    plan = (EngineStep(("a", "b")), _TOOL, EngineStep(("c",)))
    body = [
        "async for manager in rounds:",
        "    print(repr(manager.role))  # 'assistant', 'function', 'assistant'",
        "    async for token in manager:",
        "        pass",
    ]
    wanted = (ROLE, _TOOL.role, ROLE)
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start()
        for index, role in enumerate(wanted):
            got = await next_manager(ctx, rounds, what=f"manager {index + 1}")
            if not got.produced:
                raise CheckSkipped(f"asked for manager {index + 1}, {got.describe()} (see SM-18)")
            manager: Any = got.manager
            try:
                found: object = manager.role
            except Exception as exc:
                raise run.failure(
                    f"reading the role of manager {index + 1} raised {describe_exception(exc)}",
                    "every manager of a round has a role",
                ) from exc
            if found != role:
                kind = "an engine stream" if role == ROLE else f"the finished message {_TOOL!r}"
                raise run.failure(
                    f"manager {index + 1}, for {kind}, has the role {describe_item(found)}, not {role!r}",
                    "a round's manager has the round's role for an engine stream and the message's role for "
                    "an already finished message",
                )
            await result_of(ctx, manager, what=f"manager {index + 1}'s completion()")


# ---------------------------------------------------------------------------------------------- SM-20
@check("SM-20", _ROUND, summary="closing the round ends its current manager as incomplete, not stopped")
async def closing_the_round_ends_its_manager_as_incomplete(target: RoundTarget, ctx: CheckContext) -> None:
    plan = (EngineStep(("a", "b", "c")), NEVER)
    body = [
        "manager = await anext(rounds)",
        "iterator = aiter(manager)",
        "print(repr(await anext(iterator)))",
        "await asyncio.wait_for(rounds.aclose(), 2)",
        *show(
            "manager 1's completion()", "manager.completion()", "StreamIncompleteError with reason incomplete"
        ),
        "print(getattr(manager, 'state', 'no state'))  # incomplete",
    ]
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start()
        manager = await first_manager(ctx, rounds)
        iterator = aiter(manager)
        run.hold(iterator, "manager 1's iterator")
        await ctx.bounded(_anext(iterator), what="manager 1's first token")
        aclose = getattr(rounds, "aclose", None)
        if not callable(aclose):
            raise CheckSkipped("the round stream has no aclose() (SM-20's other checks report it)")
        try:
            await ctx.bounded(_await(aclose()), what="the round's aclose() to return")
        except Exception as exc:
            raise CheckSkipped(
                f"aclose() of the round raised {describe_exception(exc)} (see SM-20)"
            ) from None
        await until(lambda: run.steps.snapshot(0).finished)
        result = await result_of(ctx, manager, what="manager 1's completion()", timeout=ctx.grace)
        error = result.error
        problems: list[str] = []
        if isinstance(error, StreamIncompleteError) and error.reason is not StreamState.INCOMPLETE:
            problems.append(f"manager 1's StreamIncompleteError has reason {error.reason!r}")
        state = getattr(manager, "state", None)
        if isinstance(state, StreamState) and state is not StreamState.INCOMPLETE and state.is_terminal:
            problems.append(f"manager 1's state is {state.value!r}")
        if problems:
            raise run.failure(
                "the round was closed with aclose() after manager 1's first token; " + "; ".join(problems),
                "closing the round stops its current manager as an early stop: its results raise "
                "StreamIncompleteError with reason incomplete, and its state (if it has one) is incomplete",
            )


async def _anext(iterator: Any) -> Any:
    return await iterator.__anext__()


async def _await(awaitable: Any) -> object:
    return await awaitable
