"""Where the worker's main thread is stuck: a thread of the worker that watches the phase in progress.

The supervisor enforces every bound by stopping the worker process; this thread only says *where* the
target held it, so that the failure can name the place. While a phase (the target's import, or one check)
is armed, it samples the main thread every :data:`SAMPLE_INTERVAL` seconds: whether the check's event loop
is idle (waiting in ``select()``), running one callback, or not running at all, and since when that has
not changed. Once the phase passes its ``report_at`` time, every sample in which the main thread is not
idle is sent to the supervisor as a ``"blocked"`` message: the innermost frame outside the suite (with the
innermost frame of the target's own code, when that frame is in the standard library) and for how long the
loop made no progress.

Code that holds the interpreter without a break (a long computation in C, such as ``sum(range(10**9))``)
keeps this thread from running at all; the supervisor then says that the place could not be read. The
watchdog needs no signal and works in any thread and on any platform.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Final

from .describe import describe_location

__all__ = ["SAMPLE_INTERVAL", "Watchdog", "where"]

SAMPLE_INTERVAL: Final = 0.05
"""Seconds between two samples of the main thread."""

_SUITE_DIR: Final = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB_DIR: Final = os.path.dirname(os.path.abspath(os.__file__)) + os.sep


@dataclass
class _Phase:
    index: int
    report_at: float
    loop: asyncio.AbstractEventLoop | None = None
    state: tuple[object, ...] = ()
    since: float = 0.0


class Watchdog:
    """Samples the thread that created it (the worker's main thread); see the module docstring.

    :param send: how a report reaches the supervisor (``Sender.send``).
    """

    def __init__(self, send: Callable[[Mapping[str, object]], object]) -> None:
        self._send = send
        self._main = threading.get_ident()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._phase: _Phase | None = None
        self._parent = os.getppid() if hasattr(os, "getppid") else None
        self._thread = threading.Thread(target=self._run, name="lmstream worker watchdog", daemon=True)
        self._thread.start()

    def arm(self, index: int, report_at: float) -> None:
        """Watch a phase: check ``index`` (-1 for the target's import), reporting from ``report_at`` on."""
        with self._lock:
            self._phase = _Phase(index, report_at, since=time.monotonic())
        self._wake.set()

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the armed check runs in (the runner's ``on_loop`` hook)."""
        with self._lock:
            if self._phase is not None:
                self._phase.loop = loop

    def disarm(self) -> None:
        """Stop watching (until the next :meth:`arm`)."""
        with self._lock:
            self._phase = None

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(SAMPLE_INTERVAL)
            with self._lock:
                phase = self._phase
                if phase is None:
                    self._wake.clear()
                    continue
                report = self._sample(phase)
            if report is not None:
                self._send(report)
            if self._parent is not None and os.getppid() != self._parent:
                os._exit(1)  # the supervisor is gone (killed): nobody is left to stop this worker

    def _sample(self, phase: _Phase) -> dict[str, object] | None:
        now = time.monotonic()
        loop = phase.loop
        if loop is not None and loop.is_running():
            handle = getattr(loop, "_current_handle", None)  # set by asyncio in debug mode
            state: tuple[object, ...] = ("idle",) if handle is None else ("callback", id(handle))
        else:
            state = ("outside",)
        if state != phase.state:
            phase.state, phase.since = state, now
        if now < phase.report_at or state[0] == "idle":
            return None
        frame = sys._current_frames().get(self._main)  # pyright: ignore[reportPrivateUsage] - documented in sys
        return {
            "t": "blocked",
            "i": phase.index,
            "where": where(frame),
            "for": round(now - phase.since, 3),
            "state": state[0],
        }


def where(frame: FrameType | None) -> str:
    """The innermost frame outside the suite, ``file:line in function``, plus ``(called from ...)`` naming
    the innermost frame that is neither the suite's nor the standard library's when that one differs."""
    outside: FrameType | None = None
    own: FrameType | None = None
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_SUITE_DIR):
            outside = outside or frame
            if own is None and not _in_stdlib(filename):
                own = frame
        if outside is not None and own is not None:
            break
        frame = frame.f_back
    if outside is None:
        return "the suite's own code"
    text = _describe(outside)
    if own is not None and own is not outside:
        text += f" (called from {_describe(own)})"
    return text


def _in_stdlib(filename: str) -> bool:
    if not filename.startswith(_STDLIB_DIR):
        return filename.startswith("<frozen")
    return "site-packages" not in filename and "dist-packages" not in filename


def _describe(frame: FrameType) -> str:
    return describe_location(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
