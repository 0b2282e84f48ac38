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

How the worker gets the target (:func:`~lmstream.conformance._launch.start_method`):

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

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Union

from ._channel import Message, new_token
from ._execute import execute, prepare
from ._launch import (
    Ended,
    StartMethod,
    Timeout,
    Worker,
    describe_end,
    fork_worker,
    spawn_worker,
    standard_descriptors,
    start_method,
)
from ._output import OutputFiles, Stream
from ._worker import Job
from .describe import seconds
from .model import Check, CheckResult, Outcome, TargetKind, format_failure
from .targets import TargetError

__all__ = ["OUTPUT_CAP", "Supervised", "hard_deadline", "margin", "supervise"]

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


_Next = Union[Message, Ended, Timeout, _Overflow]  # noqa: UP007 - a runtime alias on Python 3.10


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
    standard_descriptors()
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
        self.worker: Worker | None = None

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
            self.worker = spawn_worker(job, os.path.join(self.files.directory, f"job-{self.workers}.pickle"))
        else:
            self.worker = fork_worker(job)
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

    def _next(self, worker: Worker, deadline: float, since: tuple[int, int]) -> _Next:
        """:meth:`Worker.next`, looking on the way at how much was written since ``since`` (offsets)."""
        while True:
            got = worker.next(min(deadline, time.monotonic() + _SIZE_CHECK))
            if not isinstance(got, Timeout) or time.monotonic() >= deadline:
                return got
            for stream, start in zip(_STREAMS, since, strict=True):
                if self.files.size(stream) - start > OUTPUT_CAP:
                    return _Overflow(stream)

    def _prepare(self, worker: Worker) -> str | None:
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
            if isinstance(got, Timeout):
                where = _where(blocked)
                within = seconds(self.import_timeout)
                return f"{what} did not finish within {within} (the import timeout){where}"
            if isinstance(got, Ended):
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

    def _checks(self, worker: Worker, begin: tuple[int, int]) -> None:
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
                if isinstance(got, Timeout):
                    if current is not None:
                        self._fail_record(current, self._blocked(current, now), now)
                    else:
                        state.end_reason = (
                            "the worker process stopped answering between two checks "
                            "(a thread of the target held it?)"
                        )
                    return
                if isinstance(got, Ended):
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
