"""Interrupting a blocked step for a stop without leaking the cancellation (SM-24, SM-26), on every
supported Python, at a cost that does not depend on how many other tasks the event loop runs.

A stop that must not wait for the engine's next item has to interrupt the step that is blocked in it. All
asyncio offers for that is a cancellation, delivered one of two ways:

* ``Task.cancel()`` of the task running the step. Undoing that cancel afterwards is what keeps
  ``asyncio.timeout()`` and ``TaskGroup`` working: on 3.11+ the task's ``cancelling()`` count is restored
  with ``uncancel()``; on 3.10, which has no count, the stop's cancel is recognised by its message. The task
  is found by :func:`steps`, which follows one task's chain of awaits down to the stream's iterator: the
  task that began the iteration is asked first, at a cost of one chain (its await depth).
* ``Future.cancel()`` of the future the step is blocked on (:func:`blocking_future`, found by following the
  iterator's own chain of awaits down to its end). That is what ``Task.cancel()`` does to the future its
  task waits on, without touching any task's count; it reaches a step running in a task of its own
  (``asyncio.wait_for(anext(it), t)`` on 3.10 and 3.11, an iterator handed to another task) as cheaply.

Only when neither works (a chain that cannot be followed, in a task other than the one that began the
iteration) does a stop look through the loop's tasks (:func:`find_stepping_task`), yielding to the loop
between slices of that search so that it never holds the loop for long. A chain is followed through
coroutines, generators and async generators (``cr_await``, ``gi_yieldfrom``, ``ag_await``); the few
awaitables of CPython that expose nothing (an async generator's ``asend()``, a future's iterator, the
awaitables of ``anext()`` and ``coroutine.__await__()``) are looked into with :func:`gc.get_referents`.
Nothing here runs per token.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import inspect
import sys
import time
import types
import weakref
from collections.abc import Callable
from types import AsyncGeneratorType
from typing import Any, Final, TypeGuard, cast

__all__ = [
    "OPAQUE",
    "RUNNABLE",
    "STOP_MESSAGE",
    "blocking_future",
    "cancelling",
    "current_task",
    "find_stepping_task",
    "interrupt",
    "is_real",
    "running_loop",
    "runs_in_current_stack",
    "scrub",
    "settle",
    "steps",
]

_MAX_AWAIT_DEPTH: Final = 256

STOP_MESSAGE: Final = "lmstream: the stream was stopped with aclose()"
"""The message of the cancellation a stop sends; never seen by a consumer."""

_SLICE_SECONDS: Final = 0.0002
"""How long one slice of :func:`find_stepping_task` may hold the event loop before it yields."""

_SLICE_CHECK: Final = 16
"""Tasks examined between two looks at the clock in :func:`find_stepping_task`."""


class Unreachable(enum.Enum):
    """Why :func:`blocking_future` found no future to cancel."""

    RUNNABLE = "the step is about to run again (a bare yield, or its future is done)"
    OPAQUE = "the chain of awaits goes through an object that does not say what it awaits"


RUNNABLE: Final = Unreachable.RUNNABLE
OPAQUE: Final = Unreachable.OPAQUE


# ---------------------------------------------------------------------------------------------- the loop
def current_task() -> asyncio.Task[Any] | None:
    """``asyncio.current_task()``, or ``None`` when no event loop is running in this thread (an exit path
    run by the garbage collector after the loop was closed)."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or ``None``."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


if sys.version_info >= (3, 11):

    def cancelling(task: asyncio.Task[Any]) -> int:
        """How many cancellation requests are pending on ``task`` (always 0 on 3.10, which does not count)."""
        return task.cancelling()

else:

    def cancelling(task: asyncio.Task[Any]) -> int:
        """How many cancellation requests are pending on ``task`` (always 0 on 3.10, which does not count)."""
        return 0


# ---------------------------------------------------------------------------------------------- chains
def runs_in_current_stack(gen: AsyncGeneratorType[Any, Any] | object) -> bool:
    """Whether ``gen``'s frame is executing below the caller (a stop called from inside its own step)."""
    frame = getattr(gen, "ag_frame", None)
    if frame is None:
        return False
    caller = inspect.currentframe()
    while caller is not None:
        if caller is frame:
            return True
        caller = caller.f_back
    return False


def steps(task: asyncio.Task[Any], gen: object) -> bool:
    """Whether ``task`` is suspended in a step of ``gen``: its chain of awaits gets to ``gen``. Costs one
    chain (the task's await depth), whatever else the loop runs."""
    return not task.done() and _awaits(task.get_coro(), gen)


def blocking_future(gen: AsyncGeneratorType[Any, Any]) -> asyncio.Future[Any] | Unreachable:
    """The future at the end of the chain of awaits of ``gen``'s current step: the one its task waits on.

    :data:`RUNNABLE` when the chain ends at a bare ``yield`` (the step yielded to the loop and runs again
    in a moment); :data:`OPAQUE` when it cannot be followed to its end.
    """
    node: object = gen.ag_await
    for _ in range(_MAX_AWAIT_DEPTH):
        if node is None:
            return RUNNABLE
        if asyncio.isfuture(node):
            return node
        if _is_generator(node):
            node = _awaited(node)
            continue
        referents = gc.get_referents(node)
        futures = [r for r in referents if asyncio.isfuture(r)]
        generators = [r for r in referents if _is_generator(r)]
        if len(futures) + len(generators) != 1:
            return OPAQUE  # none, or more than one: which of them it awaits is not ours to guess
        node = futures[0] if futures else generators[0]
        if generators:
            node = _awaited(node)
    return OPAQUE


