"""Interrupt a target that blocks the event loop synchronously (``time.sleep``, a busy loop, blocking I/O).

asyncio timeouts only work when the loop gets control back. A :class:`Watchdog` arms a real-time interval
timer (``signal.setitimer(ITIMER_REAL)``); when it fires after the check's hard deadline and the loop is
*running a callback* (not idle in ``select()``) in code that is not the suite's own, the handler raises
:class:`TargetBlocked` there. The exception propagates out of the blocking call into the task that made
it, which ends; the runner reports where it was raised. The timer repeats every ``interval`` until
disarmed, so a target that blocks again during cleanup is interrupted again.

Limits (documented in the README): the watchdog needs ``SIGALRM`` and the main thread, so off the main
thread and on Windows it is disabled and a synchronously blocking target is not bounded; a target that
catches ``BaseException`` in a loop around a blocking call cannot be interrupted in-process. The previous
``SIGALRM`` handler and timer (pytest-timeout's, for instance) are restored on exit, the timer with what
was left of it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any

from .describe import describe_location

__all__ = ["TargetBlocked", "Watchdog"]

_SUITE_DIR = os.path.dirname(os.path.abspath(__file__))
_UNKNOWN = object()


class TargetBlocked(BaseException):
    """Raised by the watchdog inside code that kept the event loop blocked past the check's deadline.

    A ``BaseException``, so that a target's ``except Exception`` does not swallow it.
    """


class Watchdog:
    """A context manager that owns ``SIGALRM`` while a check runs (see the module docstring).

    :ivar available: whether the watchdog can work here (main thread, ``setitimer`` present).
    :ivar fired: where it interrupted blocking code, one ``file:line in function`` per interruption.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.available = (
            hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        )
        self.fired: list[str] = []
        self._previous_handler: Any = None
        self._previous_timer: tuple[float, float] = (0.0, 0.0)
        self._entered = 0.0
        self._armed = False

    def __enter__(self) -> Watchdog:
        if self.available:
            self._entered = time.monotonic()
            self._previous_handler = signal.getsignal(signal.SIGALRM)
            self._previous_timer = signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._on_alarm)
        return self

    def arm(self, deadline: float) -> None:
        """Fire first at ``deadline`` (a :func:`time.monotonic` value), then every ``interval``."""
        if self.available:
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 1e-3), self.interval)

    def disarm(self) -> None:
        """Stop the timer (the handler stays installed until exit)."""
        if self.available:
            self._armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.available:
            return
        self.disarm()
        handler = self._previous_handler if self._previous_handler is not None else signal.SIG_DFL
        signal.signal(signal.SIGALRM, handler)
        delay, interval = self._previous_timer
        if delay > 0:  # give the previous owner (e.g. pytest-timeout) what was left of its timer
            left = delay - (time.monotonic() - self._entered)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6), interval)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if not self._armed or not self.loop.is_running():
            return
        if getattr(self.loop, "_current_handle", _UNKNOWN) is None:
            return  # the loop is idle in select(), not blocked: its own timeouts will act
        location = _blocking_location(frame)
        if location is None:
            return  # the suite's own code is running; it reaches an await soon
        self.fired.append(location)
        raise TargetBlocked(f"blocked the event loop at {location}")


def _blocking_location(frame: FrameType | None) -> str | None:
    if frame is None:
        return "an unknown place"
    filename = os.path.abspath(frame.f_code.co_filename)
    if os.path.dirname(filename) == _SUITE_DIR or filename.startswith(_SUITE_DIR + os.sep):
        return None
    return describe_location(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
