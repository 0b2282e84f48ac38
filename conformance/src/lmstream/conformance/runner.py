"""Run checks against a target: one check -> :class:`CheckResult`, a kind's checks -> :class:`Report`.

The command line and the pytest plugin both call these functions; there is one implementation of each
check and one way of running it.

**In a worker process.** A conformance suite runs code that is not yet trusted, so the checks never run in
the caller's process. One *worker* process per run imports the target (or, forked, already holds it) and
runs the checks one after the other, each in a fresh event loop; a *supervisor* in the caller's process
reads each result from a channel of its own (never the worker's stdout) and holds every bound from
outside, by killing the worker when a deadline passes. When the worker blocks, dies or is killed, that
check fails with what happened ("blocked the process for 2.7 s without returning to the event loop, at
engine.py:12 in stream", "ended the worker process with os._exit(3)", "raised KeyboardInterrupt() raised at
engine.py:9 in stream"), a fresh worker starts and the remaining checks run. No signal is sent to or used
in the worker to interrupt it, so the bounds hold in any thread and on Windows. How the worker gets the
target:

* **forked** (POSIX, when the calling process has a single thread): the worker is a copy of the caller and
  holds every object as it is: a class defined in a test module, a lambda, an ad hoc :class:`Check`. A
  ``"module:attribute"`` target is imported in the worker, never in the caller.
* **spawned** (Windows, and POSIX when the caller has other threads, where Python 3.12+ warns that a fork
  may deadlock): a new interpreter, given the caller's ``sys.path`` and directory, imports the target by
  name: the string, or ``module:qualname`` of an object that can be imported again under that name. The
  checks must be registered ones and the prompt picklable. Where only an object exists, POSIX forks
  anyway (the warning silenced: a copy that deadlocks is stopped at its deadline like any target).
* **in the caller's process** only where neither works: on Windows, for a target with no importable name,
  an ad hoc check or a prompt that cannot be pickled. The checks then have the in-loop bounds of one
  check below and nothing more: a target that blocks synchronously is not bounded, and its output is not
  captured.

``LMSTREAM_WORKER=fork|spawn|in-process`` forces one of them (for debugging).

**Bounds.** With ``T`` the timeout (``0.01`` to ``3600`` seconds, finite) and ``G`` the grace
(:func:`default_grace`: ``min(0.5, max(0.05, T/4))`` seconds):

* inside the worker, a check whose target does not react to the check's own timeouts is cancelled at
  ``T + G/2`` and abandoned at ``T + G`` if it swallows the cancellation; leftover tasks are cancelled,
  async generators closed, and whatever remains is reported with the result;
* the supervisor gives each check a *hard deadline* of ``T + G + M``, with the margin ``M =
  max(0.5, G)`` for the worker's own cleanup; a check still running then (code that blocks the loop,
  ``time.sleep``, a busy loop that catches every exception, a long computation in C, a blocking
  ``__del__``) is failed and its worker killed with its whole process group. A watchdog thread in the
  worker names where the main thread was (``sys._current_frames()``); code that never releases the
  interpreter keeps even that thread out, and the failure says so;
* preparing the target (its import and validation, and ``--messages``) has ``import_timeout`` seconds
  (default :data:`DEFAULT_IMPORT_TIMEOUT`); a target whose import hangs, fails or ends the process is
  unusable (:class:`~lmstream.conformance.TargetError`, exit status 2 on the command line);
* restarting a worker costs ``R``: a fork (a few milliseconds) or a new interpreter, plus the target's
  import again.

So **a run of N checks ends within I + N x (T + G + M + R)**, I the first import, whatever the target
does; with the defaults (T = 2 s, G = M = 0.5 s) and the 11 engine checks a target that blocks every check
is reported in about 33 s plus 11 imports of it. A conforming target's run starts one worker.

**Output.** In the worker, file descriptors 1 and 2 (and ``sys.stdout``, ``sys.stderr``, put back before
each check) write to capture files, so prints, direct ``os.write(1, ...)``, threads and child processes
are all caught, and a target that closes fd 1 or replaces ``sys.stdout`` harms nothing. What was written
during a check is that result's ``stdout`` and ``stderr`` (:class:`~lmstream.conformance.CheckResult`);
what was written outside any check (the import) is the report's. Each is kept to 16 KiB (the start and the
end); the text report shows a few lines of it as a note, the JSON and JUnit reports carry it as fields.

**Never lies, never litters.** A target that raises inside a check fails that check, with the exception
summarised (type, message, the frame that raised it), never the run, and so does one that raises
``SystemExit``, ``KeyboardInterrupt`` or ``GeneratorExit``, stops or closes the loop or cancels the
runner's task. Warnings, asyncio's complaints and unraisable exceptions during a check are captured and
reported with its result, never printed. Threads the target leaves running are reported; the worker ends
with ``os._exit()``, so none of them holds the run up. A ``KeyboardInterrupt`` in the caller (the user's
Ctrl-C: the worker has a process group of its own, so the terminal's interrupt reaches the caller only)
stops the run at once: :func:`run_checks` kills the worker and raises it; the command line prints the
checks that ended before it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Final

from ._isolation import require_sync
from ._leftovers import once_per_run
from ._supervisor import supervise
from ._worker import in_a_worker
from .checks import checks_for
from .model import Check, CheckResult, Report, TargetKind, format_failure
from .selection import compile_selection

__all__ = [
    "DEFAULT_IMPORT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "MIN_TIMEOUT",
    "default_grace",
    "format_failure",
    "run_check",
    "run_checks",
]

DEFAULT_TIMEOUT: Final = 2.0
"""The default budget of one check, in seconds."""

MIN_TIMEOUT: Final = 0.01
"""The smallest timeout accepted, in seconds."""

MAX_TIMEOUT: Final = 3600.0
"""The largest timeout (and grace, and import timeout) accepted, in seconds."""

DEFAULT_IMPORT_TIMEOUT: Final = 60.0
"""The default time a worker has to import and validate the target, in seconds."""


def default_grace(timeout: float) -> float:
    """How long a target gets to react to a cancellation: ``min(0.5, max(0.05, timeout / 4))`` seconds."""
    return min(0.5, max(0.05, timeout / 4))


def run_check(
    check: Check,
    target: object,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    grace: float | None = None,
    messages: Sequence[object] | str | None = None,
    target_name: str | None = None,
    import_timeout: float = DEFAULT_IMPORT_TIMEOUT,
) -> CheckResult:
    """Run one check against ``target`` in a worker process and return its result.

    :param target: an object of the check's kind, a validated target, or a ``"module:attribute"`` string.
    :param timeout: the check's budget in seconds (:data:`MIN_TIMEOUT` to :data:`MAX_TIMEOUT`).
    :param grace: see the module docstring; default :func:`default_grace`.
    :param messages: the prompt for engine checks (a sequence of messages, or ``"module:attribute"`` naming
        one or a zero-argument callable returning one); default :data:`~lmstream.conformance.STANDARD_PROMPT`.
    :param target_name: how to name the target in messages and reproduction snippets.
    :param import_timeout: seconds the worker has to import and validate the target.
    :raises TargetError: when ``target`` cannot be imported or is not a valid target of the check's kind.
    :raises ValueError: for a timeout, grace or import timeout out of range.
    :raises RuntimeError: when called from a running event loop (call it from synchronous code), or from
        inside a worker process (by the target being checked).
    :raises KeyboardInterrupt: when the user interrupted the run (the worker is killed first).
    """
    report = _run(
        check.kind,
        target,
        [check],
        timeout=timeout,
        grace=grace,
        messages=messages,
        target_name=target_name,
        import_timeout=import_timeout,
    )
    if report.interrupted or not report.results:
        raise KeyboardInterrupt
    return report.results[0]


def run_checks(
    kind: TargetKind,
    target: object,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    grace: float | None = None,
    select: str | Callable[[Check], bool] | None = None,
    messages: Sequence[object] | str | None = None,
    target_name: str | None = None,
    checks: Iterable[Check] | None = None,
    import_timeout: float = DEFAULT_IMPORT_TIMEOUT,
    keep_partial: bool = False,
) -> Report:
    """Run every check of ``kind`` (or those ``select`` keeps) against ``target``; return the report.

    :param select: a ``-k`` expression (see :mod:`lmstream.conformance.selection`) or a predicate.
    :param checks: the checks to choose from; default every registered check of ``kind``.
    :param messages: as for :func:`run_check`.
    :param keep_partial: on a ``KeyboardInterrupt``, return the checks that ended before it (with
        the report's ``interrupted`` set) instead of raising it.
    :raises TargetError: when ``target`` is not a valid target of this kind, or ``messages`` cannot be
        loaded.
    :raises SelectionError: when ``select`` is a malformed expression.
    :raises ValueError: for a timeout, grace or import timeout out of range.
    :raises KeyboardInterrupt: when the user interrupted the run (the worker is killed first), unless
        ``keep_partial``.
    """
    keep = compile_selection(select) if isinstance(select, str) else select
    chosen = [c for c in (checks_for(kind) if checks is None else checks) if c.kind is kind]
    if keep is not None:
        chosen = [c for c in chosen if keep(c)]
    report = _run(
        kind,
        target,
        chosen,
        timeout=timeout,
        grace=grace,
        messages=messages,
        target_name=target_name,
        import_timeout=import_timeout,
    )
    if report.interrupted and not keep_partial:
        raise KeyboardInterrupt
    return report


def _run(
    kind: TargetKind,
    target: object,
    chosen: Sequence[Check],
    *,
    timeout: float,
    grace: float | None,
    messages: Sequence[object] | str | None,
    target_name: str | None,
    import_timeout: float,
) -> Report:
    """Run ``chosen``; an interrupted run comes back with ``interrupted`` set."""
    require_sync("lmstream checks (run_check, run_checks)")
    if in_a_worker():  # e.g. a target module that runs the suite on itself when imported
        raise RuntimeError(
            "lmstream checks cannot run inside a worker process of the suite: the target (its import or "
            "its code) called run_check() or run_checks()"
        )
    timeout = _seconds(timeout, "timeout", MIN_TIMEOUT)
    grace = default_grace(timeout) if grace is None else _seconds(grace, "grace", 0.0)
    import_timeout = _seconds(import_timeout, "import timeout", MIN_TIMEOUT)
    run = supervise(
        kind=kind,
        target=target,
        target_name=target_name,
        checks=chosen,
        timeout=timeout,
        grace=grace,
        messages=messages,
        import_timeout=import_timeout,
    )
    messages_once = once_per_run([r.message for r in run.results])  # a library's leftovers: one note per run
    results = tuple(
        replace(r, message=m) if m != r.message else r
        for r, m in zip(run.results, messages_once, strict=True)
    )
    return Report(
        kind=kind,
        target=target_name or run.name,
        results=results,
        stdout=run.stdout,
        stderr=run.stderr,
        interrupted=run.interrupted,
    )


def _seconds(value: object, what: str, least: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"the {what} must be a number of seconds, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not least <= number <= MAX_TIMEOUT:
        low = f"{least:g}" if least else "0"
        raise ValueError(
            f"the {what} must be a finite number of seconds from {low} to {MAX_TIMEOUT:g}, got {value!r}"
        )
    return number
