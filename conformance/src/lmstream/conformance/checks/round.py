"""The round checks, against a RoundStreamFactory (``lmstream check round TARGET``): SM-18 here (one manager
per step of ``next_step``, in order, each produced only once the previous one's stream has ended, a skipped
one drained first), SM-19 in :mod:`.round_end` (a manager that fails, ends incomplete or is stopped ends the
round with its error) and SM-20 in :mod:`.round_close` (closing the round stops its current manager). What
they share is in :mod:`._round_support`.

Each check starts rounds of its own over a scripted ``next_step`` (engine streams it observes, and a finished
message), drives the managers the round hands out as an application would (reading them, skipping them,
leaving them, stopping them, breaking out of the round, closing it, cancelling its consumer) and judges only
its own requirement. When a scenario cannot be judged because something else broke first (the round did not
drain a skipped manager, SM-18; the manager did not fail on an engine error, SM-8), the scenario is left out
with a note, or the check skips, naming the requirement that reports it.

Managers are judged by behaviour: a round may hand out any manager (kani's included). What a round check
cannot see is a lock (a RoundStreamFactory takes none), so "no lock stays held" (SM-20) is judged through
what a lock guards: the current manager's stream is closed and its result published.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_items, seconds
from lmstream.conformance.model import TargetKind
from lmstream.conformance.targets import RoundTarget
from lmstream.spec import describe_item

from ._manager_support import ScriptMessage, consume
from ._registry import check
from ._round_support import (
    FIRST_TOKENS,
    TOOL_RESULT,
    EngineStep,
    RoundRun,
    ScriptedSteps,
    next_manager,
    result_of,
    show,
    task_outcome,
    until,
)

__all__: list[str] = []

_ROUND = TargetKind.ROUND
_LAST: Final = ("world", "!\n")
_WAIT_TURNS: Final = 50
"""Event-loop turns a round gets to (wrongly) produce the next manager early."""

_ORDER: Final = (
    "one manager per step of next_step, in order, each produced only after the previous manager's stream "
    "has ended (a skipped manager drained first); next_step receives None first, then the previous "
    "manager's completion; the round ends when next_step returns None"
)


# ---------------------------------------------------------------------------------------------- helpers
async def _anext(iterator: AsyncIterator[Any]) -> Any:
    return await iterator.__anext__()


def _early_problem(steps: ScriptedSteps) -> str | None:
    """The first call of next_step made while an earlier step's stream had not ended, said in one line."""
    for call in steps.calls:
        for index, snapshot in enumerate(call.earlier):
            if not snapshot.finished:
                return (
                    f"next_step was called for step {call.number} while step {index + 1}'s stream was "
                    f"{snapshot.describe()}"
                )
    return None


def _tokens_of(step: EngineStep | ScriptMessage) -> list[object]:
    if isinstance(step, ScriptMessage):
        return [step.text] if step.text else []
    return [item for item in step.items if isinstance(item, str)]


# ---------------------------------------------------------------------------------------------- SM-18
@check("SM-18", _ROUND, summary="one manager per step, in order; next_step gets each previous completion")
async def managers_follow_the_steps(target: RoundTarget, ctx: CheckContext) -> None:
    plan: tuple[EngineStep | ScriptMessage, ...] = (EngineStep(FIRST_TOKENS), TOOL_RESULT, EngineStep(_LAST))
    body = [
        "async for manager in rounds:",
        "    print([token async for token in manager], await manager.completion())",
        "print(received)  # None, then each manager's completion in order (the last one ends the round)",
    ]
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start(judged=True)
        completions: list[object] = []
        for number, step in enumerate(plan, 1):
            got = await next_manager(ctx, rounds, what=f"manager {number} of {len(plan)}")
            if not got.produced:
                raise run.failure(f"asked for manager {number} of {len(plan)}, {got.describe()}", _ORDER)
            seen = await consume(ctx, got.manager, what=f"manager {number}'s stream to end")
            wanted = _tokens_of(step)
            if seen.error is not None or seen.tokens != wanted:
                kind = "a finished message" if isinstance(step, ScriptMessage) else "an engine stream"
                raise run.failure(
                    f"manager {number} gave {seen.describe()}, but step {number} ({kind}) was "
                    f"{describe_items(wanted)}: the round did not hand out that step's manager",
                    _ORDER,
                )
            result = await result_of(ctx, got.manager, what=f"manager {number}'s completion()")
            if result.pending or result.error is not None:
                raise run.failure(
                    f"manager {number} was read to its end, but its {result.describe()}", _ORDER
                )
            completions.append(result.value)
        end = await next_manager(ctx, rounds, what="the round to end after next_step returned None")
        problems: list[str] = []
        if not end.ended:
            problems.append(
                f"after next_step returned None, the round's next step did not end: {end.describe()}"
            )
        early = _early_problem(run.steps)
        if early is not None:
            problems.append(early)
        for call, wanted_previous in zip(run.steps.calls, [None, *completions], strict=False):
            if call.previous is not wanted_previous:
                name = "None" if wanted_previous is None else f"manager {call.number - 1}'s completion"
                problems.append(
                    f"next_step's call {call.number} received {describe_item(call.previous)}, not {name} "
                    f"({describe_item(wanted_previous)})"
                )
                break
        if problems:
            raise run.failure("; ".join(problems), _ORDER)


