"""Run one coroutine in a fresh, debug-mode event loop, bounded in time, and leave nothing behind.

This is the in-loop part of running one check (:mod:`lmstream.conformance.runner`), done inside the
worker process. Phases, with ``T`` the timeout and ``G`` the grace, counted from the start:

1. the check's task runs; its own bounded waits give up at ``T``;
2. at ``T + G/2`` the runner cancels the task if it is still running, and waits for it until ``T + G``;
   a task still running then ignored the cancellation and is abandoned;
3. leftover tasks (started by the target or the check) are cancelled and awaited until ``T + G`` (at least
   a short slice); async generators left open are closed (``shutdown_asyncgens``) and the default
   executor shut down, each bounded the same way; whatever does not finish is abandoned and reported;
4. the loop is closed and, if anything was abandoned, the garbage collector runs while output is still
   captured, so that no "Task was destroyed but it is pending" or "never awaited" noise escapes.

So a target that yields to the loop makes one check take at most ``T + G`` plus a few short slices. Code
that blocks the loop synchronously (``time.sleep``, a busy loop, a long computation) cannot be interrupted
from inside the process: the supervisor (:mod:`lmstream.conformance._supervisor`) stops the worker at the
check's hard deadline. Anything the target raises that would stop the loop (``SystemExit``,
``KeyboardInterrupt``, ``loop.stop()``, cancelling the runner's own task) is recorded, not propagated.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ._capture import Sink, capture
from ._leftovers import leftover_notes, quiet_captured
from .context import CheckContext, asyncgen_name

__all__ = ["IsolatedRun", "freeze_heap", "require_sync", "run_isolated"]

_heap_frozen = False


def freeze_heap() -> None:
    """Set everything that exists now aside from the collector (:func:`gc.freeze`), for good: a worker does
    it once, before its first check. A collection then examines only what the checks made, so it is cheap
    whatever the size of the heap (a forked worker inherits its caller's; an SDK-based target brings its
    own), and :func:`run_isolated` runs one after every check, finalizing what the target left in
    reference cycles while its output is still captured. Without it (a run in the caller's own process),
    a collection runs only after a check that left something behind.

    (Tracked here: :func:`gc.get_freeze_count` walks the whole frozen heap, 0.1 s at a few million
    objects.)
    """
    global _heap_frozen
    gc.freeze()
    _heap_frozen = True


_DRIVER = "lmstream runner"
_EXECUTOR_THREAD = "lmstream check executor"
_MIN_SLICE = 0.02
"""The least time each cleanup step gets, even when the deadline has passed."""


@dataclass
class IsolatedRun:
    """How the coroutine ended and what it left behind.

    :ivar finished: whether the task ended (returned or raised) by the end of the run.
    :ivar exception: what it raised (``None`` when it returned or did not finish).
    :ivar cancelled_by_runner: whether the runner had to cancel it at ``T + G/2``.
    :ivar waiting_for: what the context said the check was waiting for when the runner cancelled it.
    :ivar stopped_by: what stopped the event loop before the runner's task ended: a ``SystemExit`` or
        ``KeyboardInterrupt`` raised in a task other than the check's, the ``RuntimeError`` of a
        ``loop.stop()``, the ``CancelledError`` of the runner's own task cancelled by the target.
    :ivar problems: one line each: abandoned or leftover tasks, open async generators, threads, and
        everything captured (warnings, asyncio messages); a library's harmless leftovers are left out
        (see :mod:`lmstream.conformance._leftovers`).
    """

    finished: bool = False
    exception: BaseException | None = None
    cancelled_by_runner: bool = False
    waiting_for: str | None = None
    elapsed: float = 0.0
    stopped_by: BaseException | None = None
    problems: list[str] = field(default_factory=list[str])


def run_isolated(
    make: Callable[[], Coroutine[Any, Any, None]],
    ctx: CheckContext,
    *,
    timeout: float,
    grace: float,
    name: str,
    on_loop: Callable[[asyncio.AbstractEventLoop], object] | None = None,
) -> IsolatedRun:
    """Run ``make()`` as a task of a fresh debug-mode event loop, bounded as the module docstring says.

    Must be called from synchronous code (no running event loop in this thread). ``on_loop`` is given the
    loop before it runs (the worker's watchdog samples it).
    """
    run = IsolatedRun()
    sink = Sink()
    threads_before = set(threading.enumerate())
    started = time.monotonic()
    hard = started + timeout + grace
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    # An executor of the check's own: at the end it is shut down without waiting, so a target that leaves
    # a thread blocked in run_in_executor() cannot hold the suite up (the thread is reported below).
    executor = ThreadPoolExecutor(thread_name_prefix=_EXECUTOR_THREAD)
    loop.set_default_executor(executor)
    loop.set_exception_handler(sink.loop_exception)
    if on_loop is not None:
        on_loop(loop)
    abandoned: list[asyncio.Task[Any]] = []
    with capture(sink):
        try:
            _attempt(
                loop,
                run,
                _drive(
                    make,
                    ctx,
                    run,
                    timeout=timeout,
                    grace=grace,
                    hard=hard,
                    name=name,
                    abandoned=abandoned,
                ),
            )
            _attempt(loop, run, _cleanup(ctx, run, hard=hard, abandoned=abandoned))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            if not loop.is_closed():
                loop.close()
        abandoned_any = bool(abandoned)
        abandoned.clear()
        ctx._release()  # pyright: ignore[reportPrivateUsage] - the runner is the context's owner
        if _heap_frozen or run.problems or not run.finished:
            gc.collect()  # finalize what the check left, while output is still captured
    if abandoned_any:  # asyncio's "Task was destroyed but it is pending!" repeats what is reported above
        run.problems += quiet_captured(
            [line for line in sink.lines if "Task was destroyed but it is pending" not in line]
        )
    else:
        run.problems += quiet_captured(sink.lines)
    for thread in threading.enumerate():
        if thread not in threads_before and thread.is_alive():
            run.problems.append(_describe_thread(thread))
    run.elapsed = time.monotonic() - started
    return run


def _describe_thread(thread: threading.Thread) -> str:
    if thread.name.startswith(_EXECUTOR_THREAD):
        return (
            "a thread of the check's default executor, running the target's run_in_executor() call, was "
            "still busy after the check; the suite did not wait for it"
        )
    return f"thread {thread.name!r} started during the check was still running after it"


class TargetExited(Exception):
    """The target raised a ``BaseException`` that is not an ``Exception`` (``SystemExit``,
    ``KeyboardInterrupt``, ``GeneratorExit``...) in the check's task; the cause is that exception."""


def _attempt(loop: asyncio.AbstractEventLoop, run: IsolatedRun, coro: Coroutine[Any, Any, None]) -> None:
    try:
        loop.run_until_complete(loop.create_task(coro, name=_DRIVER))
    except BaseException as exc:  # SystemExit, loop.stop(), a cancelled runner: the target's
        if run.stopped_by is None:
            run.stopped_by = exc


async def _drive(
    make: Callable[[], Coroutine[Any, Any, None]],
    ctx: CheckContext,
    run: IsolatedRun,
    *,
    timeout: float,
    grace: float,
    hard: float,
    name: str,
    abandoned: list[asyncio.Task[Any]],
) -> None:
    loop = asyncio.get_running_loop()
    hooks = sys.get_asyncgen_hooks()
    loop_firstiter, loop_finalizer = hooks.firstiter, hooks.finalizer

    def firstiter(agen: Any) -> None:
        ctx._record_asyncgen(agen)  # pyright: ignore[reportPrivateUsage] - the runner is the context's owner
        if loop_firstiter is not None:
            loop_firstiter(agen)

    def finalizer(agen: Any) -> None:
        ctx._record_dropped(agen)  # pyright: ignore[reportPrivateUsage] - the runner is the context's owner
        if loop_finalizer is not None:
            loop_finalizer(agen)

    sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)
    task = loop.create_task(make(), name=name)
    ctx._bind(loop, task, loop.time())  # pyright: ignore[reportPrivateUsage] - the runner is the context's owner
    try:
        await asyncio.wait({task}, timeout=timeout + grace / 2)
        if not task.done():
            run.cancelled_by_runner = True
            run.waiting_for = ctx.waiting_for
            task.cancel()
            await asyncio.wait({task}, timeout=max(_MIN_SLICE, hard - time.monotonic()))
    finally:
        sys.set_asyncgen_hooks(firstiter=loop_firstiter, finalizer=loop_finalizer)
    if task.done():
        run.finished = True
        if not task.cancelled():
            run.exception = task.exception()
        else:
            run.exception = asyncio.CancelledError()
    else:  # the runner's message says so; nothing to add to the problems
        abandoned.append(task)


async def _cleanup(
    ctx: CheckContext, run: IsolatedRun, *, hard: float, abandoned: list[asyncio.Task[Any]]
) -> None:
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    for _ in range(3):  # let finalizers scheduled by the check (e.g. async generators' aclose) run
        await asyncio.sleep(0)
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done() and t not in abandoned]
    ours = {*ctx.spawned, *(t for t in leftovers if t.get_name() == _DRIVER)}
    for t in leftovers:
        t.cancel()
    if leftovers:
        await asyncio.wait(leftovers, timeout=_slice(hard))
    stray: list[asyncio.Task[Any]] = []
    for t in leftovers:
        if not t.done():
            abandoned.append(t)
            run.problems.append(
                f"task {t.get_name()!r} ({_coro_name(t)}) ignored cancellation and was abandoned"
            )
        else:
            if not t.cancelled():
                t.exception()  # retrieved: it is reported here, not by the loop later
            if t not in ours:
                stray.append(t)
    left_open = [agen for agen in ctx.asyncgens_since(0) if agen.ag_frame is not None and not agen.ag_running]
    run.problems += leftover_notes(
        ctx.origins, stray, left_open, describe_agen=asyncgen_name, iterated_by=ctx.iterated_by
    )
    await _bounded(loop.shutdown_asyncgens(), hard, run, abandoned, "closing async generators left open")


async def _bounded(
    coro: Coroutine[Any, Any, None],
    hard: float,
    run: IsolatedRun,
    abandoned: list[asyncio.Task[Any]],
    what: str,
) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    await asyncio.wait({task}, timeout=_slice(hard))
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=_MIN_SLICE)
    if not task.done():
        abandoned.append(task)
        run.problems.append(f"{what} did not finish in time and was abandoned")
    elif not task.cancelled() and task.exception() is not None:
        run.problems.append(f"{what} raised {task.exception()!r}")


def _slice(hard: float) -> float:
    return max(_MIN_SLICE, hard - time.monotonic())


def _coro_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or type(coro).__name__


def require_sync(what: str) -> None:
    """Refuse to run from inside an event loop: ``what`` runs event loops of its own.

    :raises RuntimeError: naming ``what`` and saying to call it from synchronous code.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"{what} run event loops of their own: call them from synchronous code, not a coroutine"
    )
