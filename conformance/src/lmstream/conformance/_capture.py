"""Capture, rather than print, what a target makes Python and asyncio say during a check.

Inside :func:`capture`, warnings (``RuntimeWarning: coroutine ... was never awaited``, ``ResourceWarning``,
...), records of the ``asyncio`` logger (slow callbacks in debug mode), exceptions that the event loop
reports (``Task was destroyed but it is pending!``, ``Task exception was never retrieved``; the loop must
use :meth:`Sink.loop_exception` as its handler) and "unraisable" exceptions (``Exception ignored in ...``)
go to a :class:`Sink` instead of the terminal; the runner reports them with the check's result. The
previous hooks, filters and logger settings are restored on exit.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

from .describe import describe_exception, describe_location

__all__ = ["Sink", "capture"]

_LIMIT = 200


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _LIMIT else line[: _LIMIT - 3] + "..."


class Sink:
    """What was captured during one check, as one-line descriptions, in order of arrival."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, kind: str, text: str) -> None:
        """Record one line (duplicates are kept once)."""
        line = f"{kind}: {_first_line(text)}"
        if line not in self.lines:
            self.lines.append(line)

    def loop_exception(self, loop: object, context: dict[str, Any]) -> None:
        """An event loop exception handler (``loop.set_exception_handler(sink.loop_exception)``)."""
        message = str(context.get("message", "unhandled exception in the event loop"))
        exception = context.get("exception")
        subject = context.get("task") or context.get("future") or context.get("asyncgen")
        detail = f" ({describe_exception(exception)})" if isinstance(exception, BaseException) else ""
        about = f" [{_first_line(repr(subject))}]" if subject is not None else ""
        self.add("asyncio", f"{message}{detail}{about}")

    def unraisable(self, unraisable: Any) -> None:
        """A :data:`sys.unraisablehook`."""
        exc = unraisable.exc_value
        where = f" in {_first_line(repr(unraisable.object))}" if unraisable.object is not None else ""
        what = describe_exception(exc) if isinstance(exc, BaseException) else repr(exc)
        self.add("unraisable", f"{unraisable.err_msg or 'Exception ignored'}{where}: {what}")


_SLOW = "Executing %s took %.3f seconds"
"""The message of asyncio's debug-mode report of a slow callback (``BaseEventLoop._run_once``)."""
_TASK_NAME = re.compile(r"<Task \w+ name='([^']*)'")


def _describe_handle(handle: str) -> str:
    match = _TASK_NAME.search(handle)
    return f"a step of task {match.group(1)!r}" if match else f"the callback {_first_line(handle)[:100]}"


class _Handler(logging.Handler):
    def __init__(self, sink: Sink) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.msg == _SLOW and isinstance(record.args, tuple) and len(record.args) == 2:
                handle, seconds = record.args
                self.sink.add(
                    "slow callback",
                    f"{_describe_handle(str(handle))} blocked the event loop for {seconds:.3f} s",
                )
                return
            self.sink.add(f"asyncio log ({record.levelname.lower()})", record.getMessage())
        except Exception:  # pragma: no cover - a record whose message cannot be formatted
            self.sink.add("asyncio log", record.msg if isinstance(record.msg, str) else repr(record.msg))


@contextmanager
def capture(sink: Sink) -> Generator[None, None, None]:
    """Send warnings, asyncio log records and unraisable exceptions to ``sink`` while the block runs."""
    logger = logging.getLogger("asyncio")
    handler = _Handler(sink)
    propagate = logger.propagate
    previous_hook = sys.unraisablehook
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger.addHandler(handler)
        logger.propagate = False
        sys.unraisablehook = sink.unraisable
        try:
            yield
        finally:
            sys.unraisablehook = previous_hook
            logger.propagate = propagate
            logger.removeHandler(handler)
            for warning in caught:
                where = describe_location(warning.filename, warning.lineno)
                sink.add("warning", f"{warning.category.__name__}: {warning.message} (at {where})")
