"""The traceability table: every requirement with its checks, a MUST without one flagged, stray IDs caught."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import lmstream.conformance
from docs._ext.traceability import load_checks, trace
from lmstream.spec import REQUIREMENTS, Level, get_requirement


@dataclass(frozen=True)
class FakeCheck:
    """Just what the table reads of a check."""

    name: str
    requirement_id: str
    kind: object = "engine"
    summary: str = ""


def test_every_requirement_gets_a_row_with_its_checks_in_order() -> None:
    checks = [FakeCheck("b", "ES-1"), FakeCheck("a", "SM-8", "manager"), FakeCheck("c", "ES-1")]
    rows, orphans = trace(REQUIREMENTS.values(), checks)
    assert [row.requirement.id for row in rows] == list(REQUIREMENTS)
    by_id = {row.requirement.id: row for row in rows}
    assert [c.name for c in by_id["ES-1"].checks] == ["b", "c"]
    assert [c.name for c in by_id["SM-8"].checks] == ["a"]
    assert orphans == []


def test_a_mandatory_requirement_without_a_check_is_flagged() -> None:
    rows, _ = trace(REQUIREMENTS.values(), [FakeCheck("x", "ES-1")])
    flagged = {row.requirement.id for row in rows if row.unverified_mandatory}
    mandatory = {r.id for r in REQUIREMENTS.values() if r.level in (Level.MUST, Level.MUST_NOT)}
    assert flagged == mandatory - {"ES-1"}
    should = next(r for r in REQUIREMENTS.values() if r.level is Level.SHOULD)
    assert should.id not in flagged


def test_a_check_citing_an_unknown_id_is_returned() -> None:
    stray = FakeCheck("stray", "SM-999")
    rows, orphans = trace([get_requirement("ES-1")], [stray, FakeCheck("ok", "ES-1")])
    assert orphans == [stray]
    assert [c.name for c in rows[0].checks] == ["ok"]


def test_the_suite_is_read_when_it_has_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = (FakeCheck("one", "ES-1"),)
    monkeypatch.setattr(lmstream.conformance, "CHECKS", checks, raising=False)
    assert load_checks() == checks


def test_a_suite_without_checks_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(lmstream.conformance, "CHECKS", raising=False)
    with pytest.raises(TypeError, match="expected a tuple of Check"):
        load_checks()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"ES-1": "x"}, "expected a tuple of Check"),
        ((object(),), r"CHECKS\[0\].*'name'"),
        ((FakeCheck("ok", "ES-1"), "not a check"), r"CHECKS\[1\]"),
    ],
)
def test_a_malformed_suite_is_an_error(monkeypatch: pytest.MonkeyPatch, value: object, message: str) -> None:
    monkeypatch.setattr(lmstream.conformance, "CHECKS", value, raising=False)
    with pytest.raises(TypeError, match=message):
        load_checks()


def test_the_real_suite_cites_only_registry_ids() -> None:
    checks = load_checks()
    _, orphans = trace(REQUIREMENTS.values(), checks)
    assert orphans == []
