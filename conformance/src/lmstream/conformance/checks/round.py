"""The round checks: SM-18 to SM-20, against a RoundStreamFactory (``lmstream check round TARGET``).

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
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, Literal

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, describe_items, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import Block, Fail
from lmstream.conformance.targets import RoundTarget
from lmstream.spec import StreamIncompleteError, describe_item

from ._manager_support import ScriptMessage, consume
from ._registry import check
from ._round_support import (
    TOOL_RESULT,
    EngineStep,
    Result,
    RoundRun,
    RoundStep,
    ScriptedSteps,
    next_manager,
    result_of,
    until,
)

__all__: list[str] = []

_ROUND = TargetKind.ROUND
_FIRST: Final = (" Hel", "lo", ",  ")
_LAST: Final = ("world", "!\n")
_NEVER: Final = EngineStep(("this step must never be handed out",))
_WAIT_TURNS: Final = 50
"""Event-loop turns a round gets to (wrongly) produce the next manager early."""

_ORDER: Final = (
    "one manager per step of next_step, in order, each produced only after the previous manager's stream "
    "has ended (a skipped manager drained first); next_step receives None first, then the previous "
    "manager's completion; the round ends when next_step returns None"
)
_END: Final = (
    "when a manager of the round fails or ends incomplete or stopped, the round's next step raises that "
    "same error (StreamIncompleteError for an incomplete or stopped manager) and no further manager is "
    "produced"
)
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


def _task_outcome(task: asyncio.Task[Any]) -> str:
    if task.cancelled():
        return "it was cancelled"
    error = task.exception()
    if isinstance(error, StopAsyncIteration):
        return "it ended (StopAsyncIteration)"
    if error is not None:
        return f"it raised {describe_exception(error)}"
    return f"it produced a manager, {describe_item(task.result())}"


def _tokens_of(step: EngineStep | ScriptMessage) -> list[object]:
    if isinstance(step, ScriptMessage):
        return [step.text] if step.text else []
    return [item for item in step.items if isinstance(item, str)]


async def _first_manager(ctx: CheckContext, rounds: AsyncIterator[Any]) -> Any:
    """Manager 1, or a skip: a round that cannot produce its first manager fails SM-18's checks."""
    got = await next_manager(ctx, rounds, what="manager 1")
    if not got.produced:
        raise CheckSkipped(
            f"asked for its first manager, the round did not produce one: {got.describe()} (see SM-18)"
        )
    return got.manager


def _judged(probe_ok: bool, ctx: CheckContext, scenario: str, state: str) -> bool:
    """Note a scenario left unjudged because the round did not drain a skipped manager (SM-18's failure)."""
    if not probe_ok:
        ctx.note(
            f"the {scenario} scenario was not judged: the round did not drain the skipped manager (its "
            f"stream was {state}; see SM-18)"
        )
    return probe_ok


# ---------------------------------------------------------------------------------------------- SM-18
@check("SM-18", _ROUND, summary="one manager per step, in order; next_step gets each previous completion")
async def managers_follow_the_steps(target: RoundTarget, ctx: CheckContext) -> None:
    plan: tuple[EngineStep | ScriptMessage, ...] = (EngineStep(_FIRST), TOOL_RESULT, EngineStep(_LAST))
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
                    f"next step did not wait for its stream to end: {_task_outcome(asker)}"
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
                f"once manager 1 had been read to its end, the round's next step {_task_outcome(asker)}, "
                "instead of producing manager 2",
                _ORDER,
            )


