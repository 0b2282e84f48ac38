"""Every round check (SM-18 to SM-20) fails a deliberately broken round stream on exactly its requirements,
and passes the reference round stream."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lmstream.conformance import (
    CHECKS,
    Check,
    Outcome,
    Report,
    TargetKind,
    checks_for,
    round_target,
    run_checks,
    spec_url,
)
from lmstream.reference import round_stream

from ._mutation_targets import NEW
from ._rounds import BROKEN

pytest_plugins = ["pytester"]

TIMEOUT = 0.3
"""Seconds per check: short, so that the hanging fixtures (kani's managers) cost little."""


def _failed(report: Report) -> set[str]:
    return {r.requirement_id for r in report.results if r.outcome is Outcome.FAILED}


def _dump(report: Report) -> str:
    return "\n" + "\n".join(
        f"{r.requirement_id} {r.check.name} {r.outcome}: {r.message}" for r in report.results
    )


@pytest.fixture(scope="module")
def broken_reports() -> dict[str, Report]:
    """One full round run per broken round stream, shared by the tests below."""
    return {name: run_checks(TargetKind.ROUND, f, timeout=TIMEOUT) for name, (f, _) in BROKEN.items()}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_round_fails_exactly_its_requirements(name: str, broken_reports: dict[str, Report]) -> None:
    report = broken_reports[name]
    assert _failed(report) == BROKEN[name][1], _dump(report)
    for result in report.results:
        if result.outcome is Outcome.FAILED:
            lines = result.message.splitlines()
            assert lines[0].startswith("expected: ") and lines[1].startswith("observed: ")
            assert lines[2] == f"spec: {spec_url(result.requirement_id)}"
            assert result.reproduction is not None


@pytest.mark.parametrize(
    "check", [c for c in checks_for(TargetKind.ROUND) if c not in NEW], ids=lambda c: c.test_name
)
def test_every_round_check_is_shown_failing(check: Check, broken_reports: dict[str, Report]) -> None:
    failing = [
        name
        for name, report in broken_reports.items()
        for r in report.results
        if r.check == check and r.outcome is Outcome.FAILED
    ]
    assert failing, f"no broken round stream fails {check.test_name}"


def test_the_reference_round_stream_passes_every_check() -> None:
    report = run_checks(TargetKind.ROUND, round_stream, timeout=2.0)
    assert [r.outcome for r in report.results] == [Outcome.PASSED] * len(checks_for(TargetKind.ROUND)), _dump(
        report
    )
    assert report.exit_code(strict=True) == 0
    assert [r.message for r in report.results if r.message] == []  # no notes: nothing leaked or warned


def test_round_checks_cover_sm18_to_sm20_and_sm33_in_registry_order() -> None:
    ids = [c.requirement_id for c in CHECKS if c.kind is TargetKind.ROUND]
    assert ids == ["SM-18"] * 3 + ["SM-19"] * 4 + ["SM-20"] * 4 + ["SM-33"]
    assert all(c.requirement.group.name == "ROUND" for c in checks_for(TargetKind.ROUND))


def test_a_scenario_another_requirement_breaks_is_noted_not_failed(broken_reports: dict[str, Report]) -> None:
    """A round that does not drain a skipped manager fails SM-18; the SM-19 and SM-20 scenarios that need a
    drain are left out with a note naming SM-18, never failed on its account."""
    results = {
        r.check.name: r for r in broken_reports["closes a skipped manager instead of draining it"].results
    }
    for name in ("engine_error_ends_the_round", "cancelling_the_consumer_stops_the_current_manager"):
        assert results[name].outcome is Outcome.PASSED
        assert "was not judged: the round did not drain the skipped manager" in results[name].message
        assert "see SM-18" in results[name].message


def test_kani_rounds_hang_and_say_so(broken_reports: dict[str, Report]) -> None:
    results = {r.check.name: r for r in broken_reports["kani's loop and managers"].results}
    error = results["engine_error_ends_the_round"].message
    assert "its engine raised ConnectionResetError('the engine lost its connection')" in error
    assert "the round's next step had not returned after 0.30 s" in error
    stopped = results["stopped_manager_ends_the_round"]
    assert stopped.outcome is Outcome.SKIPPED and "do not offer aclose() (SM-21)" in stopped.message
    assert "manager 1 was not stopped" in results["break_stops_the_current_manager"].message


def test_the_naive_kani_shape_leaves_the_manager_running(broken_reports: dict[str, Report]) -> None:
    results = {r.check.name: r for r in broken_reports["kani's loop over the reference manager"].results}
    message = results["aclose_stops_the_current_manager"].message
    assert "the round was closed with aclose() after reading manager 1's first token" in message
    assert "manager 1's engine stream was not closed (it was being read (1 item so far))" in message


def test_failures_carry_a_paste_able_reproduction(broken_reports: dict[str, Report]) -> None:
    snippets = [
        r.reproduction
        for report in broken_reports.values()
        for r in report.results
        if r.outcome is Outcome.FAILED and r.reproduction
    ]
    assert len(snippets) >= len(BROKEN)
    for snippet in snippets:
        tree = ast.parse(snippet)
        assert snippet.rstrip().endswith("asyncio.run(main())")
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert {"scripted_stream", "ScriptMessage"} <= imported


@pytest.mark.parametrize(
    ("name", "check", "printed"),
    [
        (
            "ends silently on an error",
            "engine_error_ends_the_round",
            "the round's next step raised StopAsyncIteration()",
        ),
        (
            "goes on after an error",
            "incomplete_manager_ends_the_round",
            "the round's next step returned <StreamManager",
        ),
        (
            "closes a skipped manager instead of draining it",
            "skipped_manager_is_drained",
            "the skipped manager's completion() raised StreamIncompleteError",
        ),
    ],
)
def test_a_reproduction_runs_as_pasted(
    broken_reports: dict[str, Report], name: str, check: str, printed: str
) -> None:
    (result,) = [r for r in broken_reports[name].results if r.check.name == check]
    assert result.reproduction is not None
    root = Path(__file__).resolve().parents[2]  # where `conformance.tests._rounds` is importable from
    ran = subprocess.run(
        [sys.executable, "-"], input=result.reproduction, capture_output=True, text=True, cwd=root, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert printed in ran.stdout, ran.stdout


def _not_a_round(next_step: Any, role: object) -> list[object]:
    return []


async def _raises_at_once(next_step: Any, role: object) -> AsyncIterator[object]:
    if role is not None:
        raise RuntimeError("no round today")
    yield role  # pragma: no cover - makes this an async generator


def test_a_round_that_is_no_async_iterator_fails_sm18_and_skips_the_rest() -> None:
    report = run_checks(TargetKind.ROUND, _not_a_round, timeout=TIMEOUT)
    assert _failed(report) == {"SM-18"}, _dump(report)  # the others cannot judge a round that never starts
    assert {r.outcome for r in report.results if r.requirement_id != "SM-18"} == {Outcome.SKIPPED}
    first = next(r for r in report.results if r.check.name == "managers_follow_the_steps")
    assert "returned list [], which has no __anext__()" in first.message


def test_a_round_that_raises_at_once_fails_sm18_and_skips_the_rest() -> None:
    report = run_checks(TargetKind.ROUND, _raises_at_once, timeout=TIMEOUT)
    assert _failed(report) == {"SM-18"}, _dump(report)
    assert {r.outcome for r in report.results if r.requirement_id != "SM-18"} == {Outcome.SKIPPED}
    first = next(r for r in report.results if r.check.name == "managers_follow_the_steps")
    assert "RuntimeError('no round today')" in first.message


def test_round_targets_are_validated_by_signature() -> None:
    assert round_target(round_stream).name == "lmstream.reference.rounds:round_stream"


def test_the_plugin_collects_one_test_per_round_check(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_rounds=textwrap.dedent(
            """
            from lmstream.conformance import RoundConformance
            from lmstream.reference import round_stream

            class TestReferenceRound(RoundConformance):
                factory = round_stream
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(checks_for(TargetKind.ROUND)))
