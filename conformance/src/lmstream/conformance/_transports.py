"""Observe the network responses a stream opens, and whether each is closed: ES-5's rule (c).

**What is observed, exactly.** While at least one :class:`ResponseLog` is observing:

* **httpx**: every :class:`httpx.Response` returned by ``httpx.AsyncClient.send`` or ``httpx.Client.send``,
  in any thread. Every request an httpx client makes goes through ``send`` (``request()``, ``stream()``,
  ``get()``/``post()``..., and the SDKs built on httpx: openai, anthropic, groq, mistral, ...), whatever
  its transport (``httpx.MockTransport`` included). A response is *closed* when ``Response.is_closed`` is
  true: ``aclose()``/``close()`` was called (directly, by ``async with``, or by an SDK's stream
  ``close()``), or its body was read to the end (httpx closes it then). A closed response has given its
  connection back to the pool, or closed it.
* **aiohttp**: every ``aiohttp.ClientResponse`` returned by ``ClientSession._request`` (behind
  ``request()``, ``get()``, ``post()``... and ``async with session.get(...)``). It is *released* when
  ``ClientResponse.closed`` is true: ``release()``, ``close()``, the end of ``async with``, or the body
  read to its end.

A library is observed only if it is already imported when the observation starts (nothing is imported
here; no new dependency); :attr:`ResponseLog.observed` names those that were. Each response is recorded
with its method, URL, library, the thread that opened it, and where: the innermost frame of the target's
own code on the stack when it was opened (see :mod:`lmstream.conformance._origins`), with the library that
frame called (``openai``, or the transport itself).

**Attribution.** A response belongs to the logs *attributed* in the context that opened it
(:meth:`ResponseLog.attributed`: a context variable, so the task that iterates a stream, the tasks it
creates and its ``asyncio.to_thread`` calls all carry it). A response opened where no log is attributed
(a thread started by hand, ``loop.run_in_executor``, which does not copy the context) goes to the logs
observing as *catch-all*: a conformance check, which is the only thing running while it runs.

**Without changing what the target does.** The entry point is replaced, on its class, by a wrapper that
calls the original with the same arguments and returns its result (or lets its exception through)
unchanged; recording is a list append. Installation is reference-counted under a lock: the first
observation installs, the last one restores the original. If something else replaced the entry point in
the meantime, the wrapper is left in place and only stops recording (it is a pass-through then).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Final

from ._origins import Origins
from .describe import describe_location

__all__ = ["OpenedResponse", "ResponseLog"]

_ATTRIBUTED: contextvars.ContextVar[tuple[ResponseLog, ...]] = contextvars.ContextVar(
    "lmstream_response_logs", default=()
)
# Reentrant: a stream abandoned to the garbage collector stops its log from a finalizer, which can run
# in this very thread while the lock is held (a collection triggered inside start() or stop()).
_LOCK = threading.RLock()
_CATCH_ALL: list[ResponseLog] = []


class _Count:
    observers = 0


_STATE = _Count()
_INSTALLED: list[tuple[type, str, object, object]] = []
"""(class, attribute, original, wrapper) for each entry point currently replaced."""


@dataclass
class OpenedResponse:
    """One response a stream opened.

    :ivar library: the transport library, ``"httpx"`` or ``"aiohttp"``.
    :ivar method: the HTTP method. :ivar url: the URL.
    :ivar sync: whether it was opened by a synchronous client (``httpx.Client``).
    :ivar where: ``file:line in function`` of the target's own frame that opened it, or ``None``.
    :ivar via: the library that frame called to open it (``openai``; the transport itself for plain
        httpx or aiohttp), or ``None`` when no frame of the target's code was on the stack.
    :ivar thread: the name of the thread that opened it.
    """

    library: str
    method: str
    url: str
    sync: bool
    where: str | None
    via: str | None
    thread: str
    response: object = field(repr=False)

    def is_closed(self) -> bool:
        """Whether the response is closed (httpx) or released (aiohttp) now."""
        flag = "is_closed" if self.library == "httpx" else "closed"
        return bool(getattr(self.response, flag, True))

    def describe(self) -> str:
        """``the httpx response to POST https://... opened at file:line in f (through openai)``."""
        client = f" (a sync client, in thread {self.thread!r})" if self.sync else ""
        where = f", opened at {self.where}" if self.where else ""
        via = f" through {self.via}" if self.via and self.via != self.library else ""
        return f"the {self.library} response to {self.method} {self.url}{client}{where}{via}"


