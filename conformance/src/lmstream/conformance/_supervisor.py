"""Run the checks in a worker process and hold every bound from outside it.

:func:`supervise` starts one worker (:mod:`lmstream.conformance._worker`) for the whole run and reads its
messages (:mod:`lmstream.conformance._channel`) against deadlines of its own, counted from when each phase
starts:

* preparing the target (its import, validation and the prompt) has ``import_timeout`` seconds;
* each check has its *hard deadline*, ``T + G + M`` (:func:`hard_deadline`: the timeout, the grace and
  the margin :func:`margin` = ``max(0.5, G)`` that the worker's own cleanup may use after ``T + G``);
* between two checks the worker has ``M`` seconds to start the next one.

When a deadline passes, or the worker dies or breaks the channel, the worker's whole process group is
killed (``SIGKILL``; ``TerminateProcess`` on Windows), the check in progress fails with what happened (where
the watchdog last saw the target, the exit status, the signal), and a fresh worker runs the checks that
remain. Every worker completes or fails at least one check, so a run starts at most N + 1 workers. Nothing
here needs a signal in the worker, so the bounds hold in any thread and on Windows.

The supervisor itself runs no code of the target: a ``KeyboardInterrupt`` here is the user's, and ends the
run at once with the checks that ended before it (:attr:`Supervised.interrupted`).

How the worker gets the target (:func:`start_method`):

* **fork** (POSIX, the default when this process has a single thread): the worker is a copy of this
  process and holds the target, the checks and the prompt as the objects they are (classes defined in a
  test module, lambdas, ad hoc checks). A ``"module:attribute"`` target is imported in the worker, never
  here.
* **spawn** (Windows; POSIX when this process has other threads, since forking it could deadlock the
  copy): a new interpreter (``sys.executable``, with this process's ``sys.path`` and directory) imports
  the target by name: the string given, or ``module:qualname`` of an object that can be imported again
  under that name. The checks must be registered ones and the prompt picklable.
* **fork** again when only an object exists and this process has threads (POSIX): the
  ``DeprecationWarning`` Python 3.12+ gives for it is silenced; a copy that deadlocks is stopped at its
  deadline like any other.
* **in-process** when neither works (Windows, with a target that has no importable name, an ad hoc check
  or a prompt that cannot be pickled): the checks run in this process, as before there were workers, with
  the bounds of :mod:`lmstream.conformance._isolation` only; a target that blocks synchronously is then not
  bounded and its output is not captured.

``LMSTREAM_WORKER=fork|spawn|in-process`` in the environment forces a method (for debugging and the
suite's own tests); ``fork`` is refused where ``os.fork`` does not exist.
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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal, Union

from ._channel import CLOSED, Message, Receiver, new_token
from ._execute import execute, prepare
from ._output import OutputFiles, Stream
from ._worker import CRASHED, SPAWN_CODE, Job, serve, spawnable
from .describe import seconds
from .model import Check, CheckResult, Outcome, TargetKind, format_failure
from .targets import TargetError

__all__ = ["StartMethod", "Supervised", "hard_deadline", "margin", "start_method", "supervise"]

StartMethod = Literal["fork", "spawn", "in-process"]
_ENV: Final = "LMSTREAM_WORKER"
_POLL: Final = 0.05
"""Seconds between two looks at the worker's process while its channel is quiet."""
_REAP: Final = 5.0
"""Seconds to wait for a killed worker to be gone (SIGKILL cannot be caught: this is slack, not a wait)."""
_EXIT_GRACE: Final = 0.5
"""After the channel closes, how long the worker has to exit before it is killed."""
OUTPUT_CAP: Final = 16 * 1024 * 1024
"""Bytes the target may write to each of stdout and stderr during one check (or its import); past that the
worker is stopped and the check fails: the disk is not the target's to fill."""
_STREAMS: Final[tuple[Stream, Stream]] = ("stdout", "stderr")
_SIZE_CHECK: Final = 0.25
"""Seconds between two looks at the size of the capture files."""


