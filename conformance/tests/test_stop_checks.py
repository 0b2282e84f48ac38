"""Every stop check (SM-21 to SM-29) fails a deliberately broken stoppable manager on exactly its
requirement, passes the reference manager and this suite's own small stoppable manager, and skips every
stop requirement of kani's manager, which has no aclose(), failing only the SHOULD SM-21."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from kani.streaming import StreamManager as KaniStreamManager

from lmstream.conformance import Check, Outcome, Report, TargetKind, checks_for, run_checks, spec_url
from lmstream.conformance.checks._stop_support import NO_ACLOSE
from lmstream.conformance.cli import main
from lmstream.reference import StreamManager
from lmstream.spec import Group, Level, select_requirements

from ._mutation_targets import NEW
from ._stoppable import BROKEN, NEEDS_PY311, ON_PY311, MiniManager, PlainAclose, judged_passed

STOP_CHECKS: tuple[Check, ...] = tuple(
    c for c in checks_for(TargetKind.MANAGER) if c.requirement.group is Group.STOP
)
STOP_IDS = [r.id for r in select_requirements(group=Group.STOP)]
SELECT_STOP = " or ".join(STOP_IDS)
"""A ``-k`` expression that selects exactly the stop checks."""

TIMEOUT = 1.0
"""Seconds per check: the checks' own bounds are far shorter (0.1 s for what must happen at once)."""

ROOT = Path(__file__).resolve().parents[2]
"""Where ``conformance.tests._stoppable`` is importable from (reproductions name broken managers so)."""


def _failed(report: Report) -> set[str]:
    return {r.requirement_id for r in report.results if r.outcome is Outcome.FAILED}


def _explain(report: Report) -> str:
    return "\n" + "\n".join(
        f"{r.requirement_id} {r.check.name} {r.outcome}: {r.message}" for r in report.results
    )


@pytest.fixture(scope="module")
def broken_reports() -> dict[str, Report]:
    """One run of the stop checks per broken manager (those that can break on this Python)."""
    return {
        name: run_checks(TargetKind.MANAGER, cls, checks=STOP_CHECKS, timeout=TIMEOUT)
        for name, (cls, _) in BROKEN.items()
        if ON_PY311 or name not in NEEDS_PY311
    }


def test_the_stop_checks_cover_every_stop_requirement_in_order() -> None:
    assert [c.requirement_id for c in STOP_CHECKS] == sorted(
        (c.requirement_id for c in STOP_CHECKS), key=STOP_IDS.index
    )
    assert {c.requirement_id for c in STOP_CHECKS} == set(STOP_IDS)
    assert all(c.summary and "\n" not in c.summary for c in STOP_CHECKS)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_manager_fails_exactly_its_requirement(name: str, broken_reports: dict[str, Report]) -> None:
    if name not in broken_reports:
        pytest.skip("Python 3.10 has no cancelling()/uncancel() bookkeeping to break")
    report = broken_reports[name]
    assert _failed(report) == BROKEN[name][1], _explain(report)
    for result in report.results:
        if result.outcome is Outcome.FAILED:
            lines = result.message.splitlines()
            assert lines[0].startswith("expected: ") and lines[1].startswith("observed: ")
            assert lines[2] == f"spec: {spec_url(result.requirement_id)}"
        else:
            assert judged_passed(result), _explain(report)  # nothing skipped: all were judged


@pytest.mark.parametrize("check", [c for c in STOP_CHECKS if c not in NEW], ids=lambda c: c.test_name)
def test_every_stop_check_is_shown_failing(check: Check, broken_reports: dict[str, Report]) -> None:
    """DEVELOPERS.md: every check is shown failing on a deliberately broken implementation."""
    failing = [
        name
        for name, report in broken_reports.items()
        if any(r.check == check and r.outcome is Outcome.FAILED for r in report.results)
    ]
    if not failing and not ON_PY311 and check.name == "real_cancellation_still_propagates":
        pytest.skip("on Python 3.10 only a real cancellation arriving first is tried, and none swallows it")
    assert failing, f"no broken manager fails {check.test_name}"


@pytest.mark.parametrize("factory", [StreamManager, MiniManager], ids=["reference", "mini"])
def test_conforming_managers_pass_every_stop_check(factory: object) -> None:
    report = run_checks(TargetKind.MANAGER, factory, checks=STOP_CHECKS, timeout=2.0)
    assert all(judged_passed(r) for r in report.results), _explain(report)
    notes = {r.check.name: r.message for r in report.results if r.message}
    if ON_PY311:
        assert notes == {}, notes  # nothing leaked, warned, or needed the engine released
    else:
        assert all("Python 3.10" in message for message in notes.values()), notes
    assert report.exit_code(strict=True) == 0


