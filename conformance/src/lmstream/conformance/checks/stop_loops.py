"""The stop check of a stop awaited on another event loop (SM-29): what a sync handler (a Flask or Django
view, a Gradio callback) writes first, ``asyncio.run(stream.aclose())`` in its own thread, while the stream
lives on the server's loop.

The check runs that stop in a thread of its own twice: with the engine blocked awaiting its next item, and
with the consumer busy in its loop body. Either the stop works, as on the stream's own loop and without
touching the stream's loop from the wrong thread (the lock is released on the loop's thread; the consumer's
loop ends; every result raises :class:`~lmstream.spec.StreamIncompleteError`), or it raises
``RuntimeError`` within :data:`~._stop_support.PROMPT`, in one line naming
``asyncio.run_coroutine_threadsafe(stream.aclose(), loop)``, and changes nothing: then a stop from the
stream's own loop must still work. How well that stop works is SM-22's and SM-24's to judge; here it only
has to return and leave results that say the stream is incomplete, not that it belongs to another loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from lmstream.conformance.context import CheckContext
from lmstream.conformance.describe import describe_exception, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import ManagerTarget

from ._manager_support import wait_result
from ._registry import check
from ._stop_consumers import (
    Consumer,
    judge_incomplete,
    pending_outcomes,
    results_now,
    spawn_pending,
    wait_until_blocked,
)
from ._stop_snippets import CONSUME, RESULT, stop_reproduction
from ._stop_support import (
    BLOCKED,
    LATER,
    PROMPT,
    SCRIPT,
    AfterProbe,
    Rig,
    aclose_of,
    describe_state,
    make_rig,
    spawn_stoppers,
    state_of,
    terminal,
    until,
)

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER
_THE_WAY = "asyncio.run_coroutine_threadsafe(stream.aclose(), loop)"
_EXPECTED = (
    "aclose() awaited on another event loop (asyncio.run(stream.aclose()) in a worker thread) stops the "
    "stream as on its own loop, or raises RuntimeError at once, in one line naming "
    f"{_THE_WAY}, and leaves the stream exactly as it was, so that a stop from its own loop still works"
)
Where = Literal["engine", "body"]


@dataclass
class _Elsewhere:
    """How the other loop's call ended (``done`` is read again by the checks that wait longer)."""

    finished: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    value: object = None
    took: float = 0.0

    @property
    def done(self) -> bool:
        return self.finished.is_set()


def _in_another_thread(call: Callable[[], Coroutine[Any, Any, object]], what: str) -> _Elsewhere:
    """``asyncio.run(call())`` in a new (daemon) thread, as a sync handler runs it; returns at once."""
    outcome = _Elsewhere()

    def handler() -> None:
        started = time.monotonic()
        try:
            outcome.value = asyncio.run(call())
        except BaseException as exc:  # anything it raised is what the check judges
            outcome.error = exc
        outcome.took = time.monotonic() - started
        outcome.finished.set()

    threading.Thread(target=handler, name=f"lmstream SM-29: a sync handler's {what}", daemon=True).start()
    return outcome


async def _stop_from_another_thread(ctx: CheckContext, manager: Any) -> _Elsewhere:
    """``asyncio.run(aclose())`` in a new (daemon) thread, waited for :data:`LATER` at most."""
    outcome = _in_another_thread(lambda: aclose_of(manager), "stop")
    await until(ctx, lambda: outcome.done, timeout=LATER)
    return outcome


_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "aclose": ("aclose",),
    "completion": ("completion",),
    "message": ("message", "completion"),  # message() is completion().message (SM-5): either name says it
}


def _refusal_problem(error: BaseException, method: str) -> str | None:
    """Why ``error`` is not the refusal SM-29 allows (RuntimeError, one line, naming the method and
    run_coroutine_threadsafe), or ``None``."""
    message = str(error)
    if (
        not isinstance(error, RuntimeError)
        or "\n" in message
        or "run_coroutine_threadsafe" not in message
        or not any(name in message for name in _NAMES[method])
    ):
        return (
            f"raised {describe_exception(error)}, which does not say, in one line naming {method}(), to use "
            "asyncio.run_coroutine_threadsafe"
        )
    return None


