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


def _noisy(**report: object) -> Report:
    check = get_check(TargetKind.ENGINE, "items_are_tokens_or_completions")
    lines = "".join(f"line {n}\n" for n in range(1, 9))
    result = CheckResult(
        check, Outcome.FAILED, "expected: x\nobserved: \x1b[31mred\x1b[0m\nspec: z", None, 0.1
    )
    result = CheckResult(
        check, result.outcome, result.message, None, 0.1, stdout=lines, stderr="bell\x07 nul\x00 \ud800"
    )
    return Report(TargetKind.ENGINE, "pkg:Engine", (result,), **report)  # type: ignore[arg-type]


def test_text_shows_the_targets_output_as_a_bounded_note_with_controls_escaped() -> None:
    text = render_text(_noisy(stdout="at import\n"))
    lines = text.splitlines()
    assert lines[1:3] == [
        "note: the target wrote 10 character(s) to stdout outside any check (while it was imported):",
        "    | at import",
    ]
    assert "    observed: \\x1b[31mred\\x1b[0m" in lines
    start = lines.index("    note: the target wrote 56 character(s) to stdout during the check:")
    assert lines[start + 1 : start + 7] == [
        *(f"        | line {n}" for n in range(1, 6)),
        "        | ... 3 more line(s), in the JSON and JUnit reports",
    ]
    assert "        | bell\\x07 nul\\x00 \ud800" in lines
    assert lines[-1] == "0 passed, 1 failed, 0 skipped"
    assert not any(c in text for c in "\x00\x07\x1b")


def test_json_and_junit_carry_the_output_and_junit_always_parses() -> None:
    report = _noisy(stdout="at import\n", stderr="\x00", interrupted=True)
    data = json.loads(render_json(report))
    assert data["results"][0]["stdout"].startswith("line 1\n") and data["interrupted"] is True
    assert (data["stdout"], data["stderr"]) == ("at import\n", "\x00")
    suite = ET.fromstring(render_junit(report)).find("testsuite")
    assert suite is not None
    case = suite.find("testcase")
    assert case is not None
    assert (case.findtext("system-out") or "").startswith("line 1\nline 2")
    assert case.findtext("system-err") == "bell\ufffd nul\ufffd \ufffd"
    failure = case.find("failure")
    assert failure is not None and failure.text is not None and "\ufffd[31mred" in failure.text
    assert suite.findtext("system-out") == "at import\n" and suite.findtext("system-err") == "\ufffd"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["interrupted"] == "true"


def test_an_interrupted_run_never_passes() -> None:
    assert Report(TargetKind.ENGINE, "pkg:Engine", (), interrupted=True).exit_code() == 1
    assert Report(TargetKind.ENGINE, "pkg:Engine", ()).exit_code() == 0
