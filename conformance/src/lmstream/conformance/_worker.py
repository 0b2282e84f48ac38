"""The worker process: prepare the target, run the checks one by one, send each result to the supervisor.

A worker is started by :mod:`lmstream.conformance._supervisor`, either forked (it then holds the target,
the checks and the prompt as objects) or spawned as a new interpreter that reads a pickled :class:`Job` and
imports the target by name (:func:`spawned_main`). Either way it then:

1. points its standard streams at the run's capture files (:class:`~lmstream.conformance._output.Redirection`;
   ``faulthandler`` writes a crash's traceback there too) and starts its watchdog thread
   (:class:`~lmstream.conformance._watchdog.Watchdog`);
2. prepares the target (:func:`~lmstream.conformance._execute.prepare`) and sends ``ready`` (with the
   target's name) or ``unusable`` (with the one-line error);
3. for each check sends ``start`` (with the capture files' offsets), runs it
   (:func:`~lmstream.conformance._execute.execute`) and sends ``result``; anything that escapes the
   per-check machinery is sent as ``crash`` and ends the worker, since the process may be damaged;
4. sends ``done`` and ends with ``os._exit(0)``: no ``atexit`` handler, no thread of the target, no
   finalizer can hold it up.

Messages go through :class:`~lmstream.conformance._channel.Sender`; the worker never reads from its
supervisor after the start.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import pickle
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NoReturn

from ._channel import Sender
from ._execute import Prepared, execute, prepare
from ._isolation import freeze_heap
from ._output import Redirection
from ._watchdog import Watchdog
from .describe import describe_exception
from .model import Check, TargetKind
from .targets import TargetError

__all__ = ["CRASHED", "SPAWN_CODE", "Job", "in_a_worker", "serve", "spawnable", "spawned_main"]

SPAWN_CODE = "import sys; from lmstream.conformance._worker import spawned_main; spawned_main(sys.argv[1])"
"""What a spawned worker runs (``python -c SPAWN_CODE JOB_PATH``)."""

CRASHED = 70
"""The worker's exit status when the target broke what the worker itself needs (its descriptors)."""


@dataclass(frozen=True)
class Job:
    """Everything a worker needs. Picklable (for a spawned worker) when ``target`` is a string, the
    checks are registered ones and the prompt is ``None``, a string or picklable messages.

    :ivar indices: each check's index in the supervisor's list, sent back with its messages.
    :ivar report_after: seconds after a check's start from which the watchdog reports where it is stuck.
    :ivar import_report_after: the same for preparing the target.
    """

    kind: TargetKind
    target: object
    target_name: str | None
    checks: tuple[Check, ...]
    indices: tuple[int, ...]
    timeout: float
    grace: float
    report_after: float
    import_report_after: float
    messages: Sequence[object] | str | None
    stdout_path: str
    stderr_path: str
    token: str
    sys_path: tuple[str, ...] = ()
    cwd: str = ""


_serving = False


def in_a_worker() -> bool:
    """Whether this process is a worker (where the runner refuses to start another run)."""
    return _serving


def serve(job: Job, channel_fd: int) -> NoReturn:
    """Do the job (see the module docstring), then end the process. Never returns."""
    global _serving
    _serving = True
    code = CRASHED
    try:
        code = _serve(job, channel_fd)
    finally:
        os._exit(code)


def spawned_main(job_path: str) -> NoReturn:
    """The entry point of a spawned worker: read the job, take over the interpreter's state, serve it."""
    try:
        channel_fd = os.dup(1)  # fd 1 is the pipe to the supervisor: move it off stdout before anything runs
        with open(job_path, "rb") as file:
            job: Job = pickle.load(file)  # written by our own supervisor, for this process
        sys.path[:] = list(job.sys_path)
        if job.cwd:
            os.chdir(job.cwd)
    except BaseException:  # nobody to tell yet: the supervisor sees the exit status
        os._exit(CRASHED)
    serve(job, channel_fd)


def _serve(job: Job, channel_fd: int) -> int:
    # What the worker inherited is never collected here: a collection then touches only the checks' own
    # objects (fast, and in a forked worker it does not copy every page of the parent's heap).
    freeze_heap()
    sender = Sender(channel_fd, job.token)
    streams = Redirection(job.stdout_path, job.stderr_path)
    streams.restore()
    _default_signals()
    faulthandler.enable(file=streams.stderr_file)
    dog = Watchdog(sender.send)
    dog.arm(-1, time.monotonic() + job.import_report_after)
    try:
        prepared = prepare(job.kind, job.target, name=job.target_name, messages=job.messages)
    except TargetError as exc:
        sender.send({"t": "unusable", "error": str(exc)})
        return 0
    except BaseException as exc:  # the target's import or validation raised it
        sender.send({"t": "unusable", "error": f"preparing the target raised {describe_exception(exc)}"})
        return 0
    finally:
        dog.disarm()
    if not sender.send({"t": "ready", "name": prepared.name}):
        return 0
    for index, check in zip(job.indices, job.checks, strict=True):
        if not _one(job, prepared, index, check, sender, streams, dog):
            return 0
    sender.send({"t": "done"})
    return 0


def _one(
    job: Job,
    prepared: Prepared,
    index: int,
    check: Check,
    sender: Sender,
    streams: Redirection,
    dog: Watchdog,
) -> bool:
    streams.restore()
    out, err = streams.offsets()
    if not sender.send({"t": "start", "i": index, "out": out, "err": err}):
        return False
    dog.arm(index, time.monotonic() + job.report_after)
    try:
        result = execute(check, prepared, timeout=job.timeout, grace=job.grace, on_loop=dog.watch)
    except BaseException as exc:  # the target broke the suite's own machinery
        dog.disarm()
        sender.send({"t": "crash", "i": index, "what": describe_exception(exc)})
        return False
    dog.disarm()
    return sender.send(
        {
            "t": "result",
            "i": index,
            "outcome": result.outcome.value,
            "message": _clip(result.message),
            "reproduction": None if result.reproduction is None else _clip(result.reproduction),
            "duration": result.duration,
        }
    )


_TEXT_LIMIT = 256 * 1024
"""Characters of a result's message or reproduction sent (thousands of warnings make a long message)."""


def _clip(text: str) -> str:
    if len(text) <= _TEXT_LIMIT:
        return text
    return text[:_TEXT_LIMIT] + f"\n[... {len(text) - _TEXT_LIMIT} characters left out]"


def _default_signals() -> None:
    """Handlers the worker inherited from its parent (pytest-timeout's, say) go back to the defaults."""
    if hasattr(signal, "set_wakeup_fd"):
        try:
            signal.set_wakeup_fd(-1)
        except (ValueError, OSError):  # not the main thread: nothing to reset
            return
    for number in signal.valid_signals():
        try:
            handler: object = signal.getsignal(number)
        except (ValueError, OSError):
            continue
        if callable(handler) and handler is not signal.default_int_handler:
            try:
                signal.signal(number, signal.SIG_DFL)
            except (ValueError, OSError):
                continue
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.default_int_handler)


def spawnable(job: Job) -> bytes | None:
    """The pickled job for a spawned worker, or ``None`` when it holds objects that cannot be sent."""
    if not isinstance(job.target, str):
        return None
    try:
        return pickle.dumps(replace(job, sys_path=tuple(sys.path), cwd=os.getcwd()))
    except Exception:  # a local check, unpicklable messages...: only a forked worker can have them
        return None