@dataclass(frozen=True)
class _Look:
    """What a stop could change, in words that compare."""

    state: str
    lock: str
    engine: str
    consumer: str
    waiters: str
    after: str

    @classmethod
    def now(cls, rig: Rig, consumer: Consumer, pending: list[tuple[str, asyncio.Task[object]]]) -> _Look:
        lock = rig.lock
        assert lock is not None and rig.after is not None
        return cls(
            describe_state(state_of(rig.manager)),
            f"acquired {lock.acquisitions}, released {lock.releases}",
            f"{rig.probe.requests} request(s), {'closed' if rig.engine_closed() else 'open'}",
            consumer.describe(),
            f"{sum(task.done() for _, task in pending)} of {len(pending)} resolved",
            f"called {len(rig.after.calls)} time(s)",
        )

    def changes(self, before: _Look) -> list[str]:
        names = ("state", "the lock", "the engine stream", "the consumer", "the pending waiters", "after")
        mine = (self.state, self.lock, self.engine, self.consumer, self.waiters, self.after)
        theirs = (before.state, before.lock, before.engine, before.consumer, before.waiters, before.after)
        return [f"{n}: {b} -> {a}" for n, a, b in zip(names, mine, theirs, strict=True) if a != b]


def _reproduction(ctx: CheckContext, rig: Rig, where: Where) -> str:
    body = [*CONSUME]
    if where == "engine":
        body.append("await until_blocked(probe)")
    else:
        body = [
            "paused, resume = asyncio.Event(), asyncio.Event()",
            "async def consume():",
            "    async for token in manager:",
            "        paused.set()",
            "        await resume.wait()  # busy in the loop body",
            "consumer = asyncio.create_task(consume())",
            "await paused.wait()",
        ]
    body += [
        "def handler():  # a sync view's stop, in a thread of its own",
        "    try:",
        "        asyncio.run(manager.aclose())",
        "    except RuntimeError as exc:",
        "        print('refused:', exc)",
        "thread = threading.Thread(target=handler, daemon=True)",
        "thread.start()",
        "await asyncio.to_thread(thread.join, 1)",
        "print('returned:', not thread.is_alive(), repr(manager.state), 'lock held:', lock.locked())",
        "await asyncio.wait_for(manager.aclose(), 1)  # then from the stream's own loop",
        RESULT,
    ]
    return _thread_reproduction(ctx, rig, body)


def _thread_reproduction(ctx: CheckContext, rig: Rig, body: list[str]) -> str:
    """The script of a rig's manager (built with a lock) and ``body``, which runs a sync handler's thread."""
    return stop_reproduction(
        ctx,
        rig.items,
        body,
        lock=True,
        after=rig.after is not None,
        cleanup_turns=rig.cleanup_turns,
        imports=["import threading"],
    )


async def _from_another_loop(target: ManagerTarget, ctx: CheckContext, where: Where) -> None:
    rig, consumer = await _started(target, ctx, where)
    try:
        await _judge(ctx, rig, consumer, where)
    except CheckFailure:
        # Let what the wrong thread left behind end here, not when the loop is gone: a consumer task that
        # the collector closes later has no loop to finish on.
        consumer.resume()
        rig.probe.release()
        await ctx.wait_tasks(spawn_stoppers(ctx, rig), timeout=LATER)
        await ctx.wait_tasks([consumer.task], timeout=LATER)
        raise


async def _started(target: ManagerTarget, ctx: CheckContext, where: Where) -> tuple[Rig, Consumer]:
    blocked = where == "engine"
    rig = await make_rig(
        target, ctx, BLOCKED if blocked else SCRIPT, lock=True, after=AfterProbe(), cleanup_turns=2
    )
    consumer = Consumer(ctx, rig.manager, pause_at=None if blocked else 2)
    if blocked:
        await wait_until_blocked(ctx, rig, consumer)
    else:
        if (
            not await until(ctx, lambda: consumer.paused or consumer.ended, timeout=LATER)
            or not consumer.paused
        ):
            raise CheckSkipped(
                f"the consumer never got 2 tokens ({consumer.describe()}): no stop while it was busy"
            )
    return rig, consumer


