"""The checks of trouble while the manager closes the engine stream: a stop or a cancellation arriving while
it closes the engine after an engine error, after a protocol error or during an early stop, and an engine
whose close itself fails (raises, or raises CancelledError on its own).

Whatever arrives during that close, the stream's result stays what it was: the engine's error (SM-8), the
StreamProtocolError (SM-9) or StreamIncompleteError (SM-10); a stop returns only once it is complete
(SM-22); a cancellation of the consumer still propagates (SM-11); the lock is released and nothing hangs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, script, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamIncompleteError, StreamProtocolError

from ._manager_support import ROLE, TOKENS, CountingLock, Outcome, outcomes, spawn_waiters
from ._registry import check
from ._stop_support import LATER, NO_ACLOSE, Snapshot, aclose_of, state_of, until

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
Ending = Literal["engine error", "protocol error", "early stop"]
Trouble = Literal["stop", "cancel", "close fails", "close cancelled"]


class EngineFailed(ConnectionResetError):
    """What the engine of the engine-error cases raises."""


class CloseFailed(Exception):
    """What an engine whose close fails raises from it."""


@dataclass
class _Engine:
    """An async iterator (not a generator, so that its close can be slow after an error too) whose close
    takes event-loop turns, and can raise."""

    ending: Ending
    close_turns: int = 8
    close_raises: BaseException | None = None
    sent: int = 0
    close_started: bool = False
    closed: bool = False
    error: BaseException = field(default_factory=lambda: EngineFailed("the engine lost its connection"))

    def __aiter__(self) -> _Engine:
        return self

    async def __anext__(self) -> object:
        await asyncio.sleep(0)
        if self.closed or self.close_started:
            raise StopAsyncIteration
        self.sent += 1
        if self.sent <= 2:
            return TOKENS[self.sent - 1]
        if self.ending == "engine error":
            raise self.error
        if self.ending == "protocol error":
            return b"not a token"
        return TOKENS[min(self.sent - 1, len(TOKENS) - 1)]

    async def aclose(self) -> None:
        self.close_started = True
        for _ in range(self.close_turns):
            await asyncio.sleep(0)
        self.closed = True
        if self.close_raises is not None:
            raise self.close_raises


@dataclass
class _Run:
    engine: _Engine
    manager: Any
    lock: CountingLock
    consumer: asyncio.Task[None]
    loop_error: BaseException | None
    stop: Snapshot | None
    stop_error: BaseException | None
    results: list[tuple[str, Outcome]]


async def _trouble(target: ManagerTarget, ctx: CheckContext, ending: Ending, trouble: Trouble) -> _Run | None:
    """Read a manager over an :class:`_Engine` that ends as ``ending`` says (an early stop: the consumer
    closes its iterator after 2 tokens) and, while the manager closes the engine, make ``trouble``.
    ``None`` (noted) when the manager did not close the engine in the consumer's step."""
    raises: BaseException | None = None
    if trouble == "close fails":
        raises = CloseFailed("the engine's close failed")
    elif trouble == "close cancelled":
        raises = asyncio.CancelledError()
    engine = _Engine(ending, close_raises=raises)
    lock = CountingLock()
    try:
        manager: Any = target(engine, ROLE, lock=lock)
    except Exception as exc:
        raise CheckFailure(
            f"calling {target.name}(stream_iter, role, lock=...) raised {describe_exception(exc)}",
            expected="a manager (ManagerFactory: kani's StreamManager constructor signature)",
        ) from exc
    if trouble == "stop" and not callable(getattr(manager, "aclose", None)):
        raise CheckSkipped(NO_ACLOSE)
    seen: dict[str, BaseException] = {}
    pending: list[asyncio.Task[object]] = []

    async def consume() -> None:
        iterator = aiter(manager)
        try:
            for _ in range(2):
                await anext(iterator)
            pending.extend(spawn_waiters(ctx, manager, 3, ("completion", "message", "await")))
            await asyncio.sleep(0)
            if ending == "early stop":
                await iterator.aclose()  # in this task: the close runs here
            else:
                while True:
                    await anext(iterator)
        except StopAsyncIteration:
            pass
        except BaseException as exc:
            seen["loop"] = exc
            raise

    consumer = ctx.spawn(consume(), name="lmstream consumer")
    await until(ctx, lambda: engine.close_started or consumer.done(), timeout=LATER)
    if not engine.close_started:
        ctx.note(
            f"the manager did not close the engine in the consumer's step ({_WHAT[ending]}): nothing could "
            "come while it did (SM-10's and SM-31's checks judge the close itself)"
        )
        await ctx.wait_tasks([consumer], timeout=LATER)
        if consumer.done() and not consumer.cancelled():
            consumer.exception()  # retrieved: not judged
        return None
    snapshot: Snapshot | None = None
    stop_error: BaseException | None = None
    if (trouble == "stop" and not consumer.done()) or (trouble == "stop" and not engine.closed):
        stopper = ctx.spawn(_stop(manager, engine, lock), name="lmstream stopper")
        await ctx.wait_tasks([stopper], timeout=LATER)
        if stopper.done() and not stopper.cancelled():
            snapshot, stop_error = stopper.result()
    elif trouble == "cancel":
        consumer.cancel()
    await ctx.wait_tasks([consumer], timeout=LATER)
    if consumer.done() and not consumer.cancelled():
        consumer.exception()  # retrieved: judged through what consume() recorded
    labels = ("completion()", "message()", "await manager")
    found = await outcomes(ctx, pending, timeout=LATER)
    results = [(f"a pending {label}", o) for label, o in zip(labels, found, strict=False)]
    later = spawn_waiters(ctx, manager, 3, ("completion", "message", "await"))
    found = await outcomes(ctx, later, timeout=LATER)
    results += [(f"a later {label}", o) for label, o in zip(labels, found, strict=True)]
    return _Run(engine, manager, lock, consumer, seen.get("loop"), snapshot, stop_error, results)