def test_an_aclose_that_is_a_plain_method_returning_a_coroutine_is_judged_by_behaviour() -> None:
    report = run_checks(TargetKind.MANAGER, PlainAclose, checks=STOP_CHECKS, timeout=2.0)
    assert all(judged_passed(r) for r in report.results), _explain(report)
    (should, *_) = report.results
    assert (
        should.message == "note: aclose() is not a coroutine function, but it returns an awaitable: accepted"
    )


def test_kani_fails_only_the_should_and_every_stop_check_is_skipped() -> None:
    report = run_checks(TargetKind.MANAGER, KaniStreamManager, checks=STOP_CHECKS, timeout=TIMEOUT)
    (should, *rest) = report.results
    assert should.requirement_id == "SM-21" and should.level is Level.SHOULD
    assert should.outcome is Outcome.FAILED
    assert "it has no aclose(); it has no state" in should.message
    assert [(r.outcome, r.message) for r in rest] == [(Outcome.SKIPPED, NO_ACLOSE)] * (len(STOP_CHECKS) - 1)
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1


def test_kani_on_the_command_line_fails_only_under_strict(capsys: pytest.CaptureFixture[str]) -> None:
    target = "kani.streaming:StreamManager"
    assert main(["check", "manager", target, "-k", SELECT_STOP]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == f"0 passed, 1 failed, {len(STOP_CHECKS) - 1} skipped"
    assert main(["check", "manager", target, "-k", SELECT_STOP, "--strict"]) == 1
    capsys.readouterr()
    assert main(["check", "manager", target, "-k", SELECT_STOP, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    skipped = [r for r in data["results"] if r["outcome"] == "skipped"]
    assert {r["id"] for r in skipped} == set(STOP_IDS) - {"SM-21"}
    assert {r["message"] for r in skipped} == {NO_ACLOSE}


def test_a_stop_that_waits_for_the_engine_says_what_it_waited_for(broken_reports: dict[str, Report]) -> None:
    report = broken_reports["waits for the engine's next item"]
    (result,) = [r for r in report.results if r.check.name == "stop_ends_a_loop_blocked_in_the_engine"]
    assert "the consumer's loop had not ended 0.10 s later: the stop waited for the engine's next item" in (
        result.message
    )
    assert "once the check released the engine" in result.message
    # What Python 3.10 cannot judge is noted on every run there; it is not about this manager.
    messages = {
        r.check.name: "\n".join(line for line in r.message.splitlines() if "Python 3.10" not in line)
        for r in report.results
        if r.requirement_id != "SM-24"
    }
    others = [m for m in messages.values() if m]
    assert others and all("SM-24's check reports it" in m or "(SM-24)" in m for m in others)


def test_failures_carry_a_paste_able_reproduction(broken_reports: dict[str, Report]) -> None:
    failed = [r for report in broken_reports.values() for r in report.results if r.outcome is Outcome.FAILED]
    assert failed and all(r.reproduction for r in failed)
    for result in failed:
        assert result.reproduction is not None
        ast.parse(result.reproduction)
        assert result.reproduction.rstrip().endswith("asyncio.run(main())")
        assert "from conformance.tests._stoppable import" in result.reproduction


@pytest.mark.parametrize(
    ("name", "check", "broken", "conforming"),
    [
        ("leaves the lock held", "aclose_from_fifty_tasks_at_once", "lock held: True", "lock held: False"),
        (
            "loses the partial text",
            "incomplete_error_says_why_and_what",
            "'héllo \\n' ''",
            "'héllo \\n' 'héllo",
        ),
        (
            "a stop before iteration reads the engine",
            "stop_before_iteration_reads_nothing",
            "requests: 1",
            "requests: 0",
        ),
    ],
)
def test_a_reproduction_shows_the_difference_as_pasted(
    broken_reports: dict[str, Report], name: str, check: str, broken: str, conforming: str
) -> None:
    (result,) = [r for r in broken_reports[name].results if r.check.name == check]
    assert result.reproduction is not None
    cls = BROKEN[name][0].__name__
    reference = result.reproduction.replace(
        f"from conformance.tests._stoppable import {cls}",
        f"from lmstream.reference import StreamManager as {cls}",
    )
    for snippet, expected in ((result.reproduction, broken), (reference, conforming)):
        ran = subprocess.run(
            [sys.executable, "-"], input=snippet, capture_output=True, text=True, cwd=ROOT, timeout=60
        )
        assert ran.returncode == 0, ran.stderr
        assert expected in ran.stdout, ran.stdout
