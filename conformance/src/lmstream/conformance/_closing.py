"""ES-5 judged from outside: what a stream left open when its ``aclose()`` returned.

One implementation for the engine check and the live validator (:func:`lmstream.conformance.validate`).
A :class:`CloseWatch` watches one stream while it is *attributed* (:meth:`CloseWatch.attributed`: a
context variable, so the task iterating the stream, the tasks it creates and its ``asyncio.to_thread``
calls are watched, and nothing else) and then judges, at the moment ``aclose()`` returned:

(b) **the async generators of the target's own code** (:mod:`lmstream.conformance._origins` says which code
    that is) first iterated while attributed: each must be finished or closed. One still suspended, or
    dropped unclosed (garbage-collected while suspended, so that only the event loop closes it, later), is
    a failure. Async generators of other libraries are not judged: httpx, httpcore and the SDKs leave their
    internal chains suspended after their response is closed, which holds nothing;
(c) **the network responses** it opened (:mod:`lmstream.conformance._transports`: httpx and aiohttp, where
    loaded): each must be closed or released.

Rule (a), that the iterator yields nothing more once ``aclose()`` returned, is for the caller to probe
(one more ``__anext__()``), since it must be judged after this snapshot.

Async generators are seen through :func:`sys.set_asyncgen_hooks`: while any watch is attributed in a
thread, a dispatcher wraps that thread's hooks (the event loop's), records first iterations and drops for
the watches concerned, and always calls the wrapped hooks, so the loop behaves as before. It is
reference-counted per thread and restored when the last attribution there ends (if nothing replaced it
meanwhile; otherwise it stays, as a pass-through).
"""

from __future__ import annotations

import contextvars
import sys
import threading
import weakref
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import AsyncGeneratorType, CodeType
from typing import Any

from ._origins import Origins, Owner
from ._transports import OpenedResponse, ResponseLog
from .context import asyncgen_name

__all__ = ["CloseWatch", "Closing"]

_ATTRIBUTED: contextvars.ContextVar[tuple[CloseWatch, ...]] = contextvars.ContextVar(
    "lmstream_close_watches", default=()
)
_RECORDING: weakref.WeakSet[CloseWatch] = weakref.WeakSet()
_LOCAL = threading.local()

_CLOSE_INNER = (
    "close an inner async generator with the stream that iterates it: "
    "`async with contextlib.aclosing(inner) as items: async for item in items: ...`"
)


@dataclass
class _Started:
    ref: weakref.ref[AsyncGeneratorType[Any, Any]]
    code: CodeType
    by: CodeType | None
    """The code that first iterated it (the frame that called its first ``__anext__()``)."""
    dropped: str | None = None


@dataclass
class Closing:
    """What a watched stream left open when ``aclose()`` returned (see the module docstring).

    :ivar suspended: async generators of the target's own code still suspended, by name.
    :ivar dropped: those dropped unclosed (left to the garbage collector and the event loop), by name.
    :ivar open_responses: responses not closed. :ivar responses: every response observed.
    :ivar observed: the transport libraries observed (``("httpx",)``).
    :ivar own: how many async generators of the target's own code the stream iterated.
    :ivar libraries_left: libraries whose async generators were left suspended or dropped.
    """

    suspended: list[str] = field(default_factory=list[str])
    dropped: list[str] = field(default_factory=list[str])
    open_responses: list[OpenedResponse] = field(default_factory=list[OpenedResponse])
    responses: list[OpenedResponse] = field(default_factory=list[OpenedResponse])
    observed: tuple[str, ...] = ()
    own: int = 0
    libraries_left: list[str] = field(default_factory=list[str])

    @property
    def ok(self) -> bool:
        return not (self.suspended or self.dropped or self.open_responses)

    def problem(self) -> str:
        """One paragraph: what was left open and how to fix each (``""`` when :attr:`ok`)."""
        parts: list[str] = []
        if self.open_responses:
            described = "; ".join(r.describe() for r in self.open_responses)
            parts.append(
                f"(c) {len(self.open_responses)} network response(s) the stream opened were still open when "
                f"aclose() returned: {described}"
            )
        if self.suspended:
            parts.append(
                "(b) async generator(s) of the engine's own code were still suspended after aclose() "
                f"returned: {', '.join(self.suspended)}"
            )
        if self.dropped:
            parts.append(
                "(b) async generator(s) of the engine's own code were dropped unclosed during aclose(), "
                f"left to the garbage collector and the event loop to close later: {', '.join(self.dropped)}"
            )
        if not parts:
            return ""
        return f"{'; '.join(parts)}. Fix: {'; '.join(self.advice())}"

    def advice(self) -> list[str]:
        """One fix per kind of leak found, fitted to how it was opened."""
        fixes: list[str] = []
        for response in self.open_responses:
            fix = _advice(response)
            if fix not in fixes:
                fixes.append(fix)
        if self.suspended or self.dropped:
            fixes.append(_CLOSE_INNER)
        return fixes

    def observation(self) -> str:
        """One line saying what ES-5 was judged on (for a stream that kept it)."""
        own = f"(b) {self.own} async generator(s) of the engine's own code, closed"
        if self.responses:
            libraries = " and ".join(sorted({r.library for r in self.responses}))
            seen = f"(c) {len(self.responses)} {libraries} response(s), closed when aclose() returned"
        elif self.observed:
            seen = (
                f"(c) no response was opened through {' or '.join(self.observed)}, the transports "
                "observed (a stream on another transport is judged on (a) and (b))"
            )
        else:
            seen = "(c) not observed: neither httpx nor aiohttp is loaded, so (a) and (b) decided"
        note = f"ES-5 judged on (a) nothing more after aclose(); {own}; {seen}"
        if self.libraries_left and not self.responses:
            note += (
                f"; async generators of {', '.join(self.libraries_left)} were left suspended, and no "
                "observed response tells whether what they hold was released"
            )
        return note