async def _stop(manager: Any, engine: _Engine, lock: CountingLock) -> tuple[Snapshot, BaseException | None]:
    error: BaseException | None = None
    try:
        await aclose_of(manager)
    except Exception as exc:
        error = exc
    return Snapshot(engine.closed, lock.acquisitions, lock.releases, state_of(manager)), error


_WHAT: Final[dict[Ending, str]] = {
    "engine error": "the engine raised after 2 tokens",
    "protocol error": "the engine yielded bytes after 2 tokens",
    "early stop": "the consumer closed its iterator after 2 tokens",
}
_TROUBLE: Final[dict[Trouble, str]] = {
    "stop": "a stop from another task came while the manager closed the engine (8 turns)",
    "cancel": "the consumer's task was cancelled while the manager closed the engine (8 turns)",
    "close fails": "the engine's close raised an error",
    "close cancelled": "the engine's close raised CancelledError of its own",
}


def _where(ending: Ending, trouble: Trouble) -> str:
    return f"{_WHAT[ending]}, and {_TROUBLE[trouble]}"


def _reproduction(ctx: CheckContext, ending: Ending, trouble: Trouble) -> str:
    imports, expression = ctx.target_reference()
    third = {"engine error": "raise ConnectionResetError('lost')", "protocol error": "yield b'bytes'"}
    raising = {
        "close fails": ["        raise RuntimeError('close failed')"],
        "close cancelled": ["        raise asyncio.CancelledError()"],
    }
    loop = (
        ["    iterator = aiter(manager)", "    await anext(iterator)", "    await iterator.aclose()"]
        if ending == "early stop"
        else ["    async for token in manager:", "        pass"]
    )
    closing = "await asyncio.sleep(0.001)  # the manager is closing the engine"
    then = {
        "stop": [closing, "await asyncio.wait_for(manager.aclose(), 1)"],
        "cancel": [closing, "consumer.cancel()"],
    }
    return script(
        imports,
        [
            "async def engine():",
            "    try:",
            "        yield ' Hel'",
            "        yield 'lo'",
            *([f"        {third[ending]}"] if ending in third else ["        yield ', '"]),
            "    finally:",
            "        for _ in range(8):",
            "            await asyncio.sleep(0)",
            *raising.get(trouble, []),
            f"manager = {expression}(engine(), {ROLE!r}, lock=asyncio.Lock())",
            "async def consume():",
            *loop,
            "consumer = asyncio.ensure_future(consume())",
            *then.get(trouble, []),
            "print(await asyncio.gather(consumer, return_exceptions=True))",
            "print(await asyncio.gather(asyncio.wait_for(manager.completion(), 1), return_exceptions=True))",
        ],
    )


