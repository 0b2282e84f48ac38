"""Render a :class:`~lmstream.conformance.model.Report` as text, JSON or JUnit XML.

* Text: a header naming the suite and spec versions and the target; one line per check (requirement ID,
  level, outcome, check name); under a failure its message (``expected:``, ``observed:``, ``spec:`` link)
  and reproduction, indented; under a skip its reason; under a pass its notes, if any; then the summary
  line, exactly ``N passed, N failed, N skipped``.
* JSON: :meth:`Report.to_json` (``kind``, ``target``, ``spec_version``, ``suite_version``, ``results`` with
  ``id``, ``level``, ``check``, ``outcome``, ``message`` (plus ``reproduction`` when there is one and
  ``duration``), ``passed``, ``failed``, ``skipped``).
* JUnit XML: one ``<testsuite>`` with properties ``spec_version``, ``suite_version``, ``kind``, ``target``;
  one ``<testcase>`` per check named like its pytest test (``test_ES_3_at_most_one_completion_last``); a
  failed MUST is a ``<failure>``; a failed SHOULD is a ``<failure>`` under ``strict`` and otherwise a
  ``<skipped type="should">``, as the exit status counts it; a skip is ``<skipped>``.
"""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from typing import Final

from .model import CheckResult, Outcome, Report

__all__ = ["render_json", "render_junit", "render_text"]

_INDENT: Final = "    "


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
        f"{report.kind} {report.target}"
    ]
    for result in report.results:
        flag = _flag(result, strict)
        head = f"{result.requirement_id:<6} {result.level.value:<10} {result.outcome.value:<7}"
        lines.append(f"{head} {result.check.name}{flag}")
        if result.message:
            lines.append(textwrap.indent(result.message, _INDENT))
        if result.reproduction and result.outcome is Outcome.FAILED:
            lines.append(f"{_INDENT}reproduction:")
            lines.append(textwrap.indent(result.reproduction, _INDENT * 2))
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
    for name, value in (
        ("spec_version", report.spec_version),
        ("suite_version", report.suite_version),
        ("kind", report.kind.value),
        ("target", report.target),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
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
        body = result.message + (f"\n\nreproduction:\n{result.reproduction}" if result.reproduction else "")
        if result.counts_as_failure(strict=strict):
            element = ET.SubElement(case, "failure", {"message": head, "type": result.level.value})
            element.text = body
        elif _not_counted(result, strict):
            why = "not met; counts only with --strict" if result.level.is_recommended else "informational"
            kind = "should" if result.level.is_recommended else "may"
            element = ET.SubElement(case, "skipped", {"message": f"{head} ({why})", "type": kind})
            element.text = body
        elif result.outcome is Outcome.SKIPPED:
            ET.SubElement(
                case, "skipped", {"message": result.message.splitlines()[0] if result.message else head}
            )
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    text: str = ET.tostring(root, encoding="unicode", xml_declaration=True)
    return text + "\n"
