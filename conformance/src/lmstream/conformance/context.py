"""The per-check context: the time budget, bounded waits, tracked tasks and notes.

Every check receives a :class:`CheckContext` as its second argument. The check has ``timeout`` seconds
(its *budget*, counted from its start); every wait on the target goes through :meth:`CheckContext.bounded`
(or :meth:`CheckContext.wait_tasks`), which gives up when the budget runs out and raises
:class:`CheckTimeout`, a :class:`~lmstream.conformance.model.CheckFailure` saying what it waited for and
how long. The runner (:mod:`lmstream.conformance.runner`) is the backstop for a target that ignores even
that (see its docstring for the bound).

A check runs as one task of its own event loop. :meth:`CheckContext.bounded` interrupts a wait by
cancelling that task (as :func:`asyncio.timeout` does), so the awaited code sees an ordinary
``CancelledError`` in the task that called it: an engine stream is consumed in one task, as a real
consumer would. Never hand :meth:`CheckContext.bounded` a task or future you want to keep: cancelling the
wait cancels it; wait for tasks with :meth:`CheckContext.wait_tasks`.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import sys
import weakref
from collections.abc import Awaitable, Coroutine, Iterable, Sequence
from types import AsyncGeneratorType, CodeType, FrameType
from typing import Any, Final, TypeVar

from lmstream.spec import describe_item

from ._origins import Origins
from .describe import describe_exception, seconds
from .model import CheckFailure

__all__ = ["CheckContext", "CheckTimeout"]

T = TypeVar("T")

_TIMEOUT_MESSAGE: Final = "lmstream.conformance: bounded wait timed out"
_SPEC: Final = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class CheckTimeout(CheckFailure):
    """A bounded wait ran out of time: ``observed`` says what was awaited and for how long.

    :param what: what was awaited, e.g. ``"item 3"`` or ``"aclose() to return"``.
    :param waited: how long, in seconds.
    :param detail: what else was seen (e.g. the target swallowed the cancellation), or ``""``.
    """

    def __init__(self, what: str, waited: float, detail: str = "") -> None:
        self.what = what
        self.waited = waited
        self.detail = detail
        observed = f"waited {seconds(waited)} for {what}" + (f"; {detail}" if detail else "")
        super().__init__(observed)


class CheckContext:
    """What a check knows of its run: settings, the clock, and helpers that keep every wait bounded.

    Created by the runner, one per check run; a check never builds one.

    :ivar timeout: the check's budget in seconds.
    :ivar grace: how long the runner waits for the target to react to a cancellation, in seconds.
    :ivar messages: the prompt given to an engine's ``stream()`` (a fresh ``list`` each call).
    :ivar target_name: how the target was named (``"pkg.mod:Engine"``), for reproduction snippets.
    :ivar messages_name: how the prompt was named (``"pkg.mod:PROMPT"``), when it was given by name.
    :ivar notes: observations that do not decide the outcome; they are appended to the result's message.
    :ivar origins: tells the target's own code from libraries' (:mod:`lmstream.conformance._origins`); the
        engine checks add the homes of what they open (the engine, its ``stream()``, the stream).
    """

    def __init__(
        self,
        *,
        timeout: float,
        grace: float,
        messages: Sequence[object],
        target_name: str | None = None,
        messages_name: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.grace = grace
        self.messages: tuple[object, ...] = tuple(messages)
        self.target_name = target_name
        self.messages_name = messages_name
        self.notes: list[str] = []
        self.origins = Origins(_target_modules(target_name))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._started = 0.0
        self._waiting_for: str | None = None
        self._spawned: set[asyncio.Task[Any]] = set()
        self._asyncgens: list[weakref.ref[AsyncGeneratorType[Any, Any]]] = []
        self._dropped: list[str] = []
        self._iterated_by: dict[int, tuple[weakref.ref[AsyncGeneratorType[Any, Any]], CodeType]] = {}

    # ------------------------------------------------------------------ runner side
    def _bind(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], started: float) -> None:
        """Called by the runner: the loop, the check's task and its start (``loop.time()``)."""
        self._loop = loop
        self._task = task
        self._started = started

    def _release(self) -> None:
        """Called by the runner after the loop is closed: drop the references to its tasks."""
        self._task = None
        self._loop = None
        self._spawned.clear()

    def _record_asyncgen(self, agen: AsyncGeneratorType[Any, Any]) -> None:
        """Called by the runner's ``firstiter`` hook for every async generator started in the loop."""
        self._asyncgens.append(weakref.ref(agen))
        # sys._getframe, not inspect.currentframe(): a local holding this very frame would make a cycle that
        # keeps `agen` alive until the garbage collector runs, changing when the target's generators close.
        frame: FrameType | None = sys._getframe(1)  # pyright: ignore[reportPrivateUsage]
        while frame is not None and _is_hook_code(frame.f_code.co_filename):
            frame = frame.f_back
        if frame is not None:
            self._iterated_by[id(agen)] = (weakref.ref(agen), frame.f_code)

    def iterated_by(self, agen: AsyncGeneratorType[Any, Any]) -> CodeType | None:
        """The code that first iterated ``agen`` (called its first ``__anext__()``), when recorded."""
        entry = self._iterated_by.get(id(agen))
        return entry[1] if entry is not None and entry[0]() is agen else None

    def _record_dropped(self, agen: AsyncGeneratorType[Any, Any]) -> None:
        """Called by the runner's ``finalizer`` hook: an async generator was garbage-collected unfinished."""
        self._dropped.append(asyncgen_name(agen))

    @property
    def spawned(self) -> frozenset[asyncio.Task[Any]]:
        """The tasks started with :meth:`spawn` (the runner cancels any still running at the end)."""
        return frozenset(self._spawned)

    @property
    def waiting_for(self) -> str | None:
        """What the check is waiting for right now (set by :meth:`bounded`), for timeout messages."""
        return self._waiting_for

    # ------------------------------------------------------------------ the clock
    def _now(self) -> float:
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        return loop.time()

    def elapsed(self) -> float:
        """Seconds since the check started."""
        return self._now() - self._started

    def remaining(self) -> float:
        """Seconds left of the check's budget (never negative)."""
        return max(0.0, self.timeout - self.elapsed())

    # ------------------------------------------------------------------ bounded waits
    async def bounded(self, awaitable: Awaitable[T], *, what: str, timeout: float | None = None) -> T:
        """Await ``awaitable`` for at most ``timeout`` seconds (default and cap: the budget left).

        :raises CheckTimeout: when time runs out; the awaited code was cancelled (and, if it swallowed the
            cancellation and returned or raised something else instead, ``detail`` says so).
        :raises: whatever ``awaitable`` raises, unchanged.
        """
        limit = self.remaining() if timeout is None else min(timeout, self.remaining())
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - checks always run in a task
            raise RuntimeError("CheckContext.bounded() must be awaited from a task")
        loop = asyncio.get_running_loop()
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            task.cancel(_TIMEOUT_MESSAGE)

        previous = self._waiting_for
        self._waiting_for = what
        handle = loop.call_later(limit, expire)
        started = loop.time()
        try:
            result = await awaitable
        except GeneratorExit:  # the coroutine is being closed (abandoned, then collected): let it close
            raise
        except asyncio.CancelledError:
            if not fired:
                raise
            _uncancel(task)
            raise CheckTimeout(what, loop.time() - started) from None
        except BaseException as exc:
            if not fired:
                raise
            _uncancel(task)
            detail = f"when cancelled it raised {describe_exception(exc)} instead of CancelledError"
            raise CheckTimeout(what, loop.time() - started, detail) from exc
        finally:
            handle.cancel()
            self._waiting_for = previous
        if fired:  # the cancellation was delivered and swallowed: the awaited code went on and returned
            _uncancel(task)
            detail = f"it swallowed the cancellation and went on to return {describe_item(result)}"
            raise CheckTimeout(what, loop.time() - started, detail)
        return result

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Start ``coro`` as a task of the check's loop (a scripted consumer, say).

        The runner cancels it if it is still running when the check ends, and reports it only if it ignores
        that cancellation.
        """
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._spawned.add(task)
        return task

    async def wait_tasks(self, tasks: Iterable[asyncio.Task[Any]], *, timeout: float | None = None) -> bool:
        """Wait until every task is done, for at most ``timeout`` (default and cap: the budget left).

        Never cancels the tasks. Returns whether all of them are done.
        """
        pending = {t for t in tasks if not t.done()}
        if not pending:
            return True
        limit = self.remaining() if timeout is None else min(timeout, self.remaining())
        _, still = await asyncio.wait(pending, timeout=limit)
        return not still

    async def settle(self, turns: int = 3) -> None:
        """Let the event loop run ``turns`` iterations (callbacks scheduled now get to run)."""
        for _ in range(turns):
            await asyncio.sleep(0)

    async def close_quietly(self, iterator: object, *, what: str = "the stream") -> bool:
        """Best-effort ``await iterator.aclose()`` for cleanup that the check does not judge.

        The close runs in a task of its own (see :meth:`spawn`), awaited for at most the grace, so that a
        close that hangs or swallows cancellation cannot hold the check up; problems become notes. Returns
        whether the close completed without error.
        """
        aclose = getattr(iterator, "aclose", None)
        if not callable(aclose):
            return False

        async def close() -> None:
            result = aclose()
            if inspect.isawaitable(result):
                await result

        task = self.spawn(close(), name=f"lmstream cleanup: aclose() of {what}")
        if not await self.wait_tasks([task], timeout=self.grace):
            waited = seconds(self.grace)
            self.note(f"closing {what} (cleanup, not judged here): aclose() had not returned after {waited}")
            return False
        error = task.exception()
        if error is not None:
            self.note(f"closing {what} (cleanup, not judged here) raised {describe_exception(error)}")
            return False
        return True

    # ------------------------------------------------------------------ async generators
    def asyncgen_mark(self) -> int:
        """A mark for :meth:`asyncgens_since`: the number of async generators started so far."""
        return len(self._asyncgens)

    def asyncgens_since(self, mark: int) -> list[AsyncGeneratorType[Any, Any]]:
        """The async generators first iterated in this check's loop after ``mark`` and still alive."""
        alive = (ref() for ref in self._asyncgens[mark:])
        return [agen for agen in alive if agen is not None]

    @property
    def dropped_asyncgens(self) -> tuple[str, ...]:
        """Async generators of this loop that were garbage-collected while suspended (not closed by their
        owner; the event loop closes them later), as ``name() (suspended at line N)``, in order."""
        return tuple(self._dropped)

    # ------------------------------------------------------------------ reproduction snippets
    def target_reference(self) -> tuple[list[str], str]:
        """How a reproduction snippet names the target: its import lines and an expression.

        ``"pkg.mod:Engine"`` gives ``(["from pkg.mod import Engine"], "Engine")``; a target known only by a
        repr gives ``([], "TARGET  # <repr>")``, for the author to fill in.
        """
        name = self.target_name
        if name and _SPEC.match(name):
            module, _, attribute = name.partition(":")
            return [f"from {module} import {attribute.split('.', 1)[0]}"], attribute
        return [], "TARGET" + (f"  # {name}" if name else "")

    # ------------------------------------------------------------------ notes
    def note(self, text: str) -> None:
        """Record an observation that does not decide the outcome (shown with the result)."""
        self.notes.append(" ".join(text.split()))


