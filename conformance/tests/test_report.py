"""The text, JSON and JUnit renderings of a report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from lmstream.conformance import (
    SUITE_VERSION,
    CheckResult,
    Outcome,
    Report,
    TargetKind,
    get_check,
    render_json,
    render_junit,
    render_text,
)
from lmstream.spec import SPEC_VERSION


def _report() -> Report:
    def result(name: str, outcome: Outcome, message: str = "", repro: str | None = None) -> CheckResult:
        return CheckResult(get_check(TargetKind.ENGINE, name), outcome, message, repro, 0.01)

    return Report(
        TargetKind.ENGINE,
        "pkg:Engine",
        (
            result("returns_async_iterable", Outcome.PASSED),
            result(
                "at_most_one_completion_last", Outcome.FAILED, "expected: x\nobserved: y\nspec: z", "print(1)"
            ),
            result("token_counts_are_valid", Outcome.SKIPPED, "no completion"),
            result("completion_text_is_token_text", Outcome.FAILED, "expected: a\nobserved: b\nspec: c"),
            result("a_completion_alone_is_a_stream", Outcome.PASSED, "note: 3 tokens"),
        ),
    )


def test_text() -> None:
    text = render_text(_report())
    assert text.splitlines() == [
        f"lmstream conformance suite {SUITE_VERSION} (spec {SPEC_VERSION}): engine pkg:Engine",
        "ES-1   MUST       passed  returns_async_iterable",
        "ES-3   MUST       failed  at_most_one_completion_last",
        "    expected: x",
        "    observed: y",
        "    spec: z",
        "    reproduction:",
        "        print(1)",
        "ES-4   MUST       skipped token_counts_are_valid",
        "    no completion",
        "ES-9   SHOULD     failed  completion_text_is_token_text"
        "  [SHOULD not met: fails the run only with --strict]",
        "    expected: a",
        "    observed: b",
        "    spec: c",
        "ES-11  MAY        passed  a_completion_alone_is_a_stream",
        "    note: 3 tokens",
        "2 passed, 2 failed, 1 skipped",
    ]
    assert "[SHOULD not met" not in render_text(_report(), strict=True)


def test_json() -> None:
    data = json.loads(render_json(_report()))
    assert data["kind"] == "engine" and data["target"] == "pkg:Engine"
    assert (data["passed"], data["failed"], data["skipped"]) == (2, 2, 1)
    assert (data["spec_version"], data["suite_version"]) == (SPEC_VERSION, SUITE_VERSION)
    assert data["results"][1] == {
        "id": "ES-3",
        "level": "MUST",
        "check": "at_most_one_completion_last",
        "outcome": "failed",
        "message": "expected: x\nobserved: y\nspec: z",
        "reproduction": "print(1)",
        "duration": 0.01,
        "stdout": "",
        "stderr": "",
    }
    assert (data["interrupted"], data["stdout"], data["stderr"]) == (False, "", "")


def test_junit() -> None:
    for strict, failures, skipped in ((False, "1", "2"), (True, "2", "1")):
        root = ET.fromstring(render_junit(_report(), strict=strict))
        suite = root.find("testsuite")
        assert suite is not None
        assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", failures, skipped)
        cases = {c.get("name"): c for c in suite.iter("testcase")}
        failure = cases["test_ES_3_at_most_one_completion_last"].find("failure")
        assert (
            failure is not None
            and failure.get("message") == "ES-3 (MUST): at most one completion, and it is last"
        )
        assert failure.text is not None and "reproduction:\nprint(1)" in failure.text
        should = cases["test_ES_9_completion_text_is_token_text"]
        assert (should.find("failure") is not None) is strict
        assert should.find("skipped") is not None or strict
        assert cases["test_ES_1_returns_async_iterable"].find("failure") is None
