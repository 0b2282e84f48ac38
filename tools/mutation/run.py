"""Running mutants through the conformance suite, each in a copy of its own, each bounded.

For one mutant, :func:`run_mutant` copies the reference package into a fresh temporary directory, writes
the mutated file there, and runs ``python -m lmstream.conformance check KIND TARGET --format json`` for
the manager and the round suite with that directory alone on ``PYTHONPATH`` (``lmstream`` is a namespace
package: the copy's ``lmstream.reference`` shadows the installed one, while ``lmstream.spec`` and
``lmstream.conformance`` stay the installed ones). The first suite in which a check fails, MUST or SHOULD,
kills the mutant and the other is not run (the reference keeps every SHOULD, so a mutant that breaks one
changed what the suite checks: the run is ``--strict``). The suites of one mutant share one bound
(:func:`bound_for`): a suite still running then is killed with its whole process group (the suite may run
checks in processes of its own), and the
mutant counts as *killed by timeout*. :func:`run_mutants` runs mutants ``jobs`` at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from .mutants import REFERENCE_DIR, Mutant

__all__ = [
    "MIN_BOUND",
    "SUITES",
    "Outcome",
    "SuiteRun",
    "Verdict",
    "baseline",
    "bound_for",
    "copy_package",
    "run_mutant",
    "run_mutants",
    "sample",
]

SUITES: Final[dict[str, str]] = {
    "manager": "lmstream.reference:StreamManager",
    "round": "lmstream.reference:round_stream",
}
"""The suites every mutant runs through: kind -> target."""

MIN_BOUND: Final = 10.0
"""The least bound of one mutant's suites, in seconds (see :func:`bound_for`)."""

BOUND_FACTOR: Final = 15.0
"""A mutant's suites may take this many times as long as the unmutated reference's."""

Outcome = Literal["killed", "timeout", "survived"]


@dataclass(frozen=True)
class SuiteRun:
    """One run of one suite.

    :ivar exit_code: the command's status, ``None`` when it was killed at the bound.
    :ivar failed: the checks that failed (any level), as ``SM-24 stop_ends_a_loop_blocked_in_the_engine``.
    :ivar error: the last line the command wrote on stderr, when it exited neither 0 nor 1.
    """

    kind: str
    exit_code: int | None
    failed: tuple[str, ...]
    seconds: float
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        """``manager: SM-24 stop_ends_..., SM-22 ... (+3 more)`` or how the run ended."""
        if self.exit_code is None:
            return f"{self.kind}: still running at the bound, killed after {self.seconds:.1f} s"
        if self.exit_code == 0:
            return f"{self.kind}: passed"
        if self.exit_code == 1 and self.failed:
            shown = ", ".join(self.failed[:3])
            more = f" (+{len(self.failed) - 3} more)" if len(self.failed) > 3 else ""
            return f"{self.kind}: {shown}{more}"
        return f"{self.kind}: the suite could not run (exit {self.exit_code}): {self.error or 'no message'}"


@dataclass(frozen=True)
class Verdict:
    """What the suites made of one mutant."""

    mutant: Mutant
    outcome: Outcome
    runs: tuple[SuiteRun, ...]
    seconds: float

    def describe(self) -> str:
        return "; ".join(run.describe() for run in self.runs)


def suite_order(mutant: Mutant) -> tuple[str, ...]:
    """The suites in the order that kills the mutant soonest (the round suite first for ``rounds.py``)."""
    return ("round", "manager") if mutant.file == "rounds.py" else ("manager", "round")