def _advice(response: OpenedResponse) -> str:
    via = response.via
    if response.library == "aiohttp":
        return "`async with session.post(...) as response:` (or `response.release()` in a `finally`)"
    if response.sync:
        what = "the SDK's stream" if via not in (None, "httpx") else "the response"
        return (
            f"close {what} in a `finally` when the stream is closed, in the worker thread: "
            "`await asyncio.to_thread(stream.close)`"
        )
    if via == "openai":
        return (
            "`async with await client.chat.completions.create(..., stream=True) as chunks:` "
            "(or `async with client.chat.completions.stream(...)`), so that closing the stream closes it"
        )
    if via == "anthropic":
        return "`async with client.messages.stream(...) as stream:`, so that closing the stream closes it"
    if via == "httpx":
        return (
            "`async with client.stream(method, url, ...) as response:` "
            "(or `await response.aclose()` in a `finally`)"
        )
    if via:
        return (
            f"use {via}'s stream as an async context manager (`async with ...`), or close it in a `finally`"
        )
    return "close the response when the stream is closed: `async with` it, or close it in a `finally`"


class CloseWatch:
    """Watches one stream for ES-5 (see the module docstring).

    :param origins: tells the target's own code from libraries'.
    :param catch_all: also take responses opened where no watch is attributed (a conformance check).
    """

    def __init__(self, origins: Origins, *, catch_all: bool = False) -> None:
        self.origins = origins
        self.log = ResponseLog(origins, catch_all=catch_all)
        self._started: list[_Started] = []
        self._by_id: dict[int, _Started] = {}
        self._recording = False

    # ------------------------------------------------------------------ the window
    def start(self) -> None:
        """Begin observing (transports patched, drops recorded); :meth:`stop` ends it. Idempotent."""
        if not self._recording:
            self._recording = True
            _RECORDING.add(self)
            self.log.start()

    def stop(self) -> None:
        if self._recording:
            self._recording = False
            _RECORDING.discard(self)
            self.log.stop()

    @contextmanager
    def observing(self) -> Generator[CloseWatch, None, None]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    @contextmanager
    def attributed(self) -> Generator[None, None, None]:
        """Watch what the current context (and what it starts) does, for the ``with`` block."""
        token = _ATTRIBUTED.set((*_ATTRIBUTED.get(), self))
        _hooks_in()
        try:
            with self.log.attributed():
                yield
        finally:
            _hooks_out()
            _ATTRIBUTED.reset(token)

    # ------------------------------------------------------------------ the judgement
    def verdict(self) -> Closing:
        """What is left open now (call it as soon as ``aclose()`` returned)."""
        closing = Closing(observed=self.log.observed, responses=list(self.log.responses))
        closing.open_responses = self.log.open_responses()
        libraries: list[str] = []
        for started in self._started:
            origin = self.origins.of_code(started.code)
            agen = started.ref()
            left = started.dropped is not None or (agen is not None and agen.ag_frame is not None)
            if origin.is_target and self._iterated_by_the_stream(started):
                closing.own += 1
                if started.dropped is not None:
                    closing.dropped.append(started.dropped)
                elif agen is not None and agen.ag_frame is not None and not agen.ag_running:
                    closing.suspended.append(asyncgen_name(agen))
            elif left and origin.label() not in libraries:
                libraries.append(origin.label())
        closing.libraries_left = libraries
        return closing

    def _iterated_by_the_stream(self, started: _Started) -> bool:
        """Whether the stream's own chain iterated it: the engine's code (or the suite's, for the stream
        itself), not a library iterating it on its own behalf (a transport body given to httpx, say)."""
        if started.by is None:
            return True
        by = self.origins.of_code(started.by)
        return by.is_target or by.owner is Owner.LMSTREAM

    def forget(self) -> None:
        """Drop every reference to what was observed (the responses, the generators' records)."""
        self.log.responses.clear()
        self._started.clear()
        self._by_id.clear()

    # ------------------------------------------------------------------ hooks' side
    def _first(self, agen: AsyncGeneratorType[Any, Any], by: CodeType | None) -> None:
        if self._recording:
            started = _Started(weakref.ref(agen), agen.ag_code, by)
            self._started.append(started)
            self._by_id[id(agen)] = started

    def _dropped(self, agen: AsyncGeneratorType[Any, Any]) -> None:
        started = self._by_id.get(id(agen))
        # Weak references are cleared before a finalizer runs, so a dead one with the same id and code is it.
        if started is not None and started.code is agen.ag_code and started.ref() is None:
            started.dropped = asyncgen_name(agen)


