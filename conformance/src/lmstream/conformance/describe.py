"""Short, one-line descriptions of what a target did, for failure messages.

Items are described with :func:`lmstream.spec.describe_item` (type and truncated repr); exceptions with
their type, message and the frame that raised them; a list of items is truncated after a few.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence

from lmstream.spec import describe_item

__all__ = ["describe_exception", "describe_items", "describe_location", "script", "seconds"]

_ONE_LINE_LIMIT = 160
_SUITE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _one_line(text: str, limit: int = _ONE_LINE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_path(filename: str) -> str:
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        relative = filename
    if not relative.startswith(".."):
        return relative
    parts = filename.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


def describe_location(filename: str, lineno: int | None, function: str | None = None) -> str:
    """``path/to/file.py:12 in name`` (``in name`` only when given), the path relative to the current
    directory when it is below it, else its last two parts."""
    return f"{_short_path(filename)}:{lineno}" + (f" in {function}" if function else "")


def describe_exception(exc: BaseException) -> str:
    """``ValueError('boom') raised at engine.py:12 in stream``: type, message and the raising frame.

    The frame is the innermost one of the traceback, where the exception was raised. Exceptions that were
    never raised (so have no traceback) are described without a place.
    """
    try:
        text = repr(exc)
    except Exception as repr_error:  # a broken __repr__ must not hide what happened
        text = f"{type(exc).__name__}(<repr raised {type(repr_error).__name__}>)"
    text = _one_line(text)
    frames: list[traceback.FrameSummary] = list(traceback.extract_tb(exc.__traceback__))
    if not frames:
        return text
    last = frames[-1]
    where = describe_location(last.filename, last.lineno, last.name)
    if os.path.abspath(last.filename).startswith(_SUITE_DIR):
        return f"{text} raised by the call the suite made at {where}"
    return f"{text} raised at {where}"


def describe_items(items: Sequence[object], *, limit: int = 6) -> str:
    """The first ``limit`` items, each as :func:`lmstream.spec.describe_item`, then ``(+N more)``."""
    if not items:
        return "no items"
    shown = ", ".join(describe_item(item, limit=40) for item in items[:limit])
    more = len(items) - limit
    return f"{shown}, (+{more} more)" if more > 0 else shown


def seconds(value: float) -> str:
    """A duration for humans: ``2.0 s``, ``0.25 s``, ``0.003 s``."""
    if value >= 1:
        return f"{value:.1f} s"
    if value >= 0.01:
        return f"{value:.2f} s"
    return f"{value:.3f} s"


def script(imports: Sequence[str], body: Sequence[str]) -> str:
    """A paste-able reproduction: ``import asyncio``, ``imports`` (deduplicated), ``async def main()`` holding
    ``body`` (one statement per line, indented as given), and ``asyncio.run(main())``."""
    head = list(dict.fromkeys(["import asyncio", *imports]))
    lines = [*head, "", "", "async def main() -> None:"]
    lines += [f"    {line}" if line else "" for line in body] or ["    pass"]
    lines += ["", "", "asyncio.run(main())"]
    return "\n".join(lines)