def _awaited(node: object) -> object:
    following: object = getattr(node, "cr_await", None) or getattr(node, "gi_yieldfrom", None)
    return following or getattr(node, "ag_await", None)


def _awaits(awaitable: object, target: object) -> bool:
    """Whether the chain of awaits from ``awaitable`` (coroutines, generators, async generators) gets to
    ``target``."""
    node: object = awaitable
    for _ in range(_MAX_AWAIT_DEPTH):
        if node is target:
            return True
        following = _awaited(node)
        if following is None:
            if _is_generator(node):
                return False  # suspended at a bare yield: the chain ends here
            # The awaitable of an async generator's asend()/athrow(), or of anext(), exposes nothing; the
            # generator it steps is among its referents.
            referents: list[object] = gc.get_referents(node)
            if any(r is target for r in referents):
                return True
            following = next((r for r in referents if _is_generator(r)), None)
            if following is None:
                return False
        node = following
    return False


def _is_generator(obj: object) -> bool:
    return isinstance(obj, types.CoroutineType | types.GeneratorType | types.AsyncGeneratorType)


async def find_stepping_task(gen: object, still_blocked: Callable[[], bool]) -> asyncio.Task[Any] | None:
    """The task whose current step runs ``gen``, searched among all the loop's tasks; ``None`` if none does,
    or once ``still_blocked()`` says the step ended by itself meanwhile.

    The rare case of a stop (see the module docstring): its cost grows with the number of tasks, so it
    runs in slices, yielding to the loop whenever a slice has taken :data:`_SLICE_SECONDS`. A task is
    returned from the slice that examined it, so it still runs the step when the caller gets it.
    """
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    entries = _tasks_now()
    started = time.perf_counter()
    for index, entry in enumerate(entries):
        if index % _SLICE_CHECK == 0 and time.perf_counter() - started > _SLICE_SECONDS:
            await asyncio.sleep(0)
            if not still_blocked():
                return None
            started = time.perf_counter()
        task = _dereferenced(entry)
        if _is_task(task) and task is not current and task.get_loop() is loop and steps(task, gen):
            return task
    return None


def _dereferenced(entry: object) -> object:
    """``entry()`` for a weak reference (``None`` once its object is gone), else ``entry``."""
    if isinstance(entry, weakref.ref):
        referenced: object = cast("weakref.ref[object]", entry)()
        return referenced
    return entry


def _is_task(obj: object) -> TypeGuard[asyncio.Task[Any]]:
    return isinstance(obj, asyncio.Task)


def _tasks_now() -> list[object]:
    """The tasks of every loop (or weak references to them), taken at once.

    ``asyncio.all_tasks()`` builds a set of them, which holds the loop for 2 to 6 ms at 10,000 tasks;
    asyncio's own registry (a ``WeakSet``, private: ``_scheduled_tasks`` from 3.12, ``_all_tasks`` before)
    gives its weak references in 0.1 ms, and they are followed slice by slice. Without that registry,
    ``all_tasks()`` it is. A task still running its first step eagerly (3.12+) is in neither, but it is
    running, not blocked: it is not the one to find."""
    registry = getattr(asyncio.tasks, "_scheduled_tasks", None)
    if registry is None:
        registry = getattr(asyncio.tasks, "_all_tasks", None)
    refs = getattr(registry, "data", None)
    if isinstance(refs, set):
        for _ in range(100):
            try:
                return list(cast("set[object]", refs))
            except RuntimeError:  # changed size: a task was created or collected in another thread
                continue
    return list(asyncio.all_tasks())


# ---------------------------------------------------------------------------------------------- cancels
def interrupt(task: asyncio.Task[object]) -> None:
    """Cancel ``task`` on behalf of a stop; :func:`settle` must be called once the task has seen it."""
    task.cancel(STOP_MESSAGE)


def settle(task: asyncio.Task[object], base: int, error: BaseException | None) -> bool:
    """Undo a stop's :func:`interrupt` of ``task``; return whether a *real* cancellation is still pending.

    :param base: ``cancelling()`` of the task when its iteration began (cancellations pending before the
        stream started, e.g. inside an ``except CancelledError`` block, are not ours to report).
    :param error: the ``CancelledError`` the task received, if it received one (3.10 reads its message).
    """
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        return bool(uncancel() > base)
    return is_real(task, base, error)


if sys.version_info >= (3, 11):

    def is_real(task: asyncio.Task[object] | None, base: int, error: BaseException | None) -> bool:
        """Whether ``error``, a ``CancelledError`` a step received after the stop cancelled the future it
        waited on, is (also) a real cancellation of ``task``: someone raised the task's ``cancelling()``
        count above ``base`` (3.11+)."""
        return task is not None and task.cancelling() > base

else:

    def is_real(task: asyncio.Task[object] | None, base: int, error: BaseException | None) -> bool:
        """Whether ``error``, a ``CancelledError`` a step received after the stop cancelled the future it
        waited on, is (also) a real cancellation of ``task``: on 3.10, the error does not carry the stop's
        message. Two cancels delivered together arrive as one error, with one message; a real one that
        arrives in the same step as the stop's may therefore be lost (a documented limit of 3.10)."""
        return error is not None and not (error.args and error.args[0] == STOP_MESSAGE)


def scrub(error: BaseException) -> None:
    """Take the stop's message off a real cancellation about to reach the consumer.

    asyncio keeps the message of a task's first pending cancel, so a real cancellation arriving just after
    the stop's interrupt is raised with the stop's message; the consumer must never see it.
    """
    if error.args == (STOP_MESSAGE,):
        error.args = ()
