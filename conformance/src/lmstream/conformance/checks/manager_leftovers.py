"""The manager check of what a stream leaves behind (SM-15): once it has ended, in any way, no task the
manager started is still running and nothing warns.

The runner already captures warnings and asyncio's complaints during every check and reports them as
notes; this check makes them a failure for SM-15 specifically. For each way a stream can end (a full read,
a result before iteration, an engine error, a protocol error, a break, an ``aclose()``, a raise in the loop
body, a cancellation, a failing ``after``) it builds a fresh manager and, around that one stream:

* captures warnings, asyncio's exception reports and unraisable exceptions (the runner's own capture,
  :mod:`lmstream.conformance._capture`, entered again for the scenario, with the event loop's exception
  handler pointed at it); asyncio's slow-callback reports are timing, not leftovers, and become notes;
* compares :func:`asyncio.all_tasks` before and after: a task that appeared (not the check's own consumer)
  and is still running :func:`~lmstream.conformance.checks._manager_support.waiter_bound` seconds after the
  end is a leftover (tasks the event loop starts to finalize dropped async generators end within turns);
* lists async generators first iterated during the scenario that are still suspended, except the engine
  stream itself (whether the engine is closed is SM-10's and SM-11's subject).

Finally it runs the garbage collector under the same capture, for coroutines and tasks held in cycles.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from lmstream.conformance._capture import Sink, capture
from lmstream.conformance.context import CheckContext, CheckTimeout, asyncgen_name
from lmstream.conformance.describe import seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import Block, Fail
from lmstream.conformance.targets import ManagerTarget

from ._manager_support import TOKENS, Built, build, consume, manager_reproduction, wait_result, waiter_bound
from ._registry import check

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER

_SLOW = "slow callback"
_Run = Callable[[CheckContext, Built], Awaitable[bool]]
"""A scenario: end the stream of a built manager in one way; whether it ended (within the budget)."""


@contextlib.contextmanager
def _listening(loop: asyncio.AbstractEventLoop) -> Generator[Sink, None, None]:
    """Capture what Python and asyncio say while the block runs (see the module docstring)."""
    sink = Sink()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(sink.loop_exception)
    try:
        with capture(sink):
            yield sink
    finally:
        loop.set_exception_handler(previous)


async def _fail_after(completion: object) -> None:
    raise ValueError("after could not record the reply")


async def _cancel_in_engine(ctx: CheckContext, built: Built) -> bool:
    consumer = ctx.spawn(consume(ctx, built.manager), name="lmstream consumer (to be cancelled)")
    await ctx.bounded(built.block_reached(), what="the engine to reach its blocking step")
    consumer.cancel()
    return await ctx.wait_tasks([consumer], timeout=waiter_bound(ctx))


async def _result_first(ctx: CheckContext, built: Built) -> bool:
    # It drives the stream. A third of what is left: a manager that hangs here leaves time for the rest.
    outcome = await wait_result(ctx, built.manager, timeout=ctx.remaining() / 3)
    return not outcome.pending


def _consumer(**options: Any) -> _Run:
    async def run(ctx: CheckContext, built: Built) -> bool:
        await consume(ctx, built.manager, **options)
        return True

    return run


_SCENARIOS: list[tuple[str, tuple[object, ...], dict[str, Any], _Run]] = [
    ("a full read", TOKENS, {"lock": True}, _consumer()),
    ("completion() before any iteration", TOKENS, {}, _result_first),
    ("an engine error", (TOKENS[0], Fail(ConnectionResetError("engine failure"))), {}, _consumer()),
    ("a protocol error (bytes yielded)", (TOKENS[0], b"lo"), {}, _consumer()),
    ("a break after 2 tokens", TOKENS, {"lock": True}, _consumer(stop_after=2, how="break")),
    ("the iterator's aclose() after 2 tokens", TOKENS, {}, _consumer(stop_after=2, how="aclose")),
    ("an exception in the loop body", TOKENS, {}, _consumer(stop_after=2, how="raise")),
    ("a cancellation while the engine blocked", (*TOKENS[:2], Block()), {"lock": True}, _cancel_in_engine),
    ("a failing after", TOKENS, {"after": _fail_after}, _consumer()),
]


@check(
    "SM-15",
    _MANAGER,
    summary="after every kind of ending (9 scenarios), no task the manager started runs and nothing warns",
)
async def nothing_left_running_nothing_warns(target: ManagerTarget, ctx: CheckContext) -> None:
    loop = asyncio.get_running_loop()
    judged = 0
    for what, script, options, run in _SCENARIOS:
        before = asyncio.all_tasks()
        mark = ctx.asyncgen_mark()
        started: list[asyncio.Task[Any]] = []
        bound = waiter_bound(ctx)
        with _listening(loop) as sink:
            built = await build(target, ctx, script, **options)
            try:
                ended = await run(ctx, built)
            except CheckTimeout:
                ended = False
            if ended:
                await ctx.settle()
                started = [t for t in asyncio.all_tasks() - before if not t.done() and t not in ctx.spawned]
                bound = waiter_bound(ctx)
                await ctx.wait_tasks(started, timeout=bound)
        if not ended:
            ctx.note(f"after {what}: the stream did not end within the budget; what it leaves is not judged")
            continue
        judged += 1
        problems = [
            f"task {t.get_name()!r} ({_coro_name(t)}) was still running {seconds(bound)} after the end"
            for t in started
            if not t.done()
        ]
        problems += [
            f"async generator {asyncgen_name(agen)} was left suspended, never closed"
            for agen in ctx.asyncgens_since(mark)
            if agen.ag_frame is not None and agen is not built.stream
        ]
        problems += _said(ctx, sink)
        if problems:
            raise CheckFailure(
                f"after {what}: {'; '.join(problems)}",
                expected="when the stream has ended, no task the manager started is still running and "
                "nothing warns (no never-awaited coroutine, no destroyed pending task, no unclosed async "
                "generator)",
                reproduction=manager_reproduction(
                    ctx,
                    script,
                    [
                        "try:",
                        "    async for token in manager:",
                        "        pass",
                        "except Exception as exc:",
                        "    print('the loop raised', repr(exc))",
                        "await asyncio.sleep(0.01)",
                        "print([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])",
                    ],
                    lock=bool(options.get("lock")),
                )
                + "\n# run it with: python -X dev -W error  (so that warnings show)",
            )
    if not judged:
        raise CheckSkipped("no stream ended within the budget, so nothing it leaves behind can be judged")
    with _listening(loop) as sink:
        gc.collect()
    problems = _said(ctx, sink)
    if problems:
        raise CheckFailure(
            f"garbage collection after the streams had ended reported: {'; '.join(problems)}",
            expected="when the stream has ended, nothing warns (no never-awaited coroutine, no destroyed "
            "pending task, no unclosed async generator)",
        )


def _said(ctx: CheckContext, sink: Sink) -> list[str]:
    """The captured lines that count against SM-15; slow-callback reports become notes."""
    for line in sink.lines:
        if line.startswith(_SLOW):
            ctx.note(line)
    return [line for line in sink.lines if not line.startswith(_SLOW)]


def _coro_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return str(getattr(coro, "__qualname__", None) or type(coro).__name__)
