"""Start a worker process the way this process allows, watch it, and stop it with everything it started.

:func:`start_method` chooses how (see :mod:`lmstream.conformance._supervisor`): ``fork`` on POSIX when this
process has a single thread, or when only an object exists; ``spawn`` (a new interpreter importing the
target by :func:`import_name`) on Windows and when this process has other threads; ``in-process`` where
neither works. ``LMSTREAM_WORKER=fork|spawn|in-process`` forces one.

:func:`fork_worker` and :func:`spawn_worker` start a worker in a process group of its own (so the
terminal's Ctrl-C reaches this process only, and killing the group ends whatever the target started);
:class:`Worker` reads its messages against a deadline and notices when it has ended;
:meth:`Worker.stop` kills its group and reaps it. :func:`describe_end` says what an exit status means.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, replace
from typing import Final, Literal, Union

from ._channel import CLOSED, Message, Receiver
from ._worker import CRASHED, SPAWN_CODE, Job, serve, spawnable
from .targets import TargetError

__all__ = [
    "TIMEOUT",
    "Ended",
    "StartMethod",
    "Timeout",
    "Worker",
    "describe_end",
    "fork_worker",
    "import_name",
    "spawn_worker",
    "standard_descriptors",
    "start_method",
]

StartMethod = Literal["fork", "spawn", "in-process"]
_ENV: Final = "LMSTREAM_WORKER"
_POLL: Final = 0.05
"""Seconds between two looks at the worker's process while its channel is quiet."""
_REAP: Final = 5.0
"""Seconds to wait for a killed worker to be gone (SIGKILL cannot be caught: this is slack, not a wait)."""
_EXIT_GRACE: Final = 0.5
"""After the channel closes, how long the worker has to exit before it is killed."""


@dataclass(frozen=True)
class Ended:
    """The worker is gone."""

    status: int | None  # the exit status (negative: the signal), None: alive but the channel closed


class Timeout:
    """The deadline passed first."""


TIMEOUT: Final = Timeout()
Next = Union[Message, Ended, Timeout]  # noqa: UP007 - a runtime alias on Python 3.10
"""What :meth:`Worker.next` returns."""


def start_method(job: Job) -> tuple[StartMethod, str | None]:
    """How to start the worker (see the module docstring) and, for ``spawn``, the name to import."""
    can_fork = hasattr(os, "fork") and hasattr(os, "waitid")
    forced = os.environ.get(_ENV, "").strip()
    if forced == "in-process":
        return "in-process", None
    if forced == "fork":
        if not can_fork:
            raise TargetError(f"{_ENV}=fork: os.fork() and os.waitid() do not exist on this platform")
        return "fork", None
    if forced == "spawn":
        name = _spawn_name(job)
        if name is None:
            raise TargetError(
                f"{_ENV}=spawn: the target has no importable name, or the checks or the prompt cannot be sent"
            )
        return "spawn", name
    if can_fork and _thread_count() <= 1:
        return "fork", None
    name = _spawn_name(job)
    if name is not None:
        return "spawn", name
    if can_fork:
        return "fork", None
    return "in-process", None


def _spawn_name(job: Job) -> str | None:
    name = import_name(job.target)
    if not sys.executable or name is None or spawnable(replace(job, target=name)) is None:
        return None
    return name


def import_name(target: object) -> str | None:
    """``module:attribute`` under which a new interpreter can import ``target`` again, or ``None``."""
    if isinstance(target, str):
        return target
    try:
        module_name = getattr(target, "__module__", None)
        qualname = getattr(target, "__qualname__", None)
        if not isinstance(module_name, str) or not isinstance(qualname, str):
            return None
        if "<" in qualname or module_name == "__main__" or module_name not in sys.modules:
            return None
        found: object = sys.modules[module_name]
        for part in qualname.split("."):
            found = getattr(found, part)
        if found is not target or not _importable(module_name):
            return None
    except Exception:  # a hostile __getattr__: only a fork can have it
        return None
    return f"{module_name}:{qualname}"


def _importable(module_name: str) -> bool:
    """Whether ``sys.path`` finds the module where it was loaded from (pytest may import test modules
    by path, under names that a fresh interpreter cannot import)."""
    module = sys.modules.get(module_name)
    origin = getattr(getattr(module, "__spec__", None), "origin", None)
    if not isinstance(origin, str) or not os.path.isfile(origin):
        return module_name in sys.builtin_module_names
    top = module_name.partition(".")[0]
    spec = importlib.machinery.PathFinder.find_spec(top, [p or os.getcwd() for p in sys.path])
    if spec is None:
        return False
    if top == module_name:
        return spec.origin is not None and os.path.samefile(spec.origin, origin)
    roots = list(spec.submodule_search_locations or [])
    return any(os.path.abspath(origin).startswith(os.path.abspath(root) + os.sep) for root in roots)


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))  # the OS's count, as Python's own warning uses
    except OSError:
        return threading.active_count()


