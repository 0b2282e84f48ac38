"""Hostile and careless targets: each one tries to hang, crash or pollute ``lmstream check`` itself.

Nothing here is a test (``test_hostile.py`` runs them). Every engine yields ``"Hel"``, then misbehaves
where a stream would yield its second token, so the checks that iterate the stream (ES-2, ES-3...) meet
the misbehaviour and ES-1 (``stream()`` returns an async iterable, never iterated) passes: a report that
holds both proves that the run went on after the worker was stopped. Targets whose *import* misbehaves
are module sources (:data:`IMPORTS`), written to a temporary directory by the test, so that importing
this module stays harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from lmstream.reference import ChatMessage, Completion

_WAIT = 3600.0
"""Longer than any test: a target that sleeps this long is stopped by the suite or not at all."""


def _done(text: str) -> Completion:
    return Completion(ChatMessage("assistant", text), 1, 2)


class _Engine:
    """Yields "Hel", calls :meth:`misbehave`, then yields "lo" and the completion."""

    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        return self._items()

    async def _items(self) -> AsyncIterator[object]:
        yield "Hel"
        await asyncio.sleep(0)
        await self.misbehave()
        yield "lo"
        yield _done("Hello")

    async def misbehave(self) -> None:
        """What the engine does between its two tokens."""


# ------------------------------------------------------------------------------------------------ hangs
class ComputesInC(_Engine):
    """A long computation in C that never releases the interpreter: not even a thread can run."""

    async def misbehave(self) -> None:
        sum(range(10**12))


class BusyCatchingEverything(_Engine):
    """A busy loop that catches every exception, KeyboardInterrupt and SystemExit included."""

    async def misbehave(self) -> None:
        while True:
            with contextlib.suppress(BaseException):  # swallows everything, on purpose
                time.sleep(0.001)  # noqa: ASYNC251 - blocks the event loop on purpose


class _SleepsAfter(_Engine):
    async def misbehave(self) -> None:
        self.disarm()
        time.sleep(_WAIT)  # noqa: ASYNC251 - blocks the event loop on purpose

    def disarm(self) -> None:
        """What the engine does to a SIGALRM watchdog before it blocks."""


class CancelsTheAlarm(_SleepsAfter):
    def disarm(self) -> None:
        signal.alarm(0)


class StopsTheTimer(_SleepsAfter):
    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)


class TakesOverSigalrm(_SleepsAfter):
    def disarm(self) -> None:
        signal.signal(signal.SIGALRM, lambda signum, frame: None)
        signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)


class BlocksSigalrm(_SleepsAfter):
    def disarm(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})


class _BlocksWhenCollected:
    def __del__(self) -> None:
        time.sleep(_WAIT)


class DelBlocks(_Engine):
    """Drops an object whose ``__del__`` blocks."""

    async def misbehave(self) -> None:
        _BlocksWhenCollected()


class Deadlocks(_Engine):
    """Takes a lock it already holds (the interpreter is released: the watchdog sees where)."""

    async def misbehave(self) -> None:
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()


class UncancellableManager:
    """A manager (ManagerFactory) whose completion() and iteration swallow every cancellation."""

    def __init__(self, stream_iter: Any, role: Any, *, after: Any = None, lock: Any = None) -> None:
        self.role = role

    def __aiter__(self) -> UncancellableManager:
        return self

    async def __anext__(self) -> str:
        await self.completion()
        raise StopAsyncIteration

    async def completion(self) -> object:
        while True:
            with contextlib.suppress(BaseException):  # swallows every cancellation, on purpose
                await asyncio.sleep(_WAIT)

    async def message(self) -> object:
        return await self.completion()

    def __await__(self) -> Any:
        return self.completion().__await__()


# ---------------------------------------------------------------------------------------------- crashes
class RaisesKeyboardInterrupt:
    """``stream()`` itself raises KeyboardInterrupt."""

    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        raise KeyboardInterrupt


class _Raises(_Engine):
    error: type[BaseException] = BaseException

    async def misbehave(self) -> None:
        raise self.error("from the engine")


class IteratorRaisesKeyboardInterrupt(_Raises):
    error = KeyboardInterrupt


class IteratorRaisesSystemExit(_Raises):
    error = SystemExit


class IteratorRaisesGeneratorExit(_Raises):
    error = GeneratorExit


class _Custom(BaseException):
    pass


class IteratorRaisesBaseException(_Raises):
    error = _Custom


class _ClosesBadly:
    def __aiter__(self) -> _ClosesBadly:
        return self

    async def __anext__(self) -> str:
        await asyncio.sleep(0)
        return "token"

    async def aclose(self) -> None:
        raise KeyboardInterrupt


class AcloseRaisesKeyboardInterrupt:
    """An endless stream whose aclose() raises KeyboardInterrupt."""

    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> _ClosesBadly:
        return _ClosesBadly()


class _Hostile(type):
    def __getattr__(cls, name: str) -> Any:
        raise KeyboardInterrupt(name)


class Namespace(metaclass=_Hostile):
    """``Namespace.engine`` (any attribute lookup on the class) raises KeyboardInterrupt."""


class StopsTheLoop(_Engine):
    async def misbehave(self) -> None:
        asyncio.get_running_loop().stop()
        await asyncio.sleep(0)


class ClosesTheLoop(_Engine):
    async def misbehave(self) -> None:
        asyncio.get_running_loop().close()


class CancelsEveryTask(_Engine):
    async def misbehave(self) -> None:
        for task in asyncio.all_tasks():
            task.cancel()
        await asyncio.sleep(0)


class ExitsTheProcess(_Engine):
    async def misbehave(self) -> None:
        os._exit(3)


class Segfaults(_Engine):
    async def misbehave(self) -> None:
        ctypes.string_at(0)


class KillsItself(_Engine):
    async def misbehave(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class InterruptsItself(_Engine):
    """Sends itself SIGINT, as a Ctrl-C would."""

    async def misbehave(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(0.1)


class Floods(_Engine):
    """Writes to stdout as fast as it can, for ever."""

    async def misbehave(self) -> None:
        chunk = b"flood " * 10_000
        while True:
            os.write(1, chunk)


class ClosesEveryDescriptor(_Engine):
    """Closes every file descriptor it did not open, the suite's channel included."""

    async def misbehave(self) -> None:
        os.closerange(3, 1024)
        time.sleep(_WAIT)  # noqa: ASYNC251 - blocks the event loop on purpose