def margin(grace: float) -> float:
    """The time the worker's own cleanup may take after ``T + G``: ``max(0.5, grace)`` seconds."""
    return max(0.5, grace)


def hard_deadline(timeout: float, grace: float) -> float:
    """A check's hard deadline, counted from its start: ``timeout + grace + margin(grace)`` seconds."""
    return timeout + grace + margin(grace)


@dataclass
class Supervised:
    """What a run produced: the target's name, the results in check order, the output outside checks."""

    name: str
    results: list[CheckResult]
    stdout: str = ""
    stderr: str = ""
    interrupted: bool = False
    method: StartMethod = "fork"


@dataclass
class _Record:
    index: int
    started: float
    out: tuple[int, int] = (0, 0)
    err: tuple[int, int] = (0, 0)
    fields: Message | None = None
    observed: str | None = None
    duration: float = 0.0
    blocked: Message | None = None
    blocked_at: float = 0.0


@dataclass(frozen=True)
class _Ended:
    status: int | None  # the exit status (negative: the signal), None: alive but the channel closed


class _Timeout:
    pass


@dataclass
class _Checking:
    """Where a worker is in its checks: the check in progress, the last one that ended."""

    begin: tuple[int, int]
    deadline: float
    current: _Record | None = None
    previous: _Record | None = None
    progressed: bool = False
    end_reason: str | None = None


@dataclass(frozen=True)
class _Overflow:
    stream: str


_TIMEOUT: Final = _Timeout()
_Next = Union[Message, _Ended, _Timeout, _Overflow]  # noqa: UP007 - a runtime alias on Python 3.10


def supervise(
    *,
    kind: TargetKind,
    target: object,
    target_name: str | None,
    checks: Sequence[Check],
    timeout: float,
    grace: float,
    messages: Sequence[object] | str | None,
    import_timeout: float,
) -> Supervised:
    """Run ``checks`` against ``target`` as the module docstring says.

    :raises TargetError: when the target (or the prompt) cannot be imported, is not valid, or its
        preparation hangs or ends the first worker.
    """
    _standard_descriptors()
    files = OutputFiles()
    job = Job(
        kind=kind,
        target=target,
        target_name=target_name,
        checks=tuple(checks),
        indices=tuple(range(len(checks))),
        timeout=timeout,
        grace=grace,
        report_after=timeout + grace + margin(grace) / 2,
        import_report_after=import_timeout - min(1.0, import_timeout / 2),
        messages=messages,
        stdout_path=files.paths["stdout"],
        stderr_path=files.paths["stderr"],
        token=new_token(),
    )
    try:
        method, spawn_target = start_method(job)
        if method == "in-process":
            return _in_process(job)
        run = _Run(job, files, method, spawn_target, import_timeout)
        return run.run()
    finally:
        files.close()


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


class _Worker:
    """One worker: its process and the supervisor's end of its channel."""

    def __init__(self, process: _Process, receiver: Receiver) -> None:
        self.process = process
        self.receiver = receiver
        self._ended: _Ended | None = None

    def next(self, deadline: float) -> _Next:
        """The next message; :class:`_Ended` once the worker is gone; the timeout when ``deadline``
        (a :func:`time.monotonic` value) passes first."""
        while True:
            if self._ended is not None:
                got = self.receiver.receive(0)  # what it sent before it ended comes first
                return got if isinstance(got, dict) else self._ended
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _TIMEOUT
            got = self.receiver.receive(min(remaining, _POLL))
            if isinstance(got, dict):
                return got
            if got is CLOSED:
                self._ended = _Ended(self._exit_status())
            elif self.process.exited() is not None:
                self._ended = _Ended(self.process.exited())

    def _exit_status(self) -> int | None:
        deadline = time.monotonic() + _EXIT_GRACE
        while time.monotonic() < deadline:
            status = self.process.exited()
            if status is not None:
                return status
            time.sleep(0.005)  # the channel closed: the process is exiting
        return self.process.exited()

    def stop(self) -> None:
        self.process.stop()
        self.receiver.close()