# ------------------------------------------------------------------------------------------- processes
class _Process:
    """A worker's process: forked (``popen`` is None) or spawned. Its exit is observed without reaping
    it on POSIX, so that its process group can still be killed safely at the end."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None) -> None:
        self.pid = pid
        self.popen = popen
        self.status: int | None = None

    def exited(self) -> int | None:
        """The exit status (negative: the signal) once the process has ended, else ``None``."""
        if self.status is not None:
            return self.status
        if self.popen is not None and (os.name == "nt" or not hasattr(os, "waitid")):
            self.status = self.popen.poll()  # reaps it: its group can then only be killed through it
            return self.status
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped by someone else (a SIGCHLD handler of the caller's)
            self.status = 0
            return self.status
        if info is None:
            return None
        self.status = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        return self.status

    def stop(self) -> None:
        """Kill the process and its group (children the target started), then reap it."""
        if os.name == "nt":
            assert self.popen is not None
            self.popen.kill()
            _wait_popen(self.popen)
            return
        try:
            if os.getpgid(self.pid) == self.pid != os.getpgid(0):
                os.killpg(self.pid, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except OSError:  # already gone
            pass
        if self.popen is not None:
            _wait_popen(self.popen)
            return
        deadline = time.monotonic() + _REAP
        pause = 0.0001
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                return
            time.sleep(pause)  # SIGKILL was sent: the process is gone within a fraction of a millisecond
            pause = min(pause * 2, 0.01)


def _wait_popen(popen: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL/TerminateProcess did not take
        popen.wait(timeout=_REAP)


class Worker:
    """One worker: its process and the supervisor's end of its channel."""

    def __init__(self, process: _Process, receiver: Receiver) -> None:
        self.process = process
        self.receiver = receiver
        self._ended: Ended | None = None

    def next(self, deadline: float) -> Next:
        """The next message; :class:`Ended` once the worker is gone; the timeout when ``deadline``
        (a :func:`time.monotonic` value) passes first."""
        while True:
            if self._ended is not None:
                got = self.receiver.receive(0)  # what it sent before it ended comes first
                return got if isinstance(got, dict) else self._ended
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return TIMEOUT
            got = self.receiver.receive(min(remaining, _POLL))
            if isinstance(got, dict):
                return got
            if got is CLOSED:
                self._ended = Ended(self._exit_status())
            elif self.process.exited() is not None:
                self._ended = Ended(self.process.exited())

    def _exit_status(self) -> int | None:
        deadline = time.monotonic() + _EXIT_GRACE
        while time.monotonic() < deadline:
            status = self.process.exited()
            if status is not None:
                return status
            time.sleep(0.005)  # the channel closed: the process is exiting
        return self.process.exited()

    def stop(self) -> None:
        """Kill the worker and its group, reap it, close the channel."""
        self.process.stop()
        self.receiver.close()


def fork_worker(job: Job) -> Worker:
    read_fd, write_fd = os.pipe()
    _flush_standard_streams()
    with warnings.catch_warnings():
        # Only reached with threads running when the target exists only as an object (module docstring).
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the worker
        try:
            os.setpgid(0, 0)  # its own process group: the terminal's Ctrl-C goes to the supervisor only
            os.close(read_fd)
            serve(job, write_fd)
        finally:
            os._exit(70)
    os.close(write_fd)
    with contextlib.suppress(OSError):  # the child did it first, or already ended
        os.setpgid(pid, pid)  # also here, so that the group exists before the parent may kill it
    return Worker(_Process(pid, None), Receiver(read_fd, job.token))


def spawn_worker(job: Job, path: str) -> Worker:
    data = spawnable(job)
    assert data is not None  # start_method() checked it
    with open(path, "wb") as file:
        file.write(data)
    command = [sys.executable, "-c", SPAWN_CODE, path]
    with open(job.stderr_path, "ab") as stderr:
        if sys.platform == "win32":
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,
            )
        else:
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
    assert popen.stdout is not None
    fd = os.dup(popen.stdout.fileno())
    popen.stdout.close()
    return Worker(_Process(popen.pid, popen), Receiver(fd, job.token))


def standard_descriptors() -> None:
    """Open the null device on fds 0, 1 or 2 if closed (``lmstream check ... >&-``), so that no pipe or
    capture file of the worker's can land there and be taken over by its standard streams."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:  # pragma: no cover - the lowest free descriptor is the closed one
                os.dup2(opened, fd)
                os.close(opened)


def _flush_standard_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def describe_end(status: int | None) -> str:
    """What a worker's exit status says happened to it."""
    if status is None:
        return (
            "the target closed the suite's channel to the worker process (it closed file descriptors it had "
            "not opened?); the suite stopped the process"
        )
    if status == CRASHED:
        return (
            "the worker process could not go on: the target broke what it needs (closed or replaced its file "
            f"descriptors?), or called os._exit({CRASHED})"
        )
    if status >= 0:
        return f"the target ended the worker process with os._exit({status}) (or another immediate exit)"
    number = -status
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if name == "SIGKILL":
        return "the worker process was killed by SIGKILL, not by the suite (out of memory?)"
    if name in {"SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE", "SIGABRT"}:
        return f"the worker process crashed with {name} (a fault or an abort() in native code?)"
    return f"the worker process was killed by {name} (sent by the target, or left to its default action)"