# -------------------------------------------------------------------------------------------- pollution
class _Conforming:
    """Conforming, and noisy: :meth:`noise` runs between the two tokens."""

    def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        return self._items()

    async def _items(self) -> AsyncIterator[object]:
        yield "Hel"
        self.noise()
        await asyncio.sleep(0)
        yield "lo"
        yield _done("Hello")

    def noise(self) -> None:
        """The noise."""


class Prints(_Conforming):
    def noise(self) -> None:
        print("hello from the engine")
        print("to stderr too", file=sys.stderr)


class WritesFd1(_Conforming):
    def noise(self) -> None:
        os.write(1, b"written to fd 1\n")
        os.write(2, b"written to fd 2\n")


class PrintsFromAThread(_Conforming):
    def noise(self) -> None:
        thread = threading.Thread(target=print, args=("hello from a thread",))
        thread.start()
        thread.join()


class PrintsFromAChildProcess(_Conforming):
    def noise(self) -> None:
        subprocess.run([sys.executable, "-c", "print('hello from a child process')"], check=True)


class ReplacesStdout(_Conforming):
    def noise(self) -> None:
        for name in ("stdout", "__stdout__"):  # what a careless target does, the original included
            setattr(sys, name, None)


class ClosesFd1(_Conforming):
    def noise(self) -> None:
        os.close(1)
        with contextlib.suppress(OSError):
            print("lost")


class WritesGarbage(_Conforming):
    """Control characters, bytes that are not UTF-8, characters XML cannot hold."""

    def noise(self) -> None:
        os.write(1, b"\x1b[2J\x00\x07 bell \xff\xfe not utf-8 \x1b]0;title\x07\n")
        print("\ud800 a lone surrogate", file=sys.stderr)


class WritesALot(_Conforming):
    def noise(self) -> None:
        os.write(1, b"x" * 1_000_000 + b"\nthe end\n")


def _no_json(*args: object, **kwargs: object) -> str:
    return "{}"


class SilencesTheSuite(_Conforming):
    """Replaces os.write and json.dumps (with functions that pretend to work) in the worker."""

    def noise(self) -> None:
        os.write = lambda fd, data: memoryview(data).nbytes
        json.dumps = _no_json


class Logs(_Conforming):
    """Logs to stdout, as a logging.basicConfig(stream=sys.stdout) at import would."""

    def noise(self) -> None:
        logger = logging.getLogger("hostile.engine")
        if not logger.handlers:
            logger.addHandler(logging.StreamHandler(sys.stdout))
            logger.propagate = False
        logger.warning("engine log line")


# ----------------------------------------------------------------------------------------------- imports
_ENGINE = """
import asyncio
from lmstream.reference import ChatMessage, Completion

class Engine:
    def stream(self, messages, functions=None, **hyperparams):
        return self._items()

    async def _items(self):
        yield "Hello"
        yield Completion(ChatMessage("assistant", "Hello"), 1, 2)
"""

IMPORTS: dict[str, str] = {
    "import_sleeps": "import time\ntime.sleep(3600)\n",
    "import_loops": "while True:\n    pass\n",
    "import_computes": "sum(range(10**12))\n",
    "import_raises_keyboard_interrupt": "raise KeyboardInterrupt\n",
    "import_raises_base_exception": "class Custom(BaseException):\n    pass\n\nraise Custom('at import')\n",
    "import_exits": "import os\nos._exit(4)\n",
    "import_runs_the_suite": (
        "from lmstream.conformance import TargetKind, run_checks\n"
        "run_checks(TargetKind.ENGINE, 'import_runs_the_suite:Engine')\n"
    ),
    "import_prints": "import os, sys\nprint('hello at import')\nos.write(2, b'fd 2 at import\\n')\n"
    + _ENGINE,
    "import_logs": (
        "import logging, sys\nlogging.basicConfig(stream=sys.stdout, level=logging.INFO)\n"
        "logging.getLogger('engine').info('configured')\n" + _ENGINE
    ),
}
"""Module sources whose import misbehaves (the last two are conforming engines that print while imported)."""
