"""Interrupting a task for a stop without leaking the cancellation (SM-26), on every supported Python.

A stop that must not wait for the engine's next item can only interrupt the task awaiting it, and the only
way asyncio offers is ``Task.cancel()``. Undoing that cancel afterwards is what keeps ``asyncio.timeout()``
and ``TaskGroup`` working: on 3.11+ the task's ``cancelling()`` count is restored with ``uncancel()``; on
3.10, which has no count, the stop's cancel is recognised by its message.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
import types
from types import AsyncGeneratorType
from typing import Any, Final

__all__ = [
    "STOP_MESSAGE",
    "cancelling",
    "interrupt",
    "runs_in_current_stack",
    "scrub",
    "settle",
    "stepping_task",
]

_MAX_AWAIT_DEPTH: Final = 256

STOP_MESSAGE: Final = "lmstream: the stream was stopped with aclose()"
"""The message of the cancellation a stop sends; never seen by a consumer."""


if sys.version_info >= (3, 11):

    def cancelling(task: asyncio.Task[Any]) -> int:
        """How many cancellation requests are pending on ``task`` (always 0 on 3.10, which does not count)."""
        return task.cancelling()

else:

    def cancelling(task: asyncio.Task[Any]) -> int:
        """How many cancellation requests are pending on ``task`` (always 0 on 3.10, which does not count)."""
        return 0


def stepping_task(gen: object) -> asyncio.Task[Any] | None:
    """The task whose current step runs ``gen``, an async generator suspended in an await, or ``None``.

    Found by following each task's chain of awaits down to ``gen``; each step may run in a task of its
    own (``asyncio.wait_for(anext(it), t)`` wraps the step in a new task on 3.10 and 3.11). Called by a
    stop only, never per token, so nothing is recorded while streaming.
    """
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not current and not task.done() and _awaits(task.get_coro(), gen):
            return task
    return None


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


def _awaits(awaitable: object, target: object) -> bool:
    """Whether the chain of awaits from ``awaitable`` (coroutines, generators, async generators) gets to
    ``target``."""
    node: object = awaitable
    for _ in range(_MAX_AWAIT_DEPTH):
        if node is target:
            return True
        following: object = getattr(node, "cr_await", None) or getattr(node, "gi_yieldfrom", None)
        following = following or getattr(node, "ag_await", None)
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
    # Python 3.10: two cancels delivered together arrive as one error, with one message; a real one that
    # arrives in the same step as the stop's may therefore be lost (a documented limit of 3.10).
    return error is not None and not (error.args and error.args[0] == STOP_MESSAGE)


def scrub(error: BaseException) -> None:
    """Take the stop's message off a real cancellation about to reach the consumer.

    asyncio keeps the message of a task's first pending cancel, so a real cancellation arriving just after
    the stop's interrupt is raised with the stop's message; the consumer must never see it.
    """
    if error.args == (STOP_MESSAGE,):
        error.args = ()