async def _judge(ctx: CheckContext, rig: Rig, consumer: Consumer, where: Where) -> None:
    blocked = where == "engine"
    situation = (
        f"with {'the engine blocked' if blocked else 'the consumer busy in its loop body'} after 2 tokens"
    )
    pending = spawn_pending(ctx, rig.manager)
    await ctx.settle()
    before = _Look.now(rig, consumer, pending)
    other = await _stop_from_another_thread(ctx, rig.manager)
    await ctx.settle(5)
    repro = _reproduction(ctx, rig, where)
    where_said = f"{situation}, aclose() awaited on another event loop (from a worker thread)"

    def fail(observed: str) -> CheckFailure:
        return CheckFailure(f"{where_said} {observed}", expected=_EXPECTED, reproduction=repro)

    if not other.done:
        raise fail(f"had not returned or raised after {seconds(LATER)}")
    if other.error is None:
        await _judge_worked(ctx, rig, consumer, pending, fail)
        return
    refused = _refusal_problem(other.error, "aclose")
    if refused is not None:
        raise fail(refused)
    if other.took > PROMPT:
        raise fail(f"raised RuntimeError only after {seconds(other.took)}, not at once")
    changes = _Look.now(rig, consumer, pending).changes(before)
    if changes:
        raise fail("raised RuntimeError, as it may, but changed the stream: " + "; ".join(changes))
    # The stream is as it was: its own loop must still be able to stop it.
    stoppers = spawn_stoppers(ctx, rig)
    if blocked:
        if not await until(ctx, lambda: consumer.ended, timeout=PROMPT):
            ctx.note(
                "after the refused stop, the stop on the stream's own loop waited for the engine (SM-24)"
            )
            rig.probe.release()
    else:
        consumer.resume()
    await ctx.wait_tasks(stoppers, timeout=LATER)
    if not stoppers[0].done():
        raise fail(
            f"was refused; then aclose() on the stream's own loop had not returned after {seconds(LATER)}"
        )
    if stoppers[0].result().error is not None:
        raised = stoppers[0].result().error
        assert raised is not None
        raise fail(f"was refused; then aclose() on the stream's own loop raised {describe_exception(raised)}")
    wrong = judge_incomplete([*await pending_outcomes(ctx, pending), *await results_now(ctx, rig.manager)])
    if wrong is not None:
        raise fail(f"was refused; after the stop on the stream's own loop, {wrong}")


async def _judge_worked(
    ctx: CheckContext,
    rig: Rig,
    consumer: Consumer,
    pending: list[tuple[str, asyncio.Task[object]]],
    fail: Any,
) -> None:
    """The other loop's stop returned: it must have stopped the stream, and from the right thread."""
    consumer.resume()
    lock = rig.lock
    assert lock is not None
    ended = await until(
        ctx, lambda: terminal(rig.manager) and consumer.ended and rig.engine_closed(), timeout=LATER
    )
    own = threading.get_ident()
    if any(thread != own for thread in lock.release_threads):
        raise fail(
            "returned, but the lock was released from that thread, not the stream's loop's (asyncio is not "
            "thread-safe: the next holder of the lock may not be woken)"
        )
    if not ended:
        raise fail(
            f"returned, but {seconds(LATER)} later the stream was not stopped: state "
            f"{describe_state(state_of(rig.manager))}, consumer {consumer.describe()}, engine stream "
            f"{'closed' if rig.engine_closed() else 'open'}"
        )
    wrong = judge_incomplete([*await pending_outcomes(ctx, pending), *await results_now(ctx, rig.manager)])
    if wrong is not None:
        raise fail(f"returned, but then {wrong}")


@check(
    "SM-29",
    _MANAGER,
    summary="aclose() on a worker thread's own loop, engine blocked or consumer busy: works, or refuses",
)
async def stop_from_another_event_loop(target: ManagerTarget, ctx: CheckContext) -> None:
    for where in ("engine", "body"):
        await _from_another_loop(target, ctx, where)


# ---------------------------------------------------------------------------------------------- results
Bound = Literal["iterated", "awaited"]
_RESULTS_EXPECTED = (
    "completion() or message() awaited on another event loop (asyncio.run(...) in a worker thread) once "
    "the stream is bound to its own loop either returns the stream's result when it ends or raises "
    "RuntimeError at once, in one line naming the method and asyncio.run_coroutine_threadsafe, and leaves "
    "the stream as it was"
)