def _fork(job: Job) -> _Worker:
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
    return _Worker(_Process(pid, None), Receiver(read_fd, job.token))


def _spawn(job: Job, path: str) -> _Worker:
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
    return _Worker(_Process(popen.pid, popen), Receiver(fd, job.token))


def _standard_descriptors() -> None:
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


# ------------------------------------------------------------------------------------------------ a run
class _Run:
    def __init__(
        self,
        job: Job,
        files: OutputFiles,
        method: StartMethod,
        spawn_target: str | None,
        import_timeout: float,
    ) -> None:
        self.job = job
        self.files = files
        self.method: StartMethod = method
        self.spawn_target = spawn_target
        self.import_timeout = import_timeout
        self.hard = hard_deadline(job.timeout, job.grace)
        self.margin = margin(job.grace)
        self.name = job.target_name or (job.target if isinstance(job.target, str) else None)
        self.pending = list(job.indices)
        self.records: dict[int, _Record] = {}
        self.outside: list[tuple[tuple[int, int], tuple[int, int]]] = []
        self.workers = 0
        self.worker: _Worker | None = None

    @property
    def label(self) -> str:
        return repr(self.name) if self.name else "the target"

    def run(self) -> Supervised:
        interrupted = False
        try:
            self._one_worker()  # even with no check to run: the target is validated all the same
            while self.pending:
                self._one_worker()
        except KeyboardInterrupt:  # the user's: the supervisor runs no code of the target
            interrupted = True
        finally:
            self._stop_worker()
        return self._supervised(interrupted)

    # ------------------------------------------------------------------ one worker's life
    def _one_worker(self) -> None:
        self.workers += 1
        begin = (self.files.size("stdout"), self.files.size("stderr"))
        job = replace(
            self.job,
            checks=tuple(self.job.checks[i] for i in self.pending),
            indices=tuple(self.pending),
            target=self.spawn_target if self.method == "spawn" else self.job.target,
        )
        if self.method == "spawn":
            self.worker = _spawn(job, os.path.join(self.files.directory, f"job-{self.workers}.pickle"))
        else:
            self.worker = _fork(job)
        problem = self._prepare(self.worker)
        if problem is None:
            self._checks(self.worker, begin)
            return
        out_end, err_end = self._stop_and_sizes()
        self.outside.append(((begin[0], out_end), (begin[1], err_end)))
        if self.workers == 1:
            raise TargetError(problem)
        cause = f"a fresh worker process could not prepare the target again: {problem}"
        for index in list(self.pending):
            self._fail(index, cause)

    def _next(self, worker: _Worker, deadline: float, since: tuple[int, int]) -> _Next:
        """:meth:`_Worker.next`, looking on the way at how much was written since ``since`` (offsets)."""
        while True:
            got = worker.next(min(deadline, time.monotonic() + _SIZE_CHECK))
            if not isinstance(got, _Timeout) or time.monotonic() >= deadline:
                return got
            for stream, start in zip(_STREAMS, since, strict=True):
                if self.files.size(stream) - start > OUTPUT_CAP:
                    return _Overflow(stream)

    def _prepare(self, worker: _Worker) -> str | None:
        """Wait for ``ready``; the one-line problem otherwise."""
        started = time.monotonic()
        deadline = started + self.import_timeout
        blocked: Message | None = None
        what = f"importing {self.label}" if isinstance(self.job.target, str) else f"preparing {self.label}"
        since = (self.files.size("stdout"), self.files.size("stderr"))
        while True:
            got = self._next(worker, deadline, since)
            if isinstance(got, _Overflow):
                return f"{what} wrote {_too_much(got.stream)}; the suite stopped it"
            if isinstance(got, _Timeout):
                where = _where(blocked)
                within = seconds(self.import_timeout)
                return f"{what} did not finish within {within} (the import timeout){where}"
            if isinstance(got, _Ended):
                return f"{what} ended the worker process: {describe_end(got.status)}"
            kind = got.get("t")
            if kind == "ready":
                name = got.get("name")
                if isinstance(name, str) and self.job.target_name is None:
                    self.name = name
                return None
            if kind == "unusable":
                return str(got.get("error", "the target is not usable"))
            if kind == "blocked" and got.get("i") == -1:
                blocked = got

    def _checks(self, worker: _Worker, begin: tuple[int, int]) -> None:
        state = _Checking(begin, deadline=time.monotonic() + self.margin)
        try:
            while True:
                current = state.current
                since = (current.out[0], current.err[0]) if current is not None else begin
                got = self._next(worker, state.deadline, since)
                now = time.monotonic()
                if isinstance(got, _Overflow):
                    self._ended(
                        state, f"the target wrote {_too_much(got.stream)}; the suite stopped the process"
                    )
                    return
                if isinstance(got, _Timeout):
                    if current is not None:
                        self._fail_record(current, self._blocked(current, now), now)
                    else:
                        state.end_reason = (
                            "the worker process stopped answering between two checks "
                            "(a thread of the target held it?)"
                        )
                    return
                if isinstance(got, _Ended):
                    self._ended(state, describe_end(got.status))
                    return
                if not self._handle(state, got, now):
                    return
        except KeyboardInterrupt:  # keep what the worker had sent before the user stopped the run
            while isinstance(sent := worker.receiver.receive(0), dict):
                if not self._handle(state, sent, time.monotonic()):
                    break
            raise
        finally:
            out_end, err_end = self._stop_and_sizes()
            last = state.current or state.previous
            if last is not None:
                last.out, last.err = (last.out[0], out_end), (last.err[0], err_end)
            else:
                self.outside.append(((begin[0], out_end), (begin[1], err_end)))
            if state.end_reason is not None and not state.progressed and self.pending:
                cause = f"the worker process ended before the check could start: {state.end_reason}"
                self._fail(self.pending[0], cause)

    def _ended(self, state: _Checking, reason: str) -> None:
        if state.current is not None:
            self._fail_record(state.current, reason, time.monotonic())
        else:
            state.end_reason = reason

    def _handle(self, state: _Checking, got: Message, now: float) -> bool:
        """Take one message of the checks' phase; ``False`` when the worker has no more to say."""
        kind, index, current = got.get("t"), got.get("i"), state.current
        if kind == "start" and isinstance(index, int) and index in self.pending:
            out, err = _offset(got.get("out")), _offset(got.get("err"))
            previous = state.previous
            if previous is not None:
                previous.out, previous.err = (previous.out[0], out), (previous.err[0], err)
            else:
                self.outside.append(((state.begin[0], out), (state.begin[1], err)))
            state.current = self.records[index] = _Record(index, now, out=(out, -1), err=(err, -1))
            state.deadline = now + self.hard
        elif kind == "blocked" and current is not None and index == current.index:
            current.blocked, current.blocked_at = got, now
        elif kind == "result" and current is not None and index == current.index:
            current.fields = got
            current.duration = now - current.started
            self.pending.remove(current.index)
            state.previous, state.current, state.progressed = current, None, True
            state.deadline = now + self.margin
        elif kind == "crash" and current is not None and index == current.index:
            what = str(got.get("what", "an exception"))
            self._fail_record(
                current,
                f"the target raised {what}, which broke the suite's own machinery in the worker process; "
                "the remaining checks ran in a fresh one",
                now,
            )
            return False
        elif kind == "done":
            return False
        return True

    def _blocked(self, record: _Record, now: float) -> str:
        report = record.blocked
        deadline = f"the suite stopped the process at the check's hard deadline of {seconds(self.hard)}"
        if report is None:
            return (
                f"the check did not end within {seconds(now - record.started)}, and the process could not "
                "be inspected: the target held the interpreter without a break (a long computation in C "
                f"code?); {deadline}"
            )
        reported = report.get("for")
        blocked_for = (reported if isinstance(reported, (int, float)) else 0.0) + (now - record.blocked_at)
        where = str(report.get("where", "an unknown place"))
        if report.get("state") == "outside":
            how, hint = "outside the event loop", " (a finalizer or __del__ run by the check's cleanup?)"
        else:
            how, hint = "without returning to the event loop", " (time.sleep, blocking I/O, a busy loop?)"
        return (
            f"the target blocked the process for {seconds(blocked_for)} {how}, at {where}{hint}; {deadline}"
        )

    def _stop_and_sizes(self) -> tuple[int, int]:
        self._stop_worker()
        return self.files.size("stdout"), self.files.size("stderr")

    def _stop_worker(self) -> None:
        if self.worker is not None:
            worker, self.worker = self.worker, None
            worker.stop()

    def _fail_record(self, record: _Record, observed: str, now: float) -> None:
        record.observed = observed
        record.duration = now - record.started
        if record.index in self.pending:
            self.pending.remove(record.index)

    def _fail(self, index: int, observed: str) -> None:
        self.records[index] = _Record(index, time.monotonic(), observed=observed)
        if index in self.pending:
            self.pending.remove(index)

    # ------------------------------------------------------------------ the results
    def _supervised(self, interrupted: bool) -> Supervised:
        results: list[CheckResult] = []
        for index in sorted(self.records):
            record = self.records[index]
            if record.fields is None and record.observed is None:
                continue  # in progress when the user interrupted the run
            result = self._result(record)
            results.append(result)
        stdout = "".join(self.files.text("stdout", a, b) for (a, b), _ in self.outside if b > a)
        stderr = "".join(self.files.text("stderr", a, b) for _, (a, b) in self.outside if b > a)
        return Supervised(
            name=self.name or "the target",
            results=results,
            stdout=stdout,
            stderr=stderr,
            interrupted=interrupted,
            method=self.method,
        )

    def _result(self, record: _Record) -> CheckResult:
        check = self.job.checks[record.index]
        stdout = self.files.text("stdout", *record.out) if record.out[1] > record.out[0] else ""
        stderr = self.files.text("stderr", *record.err) if record.err[1] > record.err[0] else ""
        fields = record.fields
        if fields is not None:
            outcome = fields.get("outcome")
            message = fields.get("message")
            reproduction = fields.get("reproduction")
            duration = fields.get("duration")
            if (
                outcome in {o.value for o in Outcome}
                and isinstance(message, str)
                and (reproduction is None or isinstance(reproduction, str))
                and isinstance(duration, (int, float))
            ):
                return CheckResult(
                    check, Outcome(outcome), message, reproduction, float(duration), stdout, stderr
                )
            record.observed = (
                "the worker process sent a malformed result (did the target write to the suite's channel?)"
            )
        message = format_failure(check.requirement_id, record.observed or "the check did not end")
        return CheckResult(check, Outcome.FAILED, message, None, record.duration, stdout, stderr)


def _offset(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _too_much(stream: str) -> str:
    return f"more than {OUTPUT_CAP // (1024 * 1024)} MiB to {stream}"


def _where(report: Message | None) -> str:
    if report is None:
        return ": it held the interpreter without a break (a long computation in C code?)"
    return f": it was blocked at {report.get('where', 'an unknown place')}"


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


# ------------------------------------------------------------------------------------------- in-process
def _in_process(job: Job) -> Supervised:
    prepared = prepare(job.kind, job.target, name=job.target_name, messages=job.messages)
    results: list[CheckResult] = []
    interrupted = False
    try:
        for check in job.checks:
            results.append(execute(check, prepared, timeout=job.timeout, grace=job.grace))
    except KeyboardInterrupt:
        interrupted = True
    return Supervised(prepared.name, results, interrupted=interrupted, method="in-process")
