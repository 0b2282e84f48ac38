"""The round checks of SM-20: closing the round stream (breaking out of its loop, ``aclose()``, cancelling
its consumer, in a manager or in a drain) stops the current manager as an early stop: its engine stream is
closed, its results raise StreamIncompleteError, nothing hangs and the round asks ``next_step`` for nothing
more. A round check sees no lock, so "no lock stays held" is judged through what a lock guards. How the round
checks work: :mod:`.round`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import Block
from lmstream.conformance.targets import RoundTarget
from lmstream.spec import StreamIncompleteError, describe_item

from ._registry import check
from ._round_support import (
    NEVER,
    EngineStep,
    RoundRun,
    first_manager,
    judged,
    next_manager,
    next_raises,
    result_of,
    show,
    task_outcome,
    until,
)

__all__: list[str] = []

_ROUND = TargetKind.ROUND
_CLOSE: Final = (
    "closing the round stream (break, aclose(), cancelling its consumer) stops the current manager as an "
    "early stop: its engine stream is closed, its results raise StreamIncompleteError, nothing hangs and "
    "the round produces nothing more"
)


# ---------------------------------------------------------------------------------------------- helpers
async def _anext(iterator: AsyncIterator[Any]) -> Any:
    return await iterator.__anext__()


async def _await(awaitable: Any) -> object:
    return await awaitable


async def _drain(manager: Any) -> None:
    async for _ in manager:
        pass


# ---------------------------------------------------------------------------------------------- SM-20
async def _stopped_problems(run: RoundRun, manager: Any, calls: int) -> list[str]:
    """What shows that manager 1 was not stopped as an early stop, or that the round asked next_step for
    more after being closed (``calls``: how many calls next_step had had when it was closed)."""
    steps, ctx = run.steps, run.ctx
    await until(lambda: steps.snapshot(0).finished)
    snapshot = steps.snapshot(0)  # before completion(), which would read an unstopped stream itself
    result = await result_of(ctx, manager, what="manager 1's completion()", timeout=ctx.grace)
    problems: list[str] = []
    if result.pending:
        problems.append(f"manager 1 was not stopped: its {result.describe()}")
    elif result.error is None:
        problems.append(f"manager 1 was not stopped: its {result.describe()} (it read the stream itself)")
    elif not isinstance(result.error, StreamIncompleteError):
        problems.append(f"manager 1's {result.describe()}, not StreamIncompleteError")
    if not snapshot.finished:
        problems.append(f"manager 1's engine stream was not closed (it was {snapshot.describe()})")
    if len(steps.calls) > calls:
        problems.append(f"next_step was called again after the round was closed (call {calls + 1})")
    return problems


async def _nothing_more(ctx: CheckContext, rounds: AsyncIterator[Any]) -> list[str]:
    again = await next_manager(ctx, rounds, what="a step of the round after it was closed", timeout=ctx.grace)
    return [f"asked for a further manager, {again.describe()}"] if again.produced or again.pending else []


@check("SM-20", _ROUND, summary="breaking out of the round's loop stops the current manager, read or not")
async def break_stops_the_current_manager(target: RoundTarget, ctx: CheckContext) -> None:
    for read_first in (True, False):
        await _break_out(target, ctx, read_first)


async def _break_out(target: RoundTarget, ctx: CheckContext, read_first: bool) -> None:
    plan = (EngineStep(("a", "b", "c")), NEVER)
    read = ["    held.append(aiter(manager))", "    print(repr(await anext(held[-1])))"] if read_first else []
    body = [
        "held = []",
        "async for manager in rounds:",
        "    held.append(manager)",
        *read,
        "    break  # leaves the round, keeping manager 1",
        "del rounds  # the application's loop held the only reference",
        "for _ in range(20):",
        "    await asyncio.sleep(0)",
        *show("manager 1's completion()", "held[0].completion()", "StreamIncompleteError"),
    ]
    held: list[Any] = []
    closed_at = 0
    what = "manager 1 and its first token" if read_first else "manager 1"
    async with RoundRun(target, ctx, plan, body) as run:

        async def leave() -> None:
            nonlocal closed_at
            # The round's iterator is referenced by this loop only: the break drops it, as an app's does.
            async for manager in run.start_unheld():
                held.append(manager)
                if read_first:
                    iterator = aiter(manager)
                    held.append(iterator)
                    run.hold(iterator, "manager 1's iterator")
                    await anext(iterator)
                closed_at = len(run.steps.calls)
                break

        try:
            await ctx.bounded(leave(), what=what)
        except CheckFailure:
            raise
        except Exception as exc:
            raise CheckSkipped(f"getting {what} raised {describe_exception(exc)} (see SM-18)") from None
        if not held:
            raise CheckSkipped("the round produced no manager (see SM-18)")
        problems = await _stopped_problems(run, held[0], closed_at)
        if problems:
            where = "after its first token, keeping its iterator" if read_first else "before reading it"
            raise run.failure(
                f"the consumer broke out of the round's loop holding manager 1 ({where}); "
                + "; ".join(problems),
                _CLOSE,
            )


_ACLOSE_SCENARIOS: Final = {
    "read": "after reading manager 1's first token (keeping its iterator)",
    "unread": "before reading manager 1",
    "blocked": "while another task read manager 1, its engine blocked awaiting the next item",
}


@check(
    "SM-20", _ROUND, summary="aclose() of the round stops the current manager, even with its engine blocked"
)
async def aclose_stops_the_current_manager(target: RoundTarget, ctx: CheckContext) -> None:
    for scenario in ("read", "unread", "blocked"):
        await _aclose_round(target, ctx, scenario)


async def _aclose_round(target: RoundTarget, ctx: CheckContext, scenario: str) -> None:
    blocked = scenario == "blocked"
    plan = (EngineStep(("a", Block(), "b") if blocked else ("a", "b", "c")), NEVER)
    read = {
        "read": ["iterator = aiter(manager)", "print(repr(await anext(iterator)))"],
        "unread": [],
        "blocked": [
            "async def read() -> None:",
            "    async for token in manager:",
            "        print(repr(token))",
            "reader = asyncio.ensure_future(read())",
            "for _ in range(20):",
            "    await asyncio.sleep(0)  # the reader now waits for the blocked engine",
        ],
    }[scenario]
    body = [
        "manager = await anext(rounds)",
        *read,
        "await asyncio.wait_for(rounds.aclose(), 2)",
        *show("manager 1's completion()", "manager.completion()", "StreamIncompleteError"),
    ]
    where = _ACLOSE_SCENARIOS[scenario]
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start()
        manager = await first_manager(ctx, rounds)
        aclose = getattr(rounds, "aclose", None)
        if not callable(aclose):
            raise run.failure(
                f"the round stream, {describe_item(rounds)}, has no aclose(): it cannot be closed", _CLOSE
            )
        reader: asyncio.Task[None] | None = None
        if scenario == "read":
            iterator = aiter(manager)
            run.hold(iterator, "manager 1's iterator")
            await ctx.bounded(_anext(iterator), what="manager 1's first token")
        elif blocked:
            reading = reader = run.spawn(_drain(manager), name="lmstream SM-20 reader of manager 1")
            if not await until(lambda: run.steps.probe(0).blocked or reading.done()):
                raise CheckSkipped(
                    f"manager 1 never read its engine up to the block ({run.steps.snapshot(0).describe()})"
                )
        closed_at = len(run.steps.calls)
        try:
            await ctx.bounded(_await(aclose()), what="the round's aclose() to return")
        except CheckFailure as exc:
            raise run.failure(f"aclose() of the round {where}: {exc.observed}", _CLOSE) from None
        except Exception as exc:
            raise run.failure(
                f"aclose() of the round {where} raised {describe_exception(exc)}", _CLOSE
            ) from None
        problems = await _stopped_problems(run, manager, closed_at)
        problems += await _nothing_more(ctx, rounds)
        if reader is not None and not await ctx.wait_tasks([reader], timeout=ctx.grace):
            problems.append(f"the task reading manager 1 was still waiting {seconds(ctx.grace)} later")
        if problems:
            raise run.failure(f"the round was closed with aclose() {where}; " + "; ".join(problems), _CLOSE)


@check("SM-20", _ROUND, summary="cancelling the round's consumer (reading a manager, or in a drain) stops it")
async def cancelling_the_consumer_stops_the_current_manager(target: RoundTarget, ctx: CheckContext) -> None:
    for draining in (False, True):
        await _cancel_consumer(target, ctx, draining)


async def _cancel_consumer(target: RoundTarget, ctx: CheckContext, draining: bool) -> None:
    plan = (EngineStep(("a", Block(), "b")), NEVER)
    consumer_lines = (
        [
            "    managers.append(await anext(rounds))  # never iterated",
            "    await anext(rounds)  # the round drains manager 1, whose engine blocks",
        ]
        if draining
        else [
            "    async for manager in rounds:",
            "        managers.append(manager)",
            "        async for token in manager:",
            "            print(repr(token))",
        ]
    )
    body = [
        "managers = []",
        "",
        "async def consumer() -> None:",
        *consumer_lines,
        "",
        "task = asyncio.ensure_future(consumer())",
        "for _ in range(20):",
        "    await asyncio.sleep(0)  # the consumer now waits for the blocked engine",
        "task.cancel()",
        "print(await asyncio.gather(task, return_exceptions=True))  # expect [CancelledError()]",
        *show("manager 1's completion()", "managers[0].completion()", "StreamIncompleteError"),
        *next_raises("an error or the end"),
    ]
    managers: list[Any] = []

    async def consumer(rounds: AsyncIterator[Any]) -> None:
        if draining:
            managers.append(await rounds.__anext__())
            await rounds.__anext__()
            return
        async for manager in rounds:
            managers.append(manager)
            async for _ in manager:
                pass

    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start()
        steps = run.steps
        task = run.spawn(consumer(rounds), name="lmstream SM-20 consumer of the round")
        await until(lambda: (steps.handed_out(0) and steps.probe(0).blocked) or task.done())
        if not (managers and steps.handed_out(0) and steps.probe(0).blocked):
            state = steps.snapshot(0).describe() if steps.handed_out(0) else "not handed out"
            if draining:
                judged(False, ctx, "cancel-while-draining", state)
                return
            raise CheckSkipped(
                f"the consumer never waited on manager 1's blocked engine (its stream: {state})"
            )
        where = "in the round's next step, which was draining manager 1" if draining else "reading manager 1"
        closed_at = len(steps.calls)
        task.cancel()
        problems: list[str] = []
        if not await ctx.wait_tasks([task], timeout=ctx.grace):
            problems.append(f"the consumer had not ended {seconds(ctx.grace)} after it was cancelled")
        elif not task.cancelled():
            problems.append(f"the consumer's task did not end with CancelledError: {task_outcome(task)}")
        problems += await _stopped_problems(run, managers[0], closed_at)
        if draining:  # cancelled in the round's own step; one reading a manager is SM-19's to judge
            problems += await _nothing_more(ctx, rounds)
        if problems:
            raise run.failure(
                f"the round's consumer was cancelled {where}, its engine blocked awaiting the next item; "
                + "; ".join(problems),
                _CLOSE,
            )