def _loop(error: BaseException | None) -> str:
    return "ended without an error" if error is None else f"raised {describe_exception(error)}"


def _result_problem(
    results: Sequence[tuple[str, Outcome]], wanted: str, matches: Callable[[BaseException | None], bool]
) -> str | None:
    for label, outcome in results:
        if outcome.pending:
            return f"{label} was still waiting {seconds(LATER)} later"
        if not matches(outcome.error):
            return f"{label} {outcome.describe()}, not {wanted}"
    return None


# ---------------------------------------------------------------------------------------------- SM-9
def _incomplete(error: BaseException | None) -> bool:
    return isinstance(error, StreamIncompleteError)


def _protocol(error: BaseException | None) -> bool:
    return isinstance(error, StreamProtocolError) and error.requirement_id == "ES-2"


@check(
    "SM-9",
    _MANAGER,
    summary="a cancellation or a cancelled close while the manager closes the engine: the error stays",
)
async def protocol_error_survives_trouble_during_the_close(target: ManagerTarget, ctx: CheckContext) -> None:
    # A stop during that close is SM-26's to judge, and a close error in the error's place SM-31's.
    troubles: tuple[Trouble, ...] = ("cancel", "close cancelled")
    for trouble in troubles:
        run = await _trouble(target, ctx, "protocol error", trouble)
        if run is None:
            continue
        problem = _result_problem(run.results, "StreamProtocolError naming ES-2", _protocol)
        if problem is not None:
            raise CheckFailure(
                f"{_where('protocol error', trouble)}: {problem}",
                expected=(
                    "the consumer and every waiter get StreamProtocolError naming the broken requirement, "
                    "whatever comes while the manager closes the engine"
                ),
                reproduction=_reproduction(ctx, "protocol error", trouble),
            )


# ---------------------------------------------------------------------------------------------- SM-10
@check("SM-10", _MANAGER, summary="an early stop whose engine close fails or is cancelled: everyone released")
async def early_stop_with_a_failing_close_releases_everyone(target: ManagerTarget, ctx: CheckContext) -> None:
    troubles: tuple[Trouble, ...] = ("close fails", "close cancelled")
    for trouble in troubles:
        run = await _trouble(target, ctx, "early stop", trouble)
        if run is None:
            continue
        problem = _result_problem(run.results, "StreamIncompleteError", _incomplete)
        if problem is None and (run.lock.locked() or run.lock.releases != run.lock.acquisitions):
            problem = f"the lock was {run.lock.describe()}"
        if problem is not None:
            raise CheckFailure(
                f"{_where('early stop', trouble)}: {problem}",
                expected=(
                    "an early stop closes the engine and releases the lock, and every pending and later "
                    "result raises StreamIncompleteError, even when the engine's close fails; nothing hangs"
                ),
                reproduction=_reproduction(ctx, "early stop", trouble),
            )


