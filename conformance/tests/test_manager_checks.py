"""Every manager check (SM-1 to SM-17) fails a deliberately broken manager on exactly its requirement, and
passes the reference manager and a second, independent conforming one; kani's manager is judged fairly and
in bounded time."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lmstream.conformance import Check, Outcome, Report, TargetKind, checks_for, run_checks, seconds, spec_url
from lmstream.conformance.runner import default_grace
from lmstream.spec import Group

from ._managers import BROKEN, SIMPLE_MISSES, NominalCompletion, Simple
from ._mutation_targets import NEW

TIMEOUT = 0.5
"""Seconds per check: short, so that the managers that strand their waiters cost little (the grace, which
waiters are given once they can be released, is then 0.125 s)."""


def _ours(check: Check) -> bool:
    return check.requirement.group is Group.MANAGER


MANAGER_CHECKS = tuple(c for c in checks_for(TargetKind.MANAGER) if _ours(c))


def _failed(report: Report, *, beyond_simple: bool = False) -> set[str]:
    """The IDs that failed; with ``beyond_simple``, apart from the checks Simple itself fails."""
    return {
        r.requirement_id
        for r in report.results
        if r.outcome is Outcome.FAILED and not (beyond_simple and r.check.name in SIMPLE_MISSES)
    }


def _result(report: Report, name: str) -> str:
    (found,) = [r for r in report.results if r.check.name == name]
    return found.message


def _run(target: object, timeout: float = TIMEOUT) -> Report:
    return run_checks(TargetKind.MANAGER, target, timeout=timeout, select=_ours)


@pytest.fixture(scope="module")
def broken_reports() -> dict[str, Report]:
    """One full manager run per broken manager, shared by the tests below."""
    return {name: _run(cls) for name, (cls, _) in BROKEN.items()}


@pytest.fixture(scope="module")
def kani_report() -> tuple[Report, float]:
    """kani's manager through the whole manager suite at a 1 s budget per check, and the run's wall time."""
    started = time.monotonic()
    report = _run("kani.streaming:StreamManager", timeout=1.0)
    return report, time.monotonic() - started


def test_the_manager_checks_cover_sm1_to_sm17_sm30_sm31_sm35_and_sm36() -> None:
    wanted = {f"SM-{n}" for n in (*range(1, 18), 30, 31, 35, 36)}
    assert {c.requirement_id for c in MANAGER_CHECKS} == wanted


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_manager_fails_exactly_its_requirement(name: str, broken_reports: dict[str, Report]) -> None:
    report = broken_reports[name]
    assert _failed(report, beyond_simple=True) == BROKEN[name][1], "\n" + "\n".join(
        f"{r.requirement_id} {r.check.name} {r.outcome}: {r.message}" for r in report.results
    )
    for result in report.results:
        if result.outcome is Outcome.FAILED:
            lines = result.message.splitlines()
            assert lines[0].startswith("expected: ") and lines[1].startswith("observed: ")
            assert lines[2] == f"spec: {spec_url(result.requirement_id)}"


@pytest.mark.parametrize("check", [c for c in MANAGER_CHECKS if c not in NEW], ids=lambda c: c.test_name)
def test_every_manager_check_is_shown_failing(check: Check, broken_reports: dict[str, Report]) -> None:
    failing = [
        name
        for name, report in broken_reports.items()
        if any(r.check == check and r.outcome is Outcome.FAILED for r in report.results)
    ]
    assert failing, f"no broken manager fails {check.test_name}"


@pytest.mark.parametrize("factory", ["lmstream.reference:StreamManager", Simple], ids=["reference", "simple"])
def test_conforming_managers_pass_every_check_quietly(factory: object) -> None:
    report = _run(factory, timeout=2.0)
    wanted = [
        Outcome.FAILED if factory is Simple and c.name in SIMPLE_MISSES else Outcome.PASSED
        for c in MANAGER_CHECKS
    ]
    assert [r.outcome for r in report.results] == wanted, "\n".join(
        f"{r.requirement_id} {r.check.name}: {r.message}" for r in report.results
    )
    notes = {
        r.check.name: line
        for r in report.results
        if r.outcome is Outcome.PASSED
        for line in r.message.splitlines()
        if "slow callback" not in line  # timing under load (asyncio debug mode), not a leftover
    }
    assert notes == {}  # nothing left running, open or warning


def test_failures_carry_a_paste_able_reproduction(broken_reports: dict[str, Report]) -> None:
    failures = [
        r for report in broken_reports.values() for r in report.results if r.outcome is Outcome.FAILED
    ]
    assert failures
    for result in failures:
        assert result.reproduction, f"{result.check.test_name} failed without a reproduction"
        ast.parse(result.reproduction)
        assert "asyncio.run(main())" in result.reproduction
        assert "from conformance.tests._managers import " in result.reproduction


@pytest.mark.parametrize(
    ("name", "check", "printed"),
    [
        ("strips the built text", "built_completion_is_exact", "'assistant' 'Hello,  world!'"),
        ("reads one item ahead", "no_read_ahead", "items requested from the engine: 2 (expected 1)"),
        ("hangs waiters on an engine error", "engine_error_reaches_consumer_and_waiters", "TimeoutError"),
        ("a finished text split into characters", "finished_message_streams_as_one_token", "' ', 'H'"),
        (
            "leaves the engine open on an early stop",
            "break_releases_everything",
            "engine stream closed: False",
        ),
    ],
)
def test_a_reproduction_runs_as_pasted(
    broken_reports: dict[str, Report], name: str, check: str, printed: str
) -> None:
    (result,) = [r for r in broken_reports[name].results if r.check.name == check]
    assert result.reproduction is not None
    root = Path(__file__).resolve().parents[2]  # where `conformance.tests._managers` is importable from
    ran = subprocess.run(
        [sys.executable, "-"], input=result.reproduction, capture_output=True, text=True, cwd=root, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert printed in ran.stdout, ran.stdout


def test_stranded_waiters_are_reported_within_the_grace(broken_reports: dict[str, Report]) -> None:
    """A manager that never releases its waiters fails within the grace, not after the whole budget, and the
    message says how long the waiters were given and why."""
    report = broken_reports["hangs waiters on an engine error"]
    message = _result(report, "engine_error_reaches_consumer_and_waiters")
    grace = default_grace(TIMEOUT)
    assert "6 waiter(s) (completion() during iteration" in message
    assert f"still waiting {seconds(grace)} after the consumer's loop ended" in message
    assert "the check's grace, capped by its remaining budget" in message
    (result,) = [r for r in report.results if r.check.name == "engine_error_reaches_consumer_and_waiters"]
    assert result.duration < TIMEOUT and grace < TIMEOUT


def test_a_rejected_structural_completion_skips_naming_sm14(broken_reports: dict[str, Report]) -> None:
    report = broken_reports["accepts only its own completion class"]
    skipped = {r.check.name: r.message for r in report.results if r.outcome is Outcome.SKIPPED}
    assert set(skipped) == {
        "engine_completion_is_returned",
        "es3_violation_is_reported",
        "protocol_error_closes_the_engine",  # its ES-3 case, after its ES-2 case passed
    }
    for reason in skipped.values():
        assert "rejected a completion that is a plain dataclass" in reason and "(SM-14" in reason
        assert "TypeError(" in reason
    assert "expected str or Done" in _result(report, "completions_accepted_by_shape")
    assert NominalCompletion in {cls for cls, _ in BROKEN.values()}


def test_sm15_names_the_leftover_task_and_the_warning(broken_reports: dict[str, Report]) -> None:
    task = _result(broken_reports["leaves a task running"], "nothing_left_running_nothing_warns")
    assert "after a full read: task 'simple keepalive'" in task and "was still running" in task
    warning = _result(broken_reports["a coroutine never awaited"], "nothing_left_running_nothing_warns")
    assert "RuntimeWarning: coroutine 'sleep' was never awaited" in warning


def test_sm17_is_skipped_without_from_message() -> None:
    report = run_checks(TargetKind.MANAGER, "lmstream.reference:StreamManager", select="SM-17")
    assert [r.outcome for r in report.results] == [Outcome.PASSED]

    def factory(stream_iter: Any, role: Any, *, after: Any = None, lock: Any = None) -> Simple:
        return Simple(stream_iter, role, after=after, lock=lock)

    skipped = run_checks(TargetKind.MANAGER, factory, select="SM-17").results[0]
    assert skipped.outcome is Outcome.SKIPPED
    assert "has no from_message(message) constructor" in skipped.message
    assert "kani.streaming.DummyStream" in skipped.message


# ------------------------------------------------------------------------------------------------- kani
KANI_FAILS = {"SM-3", "SM-4", "SM-8", "SM-9", "SM-10", "SM-11", "SM-13", "SM-14", "SM-30", "SM-31"}
KANI_SKIPS = {
    "engine_completion_is_returned",
    "es3_violation_is_reported",
    "finished_message_streams_as_one_token",
    "from_message_manager_has_the_message_role",
}


def test_kani_fails_exactly_what_it_breaks(kani_report: tuple[Report, float]) -> None:
    report, _ = kani_report
    assert _failed(report) == KANI_FAILS, "\n".join(
        f"{r.requirement_id}: {r.message}" for r in report.results
    )
    assert {r.check.name for r in report.results if r.outcome is Outcome.SKIPPED} == KANI_SKIPS
    passed = {r.requirement_id for r in report.results if r.outcome is Outcome.PASSED}
    assert {"SM-1", "SM-2", "SM-5", "SM-6", "SM-7", "SM-12", "SM-15", "SM-16"} <= passed


def test_kani_failures_say_what_kani_does(kani_report: tuple[Report, float]) -> None:
    report, _ = kani_report
    built = _result(report, "built_completion_is_exact")
    assert "its message's text is 'Hello,  world!', not ' Hello,  world!\\n  ' (the text stripped)" in built
    assert "ChatRole.ASSISTANT" in built
    again = _result(report, "second_iteration_raises_consumed")
    assert "RuntimeError('This stream has already been consumed." in again
    assert "a RuntimeError, but not lmstream.spec.StreamConsumedError" in again
    shape = _result(report, "completions_accepted_by_shape")
    assert 'TypeError("Expected yielded value from stream iterable to be `str` or `BaseCompletion`' in shape
    hangs = [
        "engine_error_reaches_consumer_and_waiters",
        "engine_error_reaches_waiters_without_consumer",
        "break_releases_everything",
        "aclose_releases_everything",
        "raise_in_loop_body_releases_everything",
        "cancellation_in_the_engine_releases_everything",
        "after_error_reaches_everyone",
    ]
    for name in hangs:
        assert "still waiting 0.25 s after" in _result(report, name), name
    assert "the engine stream was still open" in _result(report, "break_releases_everything")
    skipped = _result(report, "finished_message_streams_as_one_token")
    assert "kani.streaming.DummyStream" in skipped


def test_kani_is_judged_in_bounded_time(kani_report: tuple[Report, float]) -> None:
    """Every hang is reported within the grace (0.25 s at a 1 s budget), never by exhausting the budget; the
    whole run stays within the documented bound N x (T + G)."""
    report, elapsed = kani_report
    assert all(r.duration < 1.0 for r in report.results), [(r.check.name, r.duration) for r in report.results]
    assert elapsed < len(report.results) * (1.0 + default_grace(1.0))
