"""Running code elsewhere, bounded: in a thread of its own (what a sync handler of Flask, Django or Gradio
does to reach a stream that lives on the server's event loop), and whole ``asyncio.run()`` lives with their
shutdown, collecting what the event loop and the interpreter report meanwhile.

Nothing here is a test. Threads are daemons: one that does not finish in time is reported as a failure and
left to die with the process, never waited for without a bound.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ._harness import BOUND, HarnessFailure

T = TypeVar("T")


async def in_thread(fn: Callable[[], T], *, timeout: float = BOUND, name: str = "worker") -> T:
    """Run ``fn()`` in a new thread and await what it returns or raises, for at most ``timeout`` seconds;
    the event loop goes on running meanwhile.

    :raises HarnessFailure: when ``fn()`` has not finished in time.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():
            outcome()

    def run() -> None:
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting task, whatever it is
            error = exc  # the except clause unbinds exc before the callback runs
            loop.call_soon_threadsafe(settle, lambda: done.set_exception(error))
        else:
            loop.call_soon_threadsafe(settle, lambda: done.set_result(result))

    threading.Thread(target=run, name=f"lmstream test {name}", daemon=True).start()
    finished, _ = await asyncio.wait([done], timeout=timeout)
    if not finished:
        done.cancel()
        raise HarnessFailure(f"{name}: the thread had not finished after {timeout} s")
    return done.result()


def run_thread(fn: Callable[[], T], *, timeout: float = BOUND, name: str = "worker") -> T:
    """Run ``fn()`` in a new thread, from synchronous code, and return what it returns (or raise what it
    raises) once it has finished, within ``timeout`` seconds.

    :raises HarnessFailure: when ``fn()`` has not finished in time.
    """
    box: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # re-raised in the caller's thread
            box.append((False, exc))

    thread = threading.Thread(target=run, name=f"lmstream test {name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if not box:
        raise HarnessFailure(f"{name}: the thread had not finished after {timeout} s")
    ok, value = box[0]
    if not ok:
        raise value
    result: T = value
    return result


@dataclass
class Reports:
    """What one run reported: warnings, the event loop's exception handler, unraisable exceptions."""

    warnings: list[str] = field(default_factory=list[str])
    loop: list[str] = field(default_factory=list[str])
    unraisable: list[str] = field(default_factory=list[str])

    def all(self) -> list[str]:
        return [*self.warnings, *self.loop, *self.unraisable]


def asyncio_run_reporting(
    main: Callable[[], Coroutine[Any, Any, T]],
    *,
    warnings_as: Literal["always", "error"] = "always",
    debug: bool = True,
) -> tuple[T, Reports]:
    """``asyncio.run(main(), debug=debug)`` in the calling thread, with the loop's exception handler, the
    warnings (``warnings_as`` is the filter: ``"always"`` records them, ``"error"`` raises them where they
    are issued) and unraisable exceptions recorded. Call it through :func:`run_thread` (asyncio.run needs a
    thread without a running loop, and warnings filters are process-wide: the test's thread only waits)."""
    reports = Reports()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reports.loop.append(f"{context.get('message')}: {context.get('exception')!r}")

    async def wrapped() -> T:
        asyncio.get_running_loop().set_exception_handler(handler)
        return await main()

    previous = sys.unraisablehook
    sys.unraisablehook = lambda u: reports.unraisable.append(f"{u.exc_type.__name__}: {u.exc_value}")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter(warnings_as)
            result = asyncio.run(wrapped(), debug=debug)
    finally:
        sys.unraisablehook = previous
    reports.warnings = [f"{w.category.__name__}: {w.message}" for w in seen]
    return result, reports