@check("SM-18", _ROUND, summary="a manager the consumer skipped is drained before next_step is called again")
async def skipped_manager_is_drained(target: RoundTarget, ctx: CheckContext) -> None:
    plan = (EngineStep(_FIRST), EngineStep(_LAST))
    body = [
        "skipped = await anext(rounds)  # never iterated",
        "second = await anext(rounds)",
        "print('next_step got', received[1])  # expect the skipped manager's completion: it was drained",
        *_show("the skipped manager's completion()", "skipped.completion()", "what next_step got"),
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


def _show(label: str, expression: str, expect: str) -> list[str]:
    """Reproduction lines that await ``expression`` (bounded) and print what it returned or raised."""
    return [
        "try:",
        f"    print({label + ' returned'!r}, await asyncio.wait_for({expression}, 2))",
        f"except Exception as error:  # expect {expect}",
        f"    print({label + ' raised'!r}, repr(error))",
    ]


def _next_raises(expect: str) -> list[str]:
    return _show("the round's next step", "anext(rounds)", f"{expect}, not a manager or a hang")


def _failing_body(expect: str) -> list[str]:
    return [
        "manager = await anext(rounds)",
        "try:",
        "    print([token async for token in manager])",
        "except Exception as error:",
        "    print('the loop raised', repr(error))",
        *_next_raises(expect),
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
    plan = (EngineStep(("a", Fail(error))), _NEVER)
    async with RoundRun(target, ctx, plan, _failing_body("the same ConnectionResetError")) as run:
        rounds = run.start()
        manager = await _first_manager(ctx, rounds)
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
    plan = (EngineStep(("a", Fail(error))), _NEVER)
    body = [
        "skipped = await anext(rounds)  # never iterated",
        *_next_raises("the same ConnectionResetError"),
    ]
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start()
        manager = await _first_manager(ctx, rounds)
        got = await next_manager(ctx, rounds, what="the round's next step, manager 1 having been skipped")
        drained = run.steps.probe(0).raised is error
        if not _judged(drained, ctx, "skipped-manager engine error", run.steps.snapshot(0).describe()):
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
    plan = (EngineStep(("a", b"\xff not a token", "c")), _NEVER)
    async with RoundRun(target, ctx, plan, _failing_body("the loop's StreamProtocolError")) as run:
        rounds = run.start()
        manager = await _first_manager(ctx, rounds)
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
    plan = (EngineStep(_FIRST), _NEVER)
    leave = (
        ["async for token in manager:", "    break  # the consumer leaves after the first token"]
        if how == "break"
        else ["iterator = aiter(manager)", "print(repr(await anext(iterator)))", "await iterator.aclose()"]
    )
    body = ["manager = await anext(rounds)", *leave, *_next_raises("StreamIncompleteError")]
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start()
        manager = await _first_manager(ctx, rounds)
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
    plan = (EngineStep(_FIRST), _NEVER)
    read = ["iterator = aiter(manager)", "print(repr(await anext(iterator)))"] if read_first else []
    body = [
        "manager = await anext(rounds)",
        *read,
        "await manager.aclose()",
        *_next_raises("StreamIncompleteError"),
    ]
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start()
        manager = await _first_manager(ctx, rounds)
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
    plan = (EngineStep(("a", "b", "c")), _NEVER)
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
        *_show("manager 1's completion()", "held[0].completion()", "StreamIncompleteError"),
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
    plan = (EngineStep(("a", Block(), "b") if blocked else ("a", "b", "c")), _NEVER)
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
        *_show("manager 1's completion()", "manager.completion()", "StreamIncompleteError"),
    ]
    where = _ACLOSE_SCENARIOS[scenario]
    async with RoundRun(target, ctx, plan, body) as run:
        rounds = run.start()
        manager = await _first_manager(ctx, rounds)
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
    plan = (EngineStep(("a", Block(), "b")), _NEVER)
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
        *_show("manager 1's completion()", "managers[0].completion()", "StreamIncompleteError"),
        *_next_raises("an error or the end"),
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
                _judged(False, ctx, "cancel-while-draining", state)
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
            problems.append(f"the consumer's task did not end with CancelledError: {_task_outcome(task)}")
        problems += await _stopped_problems(run, managers[0], closed_at)
        if draining:  # cancelled in the round's own step; one reading a manager is SM-19's to judge
            problems += await _nothing_more(ctx, rounds)
        if problems:
            raise run.failure(
                f"the round's consumer was cancelled {where}, its engine blocked awaiting the next item; "
                + "; ".join(problems),
                _CLOSE,
            )