class _Dispatcher:
    """The asyncgen hooks while watches are attributed in a thread: record, then call the wrapped hooks."""

    def __init__(self) -> None:
        hooks = sys.get_asyncgen_hooks()
        self.previous = hooks
        self.wrapped_firstiter: Callable[[Any], object] | None = hooks.firstiter
        self.wrapped_finalizer: Callable[[Any], object] | None = hooks.finalizer

    def firstiter(self, agen: Any) -> None:
        watches = _ATTRIBUTED.get()
        if watches:
            # Whose `async for` or anext() started it. (Not inspect.currentframe(): a local holding this frame
            # would make a cycle keeping `agen` alive until the garbage collector runs.)
            by = sys._getframe(1).f_code  # pyright: ignore[reportPrivateUsage]
            for watch in watches:
                watch._first(agen, by)  # pyright: ignore[reportPrivateUsage] - same module
        if self.wrapped_firstiter is not None:
            self.wrapped_firstiter(agen)

    def finalizer(self, agen: Any) -> None:
        for watch in list(_RECORDING):
            watch._dropped(agen)  # pyright: ignore[reportPrivateUsage] - same module
        if self.wrapped_finalizer is not None:
            self.wrapped_finalizer(agen)

    def install(self) -> None:
        # With no finalizer to call, the interpreter closes a dropped generator itself: keep that.
        finalizer = self.finalizer if self.wrapped_finalizer is not None else None
        sys.set_asyncgen_hooks(firstiter=self.firstiter, finalizer=finalizer)

    def is_current(self) -> bool:
        return getattr(sys.get_asyncgen_hooks().firstiter, "__self__", None) is self


def _hooks_in() -> None:
    dispatcher: _Dispatcher | None = getattr(_LOCAL, "dispatcher", None)
    if dispatcher is None or not dispatcher.is_current():
        dispatcher = _Dispatcher()
        dispatcher.install()
        _LOCAL.dispatcher = dispatcher
        _LOCAL.count = 0
    _LOCAL.count += 1


def _hooks_out() -> None:
    count: int = getattr(_LOCAL, "count", 1) - 1
    _LOCAL.count = max(0, count)
    dispatcher: _Dispatcher | None = getattr(_LOCAL, "dispatcher", None)
    if count <= 0 and dispatcher is not None:
        if dispatcher.is_current():
            previous = dispatcher.previous
            sys.set_asyncgen_hooks(firstiter=previous.firstiter, finalizer=previous.finalizer)
        _LOCAL.dispatcher = None
