"""The data model every front-end shares: checks, their outcomes, and a run's report.

A :class:`Check` is one async function that verifies one requirement of the registry against one target
(an engine or a manager factory). The CLI, the pytest plugin and the docs all read the same
:data:`~lmstream.conformance.checks.CHECKS`; there is one implementation of each check.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from lmstream.spec import SPEC_VERSION, Level, Requirement, get_requirement

from .links import spec_url

__all__ = [
    "SUITE_VERSION",
    "Check",
    "CheckFailure",
    "CheckResult",
    "CheckSkipped",
    "Outcome",
    "Report",
    "TargetKind",
    "format_failure",
]

SUITE_VERSION: Final = "1.0.0"
"""The version of this conformance suite (reports carry it beside the spec version)."""


class TargetKind(str, enum.Enum):
    """What a check examines: an engine, a manager factory, or a round-stream factory."""

    ENGINE = "engine"
    MANAGER = "manager"
    ROUND = "round"

    def __str__(self) -> str:
        return self.value


class Outcome(str, enum.Enum):
    """How one check ended."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


def format_failure(requirement_id: str, observed: str, expected: str | None = None) -> str:
    """The message of a failed result: ``expected:``, ``observed:`` and ``spec:`` lines."""
    requirement = get_requirement(requirement_id)
    return "\n".join(
        [
            f"expected: {expected or requirement.statement}",
            f"observed: {observed}",
            f"spec: {spec_url(requirement_id)}",
        ]
    )


class CheckFailure(Exception):
    """Raised inside a check: the target broke the requirement.

    :param observed: what the target did (items seen, exception and where, how long it waited).
    :param expected: what the requirement says should have happened; defaults to the statement's gist.
    :param reproduction: a short snippet an author can paste into a test to see the failure.
    """

    def __init__(
        self, observed: str, *, expected: str | None = None, reproduction: str | None = None
    ) -> None:
        self.observed = observed
        self.expected = expected
        self.reproduction = reproduction
        super().__init__(observed)


class CheckSkipped(Exception):
    """Raised inside a check: the requirement does not apply to this target (the reason says why)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Check:
    """One conformance check: an async function verifying one requirement against one kind of target.

    :param name: a stable snake_case name, unique within its kind (pytest test names use it).
    :param requirement_id: the registry ID the check verifies.
    :param kind: engine, manager or round.
    :param run: ``async def run(target, context) -> None``; raises :class:`CheckFailure` or
        :class:`CheckSkipped`, returns normally on a pass. ``target`` is the validated target (an
        :class:`~lmstream.conformance.targets.EngineTarget`, ``ManagerTarget`` or ``RoundTarget``) and
        ``context`` the :class:`~lmstream.conformance.context.CheckContext` of the run (see
        :mod:`lmstream.conformance.runner`).
    :param summary: one line saying what the check does.
    """

    name: str
    requirement_id: str
    kind: TargetKind
    run: Callable[[Any, Any], Awaitable[None]] = field(repr=False, compare=False)
    summary: str = ""

    def __post_init__(self) -> None:
        get_requirement(self.requirement_id)  # an unknown ID is an error at import time

    @property
    def requirement(self) -> Requirement:
        """The registry entry this check verifies."""
        return get_requirement(self.requirement_id)

    @property
    def level(self) -> Level:
        """The level of the verified requirement."""
        return self.requirement.level

    @property
    def test_name(self) -> str:
        """The collected pytest name: ``test_ES_3_<name>``."""
        return f"test_{self.requirement_id.replace('-', '_')}_{self.name}"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of running one check against one target.

    On a failure ``message`` states what was expected and what was observed and links the spec; on a skip
    it gives the reason; on a pass it is empty or holds notes (informational observations, such as a task
    the target left running). ``reproduction`` is a paste-able snippet for failures, when the check has one.
    ``stdout`` and ``stderr`` hold what the target wrote to those streams during the check (file
    descriptors 1 and 2, its threads and child processes included), bounded as
    :mod:`lmstream.conformance.runner` says; the suite never prints them.
    """

    check: Check
    outcome: Outcome
    message: str = ""
    reproduction: str | None = None
    duration: float = 0.0
    stdout: str = ""
    stderr: str = ""

    @property
    def requirement_id(self) -> str:
        """The ID of the requirement the check verifies."""
        return self.check.requirement_id

    @property
    def level(self) -> Level:
        """The level of that requirement."""
        return self.check.level

    def counts_as_failure(self, *, strict: bool) -> bool:
        """Whether this result makes the run fail: a failed MUST, or a failed SHOULD under ``strict``."""
        if self.outcome is not Outcome.FAILED:
            return False
        return self.level.is_mandatory or (strict and self.level.is_recommended)

    def to_json(self) -> dict[str, object]:
        """The result as the JSON report's ``results`` entry."""
        data: dict[str, object] = {
            "id": self.requirement_id,
            "level": self.level.value,
            "check": self.check.name,
            "outcome": self.outcome.value,
            "message": self.message,
        }
        if self.reproduction:
            data["reproduction"] = self.reproduction
        data["duration"] = round(self.duration, 4)
        data["stdout"] = self.stdout
        data["stderr"] = self.stderr
        return data


@dataclass(frozen=True)
class Report:
    """Every result of one run against one target, with the versions it was judged by.

    ``stdout`` and ``stderr`` are what the target wrote outside any check (while it was imported);
    ``interrupted`` says that the user stopped the run (Ctrl-C): ``results`` then holds the checks that
    ended before, and the run counts as failed.
    """

    kind: TargetKind
    target: str
    results: tuple[CheckResult, ...]
    spec_version: str = SPEC_VERSION
    suite_version: str = SUITE_VERSION
    stdout: str = ""
    stderr: str = ""
    interrupted: bool = False

    def count(self, outcome: Outcome) -> int:
        """How many results have this outcome."""
        return sum(1 for r in self.results if r.outcome is outcome)

    def exit_code(self, *, strict: bool = False) -> int:
        """0 when every MUST passed (and every SHOULD under ``strict``) and the run was not interrupted,
        else 1."""
        failed = self.interrupted or any(r.counts_as_failure(strict=strict) for r in self.results)
        return 1 if failed else 0

    def summary_line(self) -> str:
        """``N passed, N failed, N skipped``."""
        return (
            f"{self.count(Outcome.PASSED)} passed, {self.count(Outcome.FAILED)} failed, "
            f"{self.count(Outcome.SKIPPED)} skipped"
        )

    def to_json(self) -> Mapping[str, object]:
        """The JSON report (the CLI's ``--format json``)."""
        return {
            "kind": self.kind.value,
            "target": self.target,
            "spec_version": self.spec_version,
            "suite_version": self.suite_version,
            "results": [r.to_json() for r in self.results],
            "passed": self.count(Outcome.PASSED),
            "failed": self.count(Outcome.FAILED),
            "skipped": self.count(Outcome.SKIPPED),
            "interrupted": self.interrupted,
            "stdout": self.stdout,
            "stderr": self.stderr,
        }