def run_suite(
    kind: str, root: Path, timeout: float, python: str = sys.executable, suite: Path | None = None
) -> SuiteRun:
    """Run one suite with ``root`` first on ``PYTHONPATH``, for at most ``timeout`` seconds.

    :param suite: a directory holding another ``lmstream/conformance`` to run instead of the installed one
        (an older suite, to measure what it caught), placed after ``root``.
    """
    command = [
        python,
        "-m",
        "lmstream.conformance",
        "check",
        kind,
        SUITES[kind],
        "--strict",
        "--format",
        "json",
    ]
    path = os.pathsep.join([str(root), *([str(suite)] if suite is not None else [])])
    env = {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    with _RUNNING_LOCK:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: killed whole at the bound
        )
        _RUNNING.add(process)
    try:
        out, err = process.communicate(timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        return SuiteRun(kind, None, (), time.monotonic() - started)
    finally:
        _kill_group(process)  # whatever the suite left behind in its group
        with _RUNNING_LOCK:
            _RUNNING.discard(process)
    seconds = time.monotonic() - started
    if process.returncode not in (0, 1):
        lines = [line for line in err.splitlines() if line.strip()]
        return SuiteRun(kind, process.returncode, (), seconds, lines[-1].strip() if lines else "")
    return SuiteRun(kind, process.returncode, _failed_checks(out), seconds)


_RUNNING: set[subprocess.Popen[str]] = set()
_RUNNING_LOCK = threading.Lock()


def stop_running() -> None:
    """Kill every suite still running (the runner was interrupted): nothing is left behind."""
    with _RUNNING_LOCK:
        for process in _RUNNING:
            _kill_group(process)


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(process.pid, signal.SIGKILL)


def _failed_checks(report: str) -> tuple[str, ...]:
    try:
        data = json.loads(report)
        return tuple(f"{r['id']} {r['check']}" for r in data["results"] if r["outcome"] == "failed")
    except (ValueError, KeyError, TypeError):
        return ("(the report was not the JSON expected)",)


def copy_package(root: Path, mutant: Mutant | None) -> None:
    package = root / "lmstream" / "reference"
    shutil.copytree(REFERENCE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    if mutant is not None:
        path = package / mutant.file
        path.write_text(mutant.apply(path.read_text(encoding="utf-8")), encoding="utf-8")


def run_mutant(
    mutant: Mutant | None, *, bound: float, python: str = sys.executable, suite: Path | None = None
) -> Verdict | SuiteRun:
    """Run one mutant (``None``: the unmutated reference) through the suites, within ``bound`` seconds.

    Returns the :class:`Verdict` of a mutant; for ``None``, the first suite run that did not pass, or the
    last one when both passed.
    """
    started = time.monotonic()
    runs: list[SuiteRun] = []
    with tempfile.TemporaryDirectory(prefix="lmstream-mutant-") as directory:
        root = Path(directory)
        copy_package(root, mutant)
        order = suite_order(mutant) if mutant is not None else tuple(SUITES)
        for kind in order:
            run = run_suite(kind, root, bound - (time.monotonic() - started), python, suite)
            runs.append(run)
            if not run.passed:
                break
    seconds = time.monotonic() - started
    if mutant is None:
        return runs[-1]
    last = runs[-1]
    outcome: Outcome = "survived" if last.passed else "timeout" if last.exit_code is None else "killed"
    return Verdict(mutant, outcome, tuple(runs), seconds)


def baseline(*, bound: float = 120.0, python: str = sys.executable, suite: Path | None = None) -> float:
    """Run the unmutated reference through the suites; how long they took, in seconds.

    :raises RuntimeError: when the reference itself does not pass (nothing could be judged).
    """
    started = time.monotonic()
    run = run_mutant(None, bound=bound, python=python, suite=suite)
    assert isinstance(run, SuiteRun)
    if not run.passed:
        raise RuntimeError(f"the unmutated reference does not pass the suite: {run.describe()}")
    return time.monotonic() - started


def bound_for(baseline_seconds: float) -> float:
    """The bound of one mutant's suites: :data:`BOUND_FACTOR` times the reference's, at least
    :data:`MIN_BOUND` (a mutant that makes the suite wait out its per-check budgets is killed anyway)."""
    return max(MIN_BOUND, BOUND_FACTOR * baseline_seconds)


def run_mutants(
    mutants: Sequence[Mutant],
    *,
    jobs: int,
    bound: float,
    python: str = sys.executable,
    suite: Path | None = None,
    progress: Callable[[Verdict], None] | None = None,
) -> list[Verdict]:
    """Run ``mutants`` ``jobs`` at a time; their verdicts, in the order of ``mutants``."""

    def one(mutant: Mutant) -> Verdict:
        verdict = run_mutant(mutant, bound=bound, python=python, suite=suite)
        assert isinstance(verdict, Verdict)
        if progress is not None:
            progress(verdict)
        return verdict

    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="mutant")
    try:
        return list(pool.map(one, mutants))
    except BaseException:  # interrupted: run nothing more, and leave no suite running
        pool.shutdown(wait=False, cancel_futures=True)
        stop_running()
        raise
    finally:
        pool.shutdown(wait=True)


def sample(mutants: Iterable[Mutant], size: int) -> list[Mutant]:
    """A fixed sample: the ``size`` mutants whose IDs hash lowest (so the same code gives the same sample,
    and an edit changes only the mutants it touches), in their original order."""
    every = list(mutants)
    chosen = set(
        sorted(range(len(every)), key=lambda i: hashlib.sha256(every[i].id.encode()).digest())[:size]
    )
    return [m for i, m in enumerate(every) if i in chosen]


def source_digest(files: Iterable[str]) -> str:
    """A digest of the mutated files as they are now (tells whether published results are current)."""
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode())
        digest.update((REFERENCE_DIR / name).read_bytes())
    return digest.hexdigest()[:16]
