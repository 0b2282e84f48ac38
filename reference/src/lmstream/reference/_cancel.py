"""Interrupting a task for a stop without leaking the cancellation (SM-26), on every supported Python.

A stop that must not wait for the engine's next item can only interrupt the task awaiting it, and the only
way asyncio offers is ``Task.cancel()``. Undoing that cancel afterwards is what keeps ``asyncio.timeout()``
and ``TaskGroup`` working: on 3.11+ the task's ``cancelling()`` count is restored with ``uncancel()``; on
3.10, which has no count, the stop's cancel is recognised by its message.
"""

from __future__ import annotations

import asyncio
from typing import Final

__all__ = ["STOP_MESSAGE", "cancelling", "interrupt", "settle"]

STOP_MESSAGE: Final = "lmstream: the stream was stopped with aclose()"
"""The message of the cancellation a stop sends; never seen by a consumer."""


def cancelling(task: asyncio.Task[object]) -> int:
    """How many cancellation requests are pending on ``task`` (always 0 on 3.10, which does not count)."""
    count = getattr(task, "cancelling", None)
    return count() if count is not None else 0


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