@check(
    "SM-18", _ROUND, summary="the next manager waits until the previous one's stream, read elsewhere, ended"
)
async def next_waits_for_the_previous_stream(target: RoundTarget, ctx: CheckContext) -> None:
    plan = (EngineStep(("a", "b", "c")), EngineStep(("d",)))
    body = [
        "first = await anext(rounds)",
        "iterator = aiter(first)",
        "print(repr(await anext(iterator)))",
        "asker = asyncio.ensure_future(anext(rounds))  # the next manager, asked for in another task",
        "for _ in range(20):",
        "    await asyncio.sleep(0)",
        "print('produced early:', asker.done(), received)  # expect False, [None]",
        "print([token async for token in iterator], await asker)",
    ]
    go = asyncio.Event()
    read: list[object] = []

    async def reader(manager: Any) -> None:
        iterator = aiter(manager)
        read.append(await anext(iterator))
        await go.wait()
        read.extend([token async for token in iterator])

    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start(judged=True)
        first = await next_manager(ctx, rounds, what="manager 1")
        if not first.produced:
            raise run.failure(f"asked for manager 1, {first.describe()}", _ORDER)
        reading = run.spawn(reader(first.manager), name="lmstream SM-18 reader of manager 1")
        await until(lambda: bool(read) or reading.done())
        asker = run.spawn(_anext(rounds), name="lmstream SM-18 asker of manager 2")
        try:
            await until(asker.done, turns=_WAIT_TURNS)
            problems = [p for p in [_early_problem(run.steps)] if p is not None]
            if asker.done():
                problems.append(
                    f"while another task was reading manager 1 ({len(read)} of 3 tokens read), the round's "
                    f"next step did not wait for its stream to end: {task_outcome(asker)}"
                )
            if problems:
                raise run.failure("; ".join(problems), _ORDER)
        finally:
            go.set()
        if not await ctx.wait_tasks([reading, asker]):
            which = "the round's next step" if not asker.done() else "the reader of manager 1"
            raise run.failure(
                f"once manager 1 had been read to its end, {which} had not returned after "
                f"{seconds(ctx.elapsed())}",
                _ORDER,
            )
        if asker.cancelled() or asker.exception() is not None:
            raise run.failure(
                f"once manager 1 had been read to its end, the round's next step {task_outcome(asker)}, "
                "instead of producing manager 2",
                _ORDER,
            )


@check("SM-18", _ROUND, summary="a manager the consumer skipped is drained before next_step is called again")
async def skipped_manager_is_drained(target: RoundTarget, ctx: CheckContext) -> None:
    plan = (EngineStep(FIRST_TOKENS), EngineStep(_LAST))
    body = [
        "skipped = await anext(rounds)  # never iterated",
        "second = await anext(rounds)",
        "print('next_step got', received[1])  # expect the skipped manager's completion: it was drained",
        *show("the skipped manager's completion()", "skipped.completion()", "what next_step got"),
    ]
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start(judged=True)
        first = await next_manager(ctx, rounds, what="manager 1")
        if not first.produced:
            raise run.failure(f"asked for manager 1, {first.describe()}", _ORDER)
        second = await next_manager(ctx, rounds, what="manager 2, manager 1 having been skipped")
        if not second.produced:
            raise run.failure(
                f"manager 1 was skipped (never iterated); asked for manager 2, {second.describe()}", _ORDER
            )
        call = run.steps.calls[1]
        problems: list[str] = []
        if not call.earlier[0].read_through:
            problems.append(
                f"manager 1 was skipped, and next_step was called for step 2 while its stream was "
                f"{call.earlier[0].describe()}: it was not drained"
            )
        result = await result_of(ctx, first.manager, what="the skipped manager's completion()")
        if result.pending or result.error is not None:
            problems.append(f"afterwards the skipped manager's {result.describe()}")
        elif call.previous is not result.value:
            problems.append(
                f"next_step's call 2 received {describe_item(call.previous)}, not the skipped manager's "
                f"completion ({describe_item(result.value)})"
            )
        if problems:
            raise run.failure("; ".join(problems), _ORDER)
