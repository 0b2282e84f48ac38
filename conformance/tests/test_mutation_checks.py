"""The checks mutation testing called for (issue 16): each fails a deliberately broken target on exactly its
requirement, and the conforming targets pass them.

The other check tests (test_manager_checks, test_stop_checks, test_round_checks) run these checks too, on
their own broken and conforming targets; the proof that each of these checks can fail is here.
"""

from __future__ import annotations

import sys

import pytest

from lmstream.conformance import CHECKS, Check, Outcome, Report, TargetKind, run_checks
from lmstream.spec import Group

from ._managers import SIMPLE_MISSES, Simple
from ._mutation_targets import MANAGERS, NEEDS_PY311, NEW, ROUNDS, STOPPABLE
from ._stoppable import MiniManager, judged_passed

TIMEOUT = 1.0
pytestmark = pytest.mark.timeout(300)  # the module's fixture runs some 35 broken targets through the checks
ON_PY311 = sys.version_info >= (3, 11)

_MANAGER_GROUP = tuple(
    c for c in CHECKS if c.kind is TargetKind.MANAGER and c.requirement.group is Group.MANAGER
)
_STOP_GROUP = tuple(c for c in CHECKS if c.kind is TargetKind.MANAGER and c.requirement.group is Group.STOP)


def _failed(report: Report) -> set[str]:
    """The IDs that failed, apart from the checks Simple, the base of the broken managers, fails itself."""
    return {
        r.requirement_id
        for r in report.results
        if r.outcome is Outcome.FAILED and r.check.name not in SIMPLE_MISSES
    }


def _explain(report: Report) -> str:
    lines: list[str] = []
    for r in report.results:
        if r.outcome is not Outcome.PASSED:
            observed = [line for line in r.message.splitlines() if line.startswith("observed: ")]
            lines.append(
                f"{r.requirement_id} {r.check.name} {r.outcome}: {observed[0] if observed else r.message}"
            )
    return "\n" + "\n".join(lines)


@pytest.fixture(scope="module")
def stoppable_checks() -> tuple[Check, ...]:
    """The stop checks, and the manager checks MiniManager passes (those that need a stop among them)."""
    report = run_checks(TargetKind.MANAGER, MiniManager, checks=_MANAGER_GROUP, timeout=TIMEOUT)
    passed = {r.check for r in report.results if r.outcome is Outcome.PASSED}
    return (*_STOP_GROUP, *(c for c in _MANAGER_GROUP if c in passed))


@pytest.fixture(scope="module")
def reports(stoppable_checks: tuple[Check, ...]) -> dict[str, Report]:
    """One run per broken target (those that can break on this Python)."""
    found: dict[str, Report] = {}
    for name, (cls, _) in MANAGERS.items():
        found[name] = run_checks(TargetKind.MANAGER, cls, checks=_MANAGER_GROUP, timeout=TIMEOUT)
    for name, (mini, _) in STOPPABLE.items():
        if ON_PY311 or name not in NEEDS_PY311:
            found[name] = run_checks(TargetKind.MANAGER, mini, checks=stoppable_checks, timeout=TIMEOUT)
    for name, (factory, _) in ROUNDS.items():
        found[name] = run_checks(TargetKind.ROUND, factory, timeout=TIMEOUT)
    return found


_EXPECTED: dict[str, frozenset[str]] = {
    **{name: ids for name, (_, ids) in MANAGERS.items()},
    **{name: ids for name, (_, ids) in STOPPABLE.items()},
    **{name: ids for name, (_, ids) in ROUNDS.items()},
}


@pytest.mark.parametrize("name", sorted(_EXPECTED))
def test_a_broken_target_fails_exactly_its_requirement(name: str, reports: dict[str, Report]) -> None:
    if name not in reports:
        pytest.skip("Python 3.10 has no cancelling()/uncancel() bookkeeping to break")
    report = reports[name]
    assert _failed(report) == _EXPECTED[name], _explain(report)
    failed = [r for r in report.results if r.outcome is Outcome.FAILED]
    assert all(r.message.startswith("expected: ") and r.reproduction for r in failed)


@pytest.mark.parametrize("check", NEW, ids=lambda c: c.test_name)
def test_every_new_check_is_shown_failing(check: Check, reports: dict[str, Report]) -> None:
    """DEVELOPERS.md: every check is shown failing on a deliberately broken implementation."""
    failing = [
        n
        for n, r in reports.items()
        if any(x.check == check and x.outcome is Outcome.FAILED for x in r.results)
    ]
    if not failing and not ON_PY311:
        pytest.skip("on Python 3.10 the breaks this check is shown failing on do not exist")
    assert failing, f"no broken target fails {check.test_name}"


def test_the_new_checks_cover_what_the_issue_names() -> None:
    ids = {c.requirement_id for c in NEW}
    wanted = {"SM-1", "SM-8", "SM-9", "SM-10", "SM-11", "SM-12", "SM-13", "SM-16", "SM-20", "SM-22", "SM-23"}
    wanted |= {"SM-24"}
    wanted |= {"SM-25", "SM-26", "SM-27", "SM-28", "SM-30", "SM-31", "SM-32", "SM-33", "SM-34", "SM-35"}
    assert ids == wanted


@pytest.mark.parametrize(
    ("kind", "target"),
    [
        (TargetKind.MANAGER, "lmstream.reference:StreamManager"),
        (TargetKind.ROUND, "lmstream.reference:round_stream"),
    ],
)
def test_the_reference_passes_every_new_check(kind: TargetKind, target: str) -> None:
    report = run_checks(kind, target, checks=[c for c in NEW if c.kind is kind], timeout=2.0)
    assert all(judged_passed(r) for r in report.results), _explain(report)


def test_the_small_conforming_managers_pass_the_new_checks_of_their_kind(
    stoppable_checks: tuple[Check, ...],
) -> None:
    simple = run_checks(
        TargetKind.MANAGER,
        Simple,
        checks=[c for c in NEW if c in _MANAGER_GROUP and c.name not in SIMPLE_MISSES],
        timeout=2.0,
    )
    assert {r.outcome for r in simple.results} <= {Outcome.PASSED, Outcome.SKIPPED}, _explain(simple)
    mini = run_checks(
        TargetKind.MANAGER, MiniManager, checks=[c for c in NEW if c in stoppable_checks], timeout=2.0
    )
    assert all(judged_passed(r) for r in mini.results), _explain(mini)