_HOOK_FILES: Final = frozenset(
    os.path.normcase(os.path.join(os.path.dirname(os.path.abspath(__file__)), name))
    for name in ("_isolation.py", "_closing.py", "context.py")
)


def _is_hook_code(filename: str) -> bool:
    """Whether ``filename`` is one of the suite's asyncgen-hook modules (skipped to find who iterated)."""
    return os.path.normcase(os.path.abspath(filename)) in _HOOK_FILES


def _target_modules(target_name: str | None) -> list[str]:
    if target_name and _SPEC.match(target_name):
        return [target_name.partition(":")[0]]
    return []


def asyncgen_name(agen: AsyncGeneratorType[Any, Any]) -> str:
    """``qualname()``, plus ``(suspended at line N)`` while it is suspended.

    The generator's own ``__qualname__``, not its code's ``co_qualname``: that one is new in Python 3.11.
    """
    frame = agen.ag_frame
    where = f" (suspended at line {frame.f_lineno})" if frame is not None else ""
    return f"{agen.__qualname__}(){where}"


def _uncancel(task: asyncio.Task[Any]) -> None:
    """Undo our own ``cancel()`` in the count that :func:`asyncio.timeout` and ``TaskGroup`` read (3.11+)."""
    if sys.version_info >= (3, 11):
        task.uncancel()