# ---------------------------------------------------------------------------------------------- SM-11
@check(
    "SM-11",
    _MANAGER,
    summary="the consumer cancelled while the manager closes the engine (error, early stop): it propagates",
)
async def cancellation_while_the_engine_is_closed_propagates(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    endings: tuple[Ending, ...] = ("protocol error", "early stop")
    for ending in endings:
        run = await _trouble(target, ctx, ending, "cancel")
        if run is None:
            continue
        # Only the propagation is judged: the results and the lock are SM-9's, SM-10's and SM-12's.
        problem: str | None = None
        if not run.consumer.done():
            problem = f"the consumer's task had not ended {seconds(LATER)} after it was cancelled"
        elif not run.consumer.cancelled():
            problem = (
                f"the consumer's task did not end with CancelledError: it {_loop(run.consumer.exception())}"
            )
        if problem is not None:
            raise CheckFailure(
                f"{_where(ending, 'cancel')}: {problem}",
                expected=(
                    "if the consuming task is cancelled, CancelledError propagates in that task, even when "
                    "it is cancelled while the manager closes the engine"
                ),
                reproduction=_reproduction(ctx, ending, "cancel"),
            )


# ---------------------------------------------------------------------------------------------- SM-22
@check(
    "SM-22",
    _MANAGER,
    summary="aclose() while the manager closes the engine (engine error, early stop) returns once complete",
)
async def aclose_while_the_engine_is_closed_returns_once_complete(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    # An engine error, not a protocol error: detecting one is SM-9's business, not a stop's.
    endings: tuple[Ending, ...] = ("engine error", "early stop")
    for ending in endings:
        run = await _trouble(target, ctx, ending, "stop")
        if run is None:
            continue
        problem: str | None = None
        if run.stop is None:
            problem = f"aclose() had not returned {seconds(LATER)} later"
        elif run.stop_error is not None:
            problem = f"aclose() raised {describe_exception(run.stop_error)}"
        elif run.stop.incomplete():
            problem = "aclose() returned while " + "; ".join(run.stop.incomplete())
        if problem is not None:
            raise CheckFailure(
                f"{_where(ending, 'stop')}: {problem}",
                expected=(
                    "every aclose() call returns, and only once the stop is complete: engine stream closed, "
                    "lock released, state terminal"
                ),
                reproduction=_reproduction(ctx, ending, "stop"),
            )


# ---------------------------------------------------------------------------------------------- SM-26
@check(
    "SM-26",
    _MANAGER,
    summary="aclose() while the manager closes the engine after an error: the error, never CancelledError",
)
async def stop_during_the_close_after_an_error_leaks_no_cancellation(
    target: ManagerTarget, ctx: CheckContext
) -> None:
    endings: tuple[Ending, ...] = ("engine error",)  # a protocol error's detection is SM-9's to judge
    for ending in endings:
        run = await _trouble(target, ctx, ending, "stop")
        if run is None:
            continue
        problem: str | None = None
        if not run.consumer.done():
            problem = f"the consumer's task had not ended {seconds(LATER)} later"
        elif run.consumer.cancelled() or isinstance(run.loop_error, asyncio.CancelledError):
            problem = "the stop's cancellation reached the consumer: its loop raised CancelledError"
        if problem is not None:
            raise CheckFailure(
                f"{_where(ending, 'stop')}: {problem}",
                expected=(
                    "a stop never leaves the consumer's task cancelled: the consumer's loop, already ending "
                    "with the stream's error, raises that error, not the stop's CancelledError"
                ),
                reproduction=_reproduction(ctx, ending, "stop"),
            )


# ---------------------------------------------------------------------------------------------- SM-35
@check(
    "SM-35",
    _MANAGER,
    summary="the engine's close fails after a protocol error or an early stop: it is the error's __cause__",
)
async def failing_close_is_the_cause_of_the_error(target: ManagerTarget, ctx: CheckContext) -> None:
    endings: tuple[Ending, ...] = ("protocol error", "early stop")
    for ending in endings:
        run = await _trouble(target, ctx, ending, "close fails")
        if run is None:
            continue
        close_error = run.engine.close_raises
        problem: str | None = None
        for label, outcome in run.results:
            # What the error is (and that nobody waits forever) is SM-9's, SM-10's and SM-31's to judge.
            if outcome.pending or outcome.error is None:
                continue
            if outcome.error is close_error:
                continue  # the close error in the error's place: SM-31's (or SM-10's) check reports it
            if outcome.error.__cause__ is not close_error:
                cause = outcome.error.__cause__
                problem = (
                    f"{label} raised {describe_exception(outcome.error)}, whose __cause__ is "
                    f"{'None' if cause is None else describe_exception(cause)}, not the close's "
                    f"{describe_exception(close_error) if close_error is not None else 'error'}"
                )
                break
        if problem is not None:
            raise CheckFailure(
                f"{_where(ending, 'close fails')}: {problem}",
                expected=(
                    "when closing the engine raises while the manager ends the stream with an error of its "
                    "own (StreamProtocolError, StreamIncompleteError), that close error is the __cause__ of "
                    "the error every result raises"
                ),
                reproduction=_reproduction(ctx, ending, "close fails"),
            )
