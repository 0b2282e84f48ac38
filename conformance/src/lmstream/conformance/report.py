"""Render a :class:`~lmstream.conformance.model.Report` as text, JSON or JUnit XML.

* Text: a header naming the suite and spec versions and the target; a line saying the run was
  interrupted, when it was; what the target wrote while it was imported, as a note; one line per check
  (requirement ID, level, outcome, check name); under a failure its message (``expected:``, ``observed:``,
  ``spec:`` link) and reproduction, indented; under a skip its reason; under a pass its notes, if any;
  then what the target wrote to stdout and stderr during the check, as a note of at most
  :data:`NOTE_LINES` lines; then the summary line, exactly ``N passed, N failed, N skipped``. Control
  characters the target wrote are shown escaped (``\x1b``), so they cannot drive the terminal.
* JSON: :meth:`Report.to_json` (``kind``, ``target``, ``spec_version``, ``suite_version``, ``results`` with
  ``id``, ``level``, ``check``, ``outcome``, ``message`` (plus ``reproduction`` when there is one),
  ``duration``, ``stdout`` and ``stderr``; ``passed``, ``failed``, ``skipped``, ``interrupted``, and the
  ``stdout`` and ``stderr`` written outside any check).
* JUnit XML: one ``<testsuite>`` with properties ``spec_version``, ``suite_version``, ``kind``, ``target``
  (and ``interrupted``, when it was); one ``<testcase>`` per check named like its pytest test
  (``test_ES_3_at_most_one_completion_last``); a failed MUST is a ``<failure>``; a failed SHOULD is a
  ``<failure>`` under ``strict`` and otherwise a ``<skipped type="should">``, as the exit status counts it;
  a skip is ``<skipped>``. The target's output is each case's ``<system-out>`` and ``<system-err>`` (the
  suite's for output outside any check). Characters XML cannot hold are replaced by U+FFFD, so the file
  always parses.
"""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET
from typing import Final

from .model import CheckResult, Outcome, Report

__all__ = ["NOTE_LINES", "render_json", "render_junit", "render_text"]

_INDENT: Final = "    "
NOTE_LINES: Final = 5
"""How many lines of a target's output the text report shows per stream and check."""
_NOTE_WIDTH: Final = 160
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NOT_XML: Final = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escape_controls(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _output_note(stream: str, text: str, when: str) -> list[str]:
    if not text:
        return []
    lines = text.splitlines() or [""]
    shown = [_escape_controls(line) for line in lines[:NOTE_LINES]]
    shown = [line if len(line) <= _NOTE_WIDTH else line[: _NOTE_WIDTH - 3] + "..." for line in shown]
    note = [f"note: the target wrote {len(text)} character(s) to {stream} {when}:"]
    note += [f"{_INDENT}| {line}" for line in shown]
    if len(lines) > NOTE_LINES:
        note.append(f"{_INDENT}| ... {len(lines) - NOTE_LINES} more line(s), in the JSON and JUnit reports")
    return note


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _not_counted(result: CheckResult, strict: bool) -> bool:
    return result.outcome is Outcome.FAILED and not result.counts_as_failure(strict=strict)


def _flag(result: CheckResult, strict: bool) -> str:
    if not _not_counted(result, strict):
        return ""
    if result.level.is_recommended:
        return f"  [{result.level} not met: fails the run only with --strict]"
    return f"  [{result.level}: informational, never fails the run]"


def render_text(report: Report, *, strict: bool = False) -> str:
    """The human report; the last line is ``N passed, N failed, N skipped``."""
    lines = [
        f"lmstream conformance suite {report.suite_version} (spec {report.spec_version}): "
        f"{report.kind} {_escape_controls(report.target)}"
    ]
    if report.interrupted:
        lines.append("interrupted by the user: only the checks below ran to their end")
    lines += _output_note("stdout", report.stdout, "outside any check (while it was imported)")
    lines += _output_note("stderr", report.stderr, "outside any check (while it was imported)")
    for result in report.results:
        flag = _flag(result, strict)
        head = f"{result.requirement_id:<6} {result.level.value:<10} {result.outcome.value:<7}"
        lines.append(f"{head} {result.check.name}{flag}")
        if result.message:
            lines.append(textwrap.indent(_escape_controls(result.message), _INDENT))
        if result.reproduction and result.outcome is Outcome.FAILED:
            lines.append(f"{_INDENT}reproduction:")
            lines.append(textwrap.indent(_escape_controls(result.reproduction), _INDENT * 2))
        notes = _output_note("stdout", result.stdout, "during the check")
        notes += _output_note("stderr", result.stderr, "during the check")
        lines += [f"{_INDENT}{line}" for line in notes]
    lines.append(report.summary_line())
    return "\n".join(lines)


def render_json(report: Report) -> str:
    """The JSON report (one object, indented)."""
    return json.dumps(report.to_json(), indent=2)


def render_junit(report: Report, *, strict: bool = False) -> str:
    """The JUnit XML report, as a string with an XML declaration."""
    failures = sum(1 for r in report.results if r.counts_as_failure(strict=strict))
    skipped = sum(1 for r in report.results if r.outcome is Outcome.SKIPPED or _not_counted(r, strict))
    suite = ET.Element(
        "testsuite",
        {
            "name": f"lmstream.conformance.{report.kind}",
            "tests": str(len(report.results)),
            "failures": str(failures),
            "errors": "0",
            "skipped": str(skipped),
            "time": f"{sum(r.duration for r in report.results):.3f}",
        },
    )
    properties = ET.SubElement(suite, "properties")
    named = [
        ("spec_version", report.spec_version),
        ("suite_version", report.suite_version),
        ("kind", report.kind.value),
        ("target", report.target),
    ]
    if report.interrupted:
        named.append(("interrupted", "true"))
    for name, value in named:
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    for result in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"lmstream.conformance.{report.kind}",
                "name": result.check.test_name,
                "time": f"{result.duration:.3f}",
            },
        )
        head = f"{result.requirement_id} ({result.level}): {result.check.requirement.title}"
        body = _xml(
            result.message + (f"\n\nreproduction:\n{result.reproduction}" if result.reproduction else "")
        )
        if result.counts_as_failure(strict=strict):
            element = ET.SubElement(case, "failure", {"message": head, "type": result.level.value})
            element.text = body
        elif _not_counted(result, strict):
            why = "not met; counts only with --strict" if result.level.is_recommended else "informational"
            kind = "should" if result.level.is_recommended else "may"
            element = ET.SubElement(case, "skipped", {"message": f"{head} ({why})", "type": kind})
            element.text = body
        elif result.outcome is Outcome.SKIPPED:
            reason = result.message.splitlines()[0] if result.message else head
            ET.SubElement(case, "skipped", {"message": _xml(reason)})
        _system_streams(case, result.stdout, result.stderr)
    _system_streams(suite, report.stdout, report.stderr)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    text: str = ET.tostring(root, encoding="unicode", xml_declaration=True)
    return text + "\n"


def _system_streams(parent: ET.Element, stdout: str, stderr: str) -> None:
    for tag, text in (("system-out", stdout), ("system-err", stderr)):
        if text:
            ET.SubElement(parent, tag).text = _xml(text)