def _results_reproduction(ctx: CheckContext, rig: Rig, bound: Bound, method: str) -> str:
    if bound == "iterated":
        body = [*CONSUME, "await until_blocked(probe)"]
    else:
        body = [
            "iterator = aiter(manager)  # taken, not stepped yet",
            "waiter = asyncio.ensure_future(manager.completion())  # waits on the stream's own loop",
            "await asyncio.sleep(0)",
        ]
    body += [
        "def handler():  # a sync view, in a thread of its own",
        "    try:",
        f"        print('returned:', asyncio.run(manager.{method}()))",
        "    except RuntimeError as exc:",
        "        print('refused:', exc)",
        "thread = threading.Thread(target=handler, daemon=True)",
        "thread.start()",
        "await asyncio.to_thread(thread.join, 0.5)",
        "print('still waiting:', thread.is_alive())",
    ]
    return _thread_reproduction(ctx, rig, body)


async def _result_from_another_loop(
    target: ManagerTarget, ctx: CheckContext, bound: Bound, method: str
) -> None:
    rig = await make_rig(target, ctx, BLOCKED if bound == "iterated" else SCRIPT, lock=True, cleanup_turns=2)
    manager = rig.manager
    consumer: Consumer | None = None
    own: asyncio.Task[object] | None = None
    iterator: Any = None
    if bound == "iterated":
        consumer = Consumer(ctx, manager)
        await wait_until_blocked(ctx, rig, consumer)
        situation = "with the engine blocked after 2 tokens"
    else:
        iterator = aiter(manager)
        own = ctx.spawn(manager.completion(), name="lmstream waiter on the stream's loop")
        await ctx.settle()
        situation = "with the iterator taken but not stepped and a completion() waiting on the stream's loop"
    where_said = f"{situation}, {method}() awaited on another event loop (from a worker thread)"
    repro = _results_reproduction(ctx, rig, bound, method)

    def fail(observed: str) -> CheckFailure:
        return CheckFailure(f"{where_said} {observed}", expected=_RESULTS_EXPECTED, reproduction=repro)

    other = _in_another_thread(lambda: getattr(manager, method)(), method)
    await until(ctx, lambda: other.done, timeout=PROMPT)
    refused = other.done and other.error is not None
    if other.done and other.error is not None:
        problem = _refusal_problem(other.error, method)
        if problem is not None:
            raise fail(problem)
    elif other.done:
        raise fail(f"returned {other.value!r} while the stream was still streaming")
    # Let the stream end on its own loop; the other loop's call, if it waits, must then return its result.
    if consumer is not None:
        rig.probe.release()
        await until(ctx, lambda: consumer.ended, timeout=LATER)
    else:
        reader = ctx.spawn(_read_all(iterator), name="lmstream consumer")
        await ctx.wait_tasks([reader], timeout=LATER)
    mine = await wait_result(ctx, manager, "completion", timeout=LATER)
    if own is not None:
        await ctx.wait_tasks([own], timeout=LATER)
        if not own.done():
            raise fail(
                f"was {'refused' if refused else 'awaited'}; then the waiter on the stream's own loop "
                f"was still waiting {seconds(LATER)} after the stream ended"
            )
        if own.cancelled() or own.exception() is not None:
            error = asyncio.CancelledError() if own.cancelled() else own.exception()
            assert error is not None
            raise fail(
                f"was {'refused' if refused else 'awaited'}; then the waiter on the stream's own loop raised "
                f"{describe_exception(error)}"
            )
    if mine.error is not None or mine.pending:
        raise fail(
            f"was {'refused' if refused else 'awaited'}; then completion() on the stream's own loop "
            f"{mine.describe()} once the stream ended"
        )
    if refused:
        return
    await until(ctx, lambda: other.done, timeout=LATER)
    if not other.done:
        raise fail(f"was still waiting {seconds(LATER)} after the stream ended on its own loop")
    if other.error is not None:
        raise fail(f"raised {describe_exception(other.error)} after the stream ended, not its result")
    wanted = mine.value if method == "completion" else getattr(mine.value, "message", None)
    if other.value is not wanted:
        raise fail(f"returned {other.value!r}, not the stream's {method}() result {wanted!r}")


async def _read_all(iterator: Any) -> None:
    with contextlib.suppress(StopAsyncIteration):
        while True:
            await anext(iterator)


@check(
    "SM-29",
    _MANAGER,
    summary="completion()/message() on a worker thread's loop, stream iterated or awaited: works or refuses",
)
async def results_from_another_event_loop(target: ManagerTarget, ctx: CheckContext) -> None:
    bounds: tuple[Bound, ...] = ("iterated", "awaited")
    for bound in bounds:
        for method in ("completion", "message"):
            await _result_from_another_loop(target, ctx, bound, method)