class ResponseLog:
    """The responses opened while it observes (see the module docstring for what and how).

    :param origins: tells the target's own frames from others, to say where a response was opened.
    :param catch_all: also take the responses opened where no log is attributed (for a check).
    """

    def __init__(self, origins: Origins, *, catch_all: bool = False) -> None:
        self.origins = origins
        self.catch_all = catch_all
        self.responses: list[OpenedResponse] = []
        self.observed: tuple[str, ...] = ()
        self._recording = False

    @contextmanager
    def observing(self) -> Generator[ResponseLog, None, None]:
        """Install the observation for the duration of the ``with`` block."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def start(self) -> None:
        """Begin observing (see :meth:`observing`); :meth:`stop` must follow, exactly once."""
        with _LOCK:
            if _STATE.observers == 0:
                _install()
            _STATE.observers += 1
            self.observed = tuple(sorted({cls.__module__.split(".")[0] for cls, *_ in _INSTALLED}))
            if self.catch_all:
                _CATCH_ALL.append(self)
            self._recording = True

    def stop(self) -> None:
        with _LOCK:
            if not self._recording:
                return
            self._recording = False
            if self in _CATCH_ALL:
                _CATCH_ALL.remove(self)
            _STATE.observers -= 1
            if _STATE.observers == 0:
                _uninstall()

    @contextmanager
    def attributed(self) -> Generator[None, None, None]:
        """Attribute to this log the responses opened in the current context (and those copied from it)."""
        token = _ATTRIBUTED.set((*_ATTRIBUTED.get(), self))
        try:
            yield
        finally:
            _ATTRIBUTED.reset(token)

    def open_responses(self) -> list[OpenedResponse]:
        """The recorded responses that are not closed (released) now."""
        return [r for r in self.responses if not r.is_closed()]

    def _record(self, library: str, response: object, sync: bool, frame: FrameType | None) -> None:
        if not self._recording:
            return
        request = getattr(response, "request", None)
        if library == "httpx":
            method, url = getattr(request, "method", "?"), str(getattr(request, "url", "?"))
        else:
            method, url = str(getattr(response, "method", "?")), str(getattr(response, "url", "?"))
        where, via = self._opener(frame, library)
        self.responses.append(
            OpenedResponse(library, method, url, sync, where, via, threading.current_thread().name, response)
        )

    def _opener(self, frame: FrameType | None, library: str) -> tuple[str | None, str | None]:
        called: FrameType | None = None
        while frame is not None:
            if self.origins.is_target(frame.f_code):
                via = self.origins.of_code(called.f_code).label() if called is not None else library
                code = frame.f_code
                return describe_location(code.co_filename, frame.f_lineno, code.co_name), via
            called = frame
            frame = frame.f_back
        return None, None


def _receivers() -> tuple[ResponseLog, ...]:
    attributed = _ATTRIBUTED.get()
    if attributed:
        return attributed
    return tuple(_CATCH_ALL)


def _recorded(library: str, response: object, sync: bool) -> None:
    receivers = _receivers()
    if not receivers:
        return
    frame = sys._getframe(2)  # pyright: ignore[reportPrivateUsage] - the wrapper's caller (no frame cycle)
    for log in receivers:
        log._record(library, response, sync, frame)  # pyright: ignore[reportPrivateUsage] - same module


# ---------------------------------------------------------------------------------------------- patching
_HTTPX: Final = "httpx"
_AIOHTTP: Final = "aiohttp"


def _async_wrapper(library: str, original: Callable[..., Any]) -> Callable[..., Any]:
    async def observed(*args: Any, **kwargs: Any) -> Any:
        response = await original(*args, **kwargs)
        _recorded(library, response, False)
        return response

    return _named(observed, original)


def _sync_wrapper(library: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def observed(*args: Any, **kwargs: Any) -> Any:
        response = original(*args, **kwargs)
        _recorded(library, response, True)
        return response

    return _named(observed, original)


def _named(wrapper: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
        with contextlib.suppress(AttributeError, TypeError):  # plain functions accept all four
            setattr(wrapper, attribute, getattr(original, attribute))
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]  # functools.wraps does the same
    return wrapper


def _entry_points() -> list[tuple[type, str, Callable[[str, Callable[..., Any]], Callable[..., Any]], str]]:
    found: list[tuple[type, str, Callable[[str, Callable[..., Any]], Callable[..., Any]], str]] = []
    httpx = sys.modules.get(_HTTPX)
    if httpx is not None:
        for name, wrap in (("AsyncClient", _async_wrapper), ("Client", _sync_wrapper)):
            cls = getattr(httpx, name, None)
            if isinstance(cls, type) and "send" in cls.__dict__:
                found.append((cls, "send", wrap, _HTTPX))
    aiohttp = sys.modules.get(_AIOHTTP)
    if aiohttp is not None:
        cls = getattr(aiohttp, "ClientSession", None)
        if isinstance(cls, type) and "_request" in cls.__dict__:
            found.append((cls, "_request", _async_wrapper, _AIOHTTP))
    return found


def _install() -> None:
    for cls, attribute, wrap, library in _entry_points():
        original = cls.__dict__[attribute]
        wrapper = wrap(library, original)
        setattr(cls, attribute, wrapper)
        _INSTALLED.append((cls, attribute, original, wrapper))


def _uninstall() -> None:
    while _INSTALLED:
        cls, attribute, original, wrapper = _INSTALLED.pop()
        if cls.__dict__.get(attribute) is wrapper:
            setattr(cls, attribute, original)
        # else: something replaced ours meanwhile; ours stays below it as a pass-through (no receivers)
