"""The requirement registry is well formed and holds every rule the spec issue names."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from lmstream.spec import (
    REQUIREMENTS,
    SPEC_VERSION,
    Group,
    Level,
    Requirement,
    UnknownRequirementError,
    format_requirement_table,
    get_requirement,
    select_requirements,
)

_LEVEL_WORD = {
    Level.MUST: "MUST",
    Level.MUST_NOT: "MUST NOT",
    Level.SHOULD: "SHOULD",
    Level.SHOULD_NOT: "SHOULD NOT",
    Level.MAY: "MAY",
}

# The levels fixed by the spec issue; the registry may refine wording, never these.
_EXPECTED_LEVELS = {
    **{f"ES-{n}": Level.MUST for n in range(1, 9)},
    "ES-9": Level.SHOULD,
    "ES-10": Level.SHOULD_NOT,
    "ES-11": Level.MAY,
    **{f"SM-{n}": Level.MUST for n in range(1, 18)},
    "SM-21": Level.SHOULD,
    "SM-29": Level.SHOULD,
}


def test_spec_version_is_semantic() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", SPEC_VERSION)
    assert SPEC_VERSION == "1.0.0"


@pytest.mark.parametrize(("rid", "level"), sorted(_EXPECTED_LEVELS.items()))
def test_required_rules_present_with_their_level(rid: str, level: Level) -> None:
    assert REQUIREMENTS[rid].level is level


def test_ids_are_unique_and_numbered_without_gaps() -> None:
    for prefix in ("ES", "SM"):
        numbers = sorted(int(i.split("-")[1]) for i in REQUIREMENTS if i.startswith(prefix + "-"))
        assert numbers == list(range(1, len(numbers) + 1)), prefix
    assert len(set(REQUIREMENTS)) == len(REQUIREMENTS)


@pytest.mark.parametrize("req", list(REQUIREMENTS.values()), ids=lambda r: r.id)
def test_each_statement_uses_its_level_keyword(req: Requirement) -> None:
    assert _LEVEL_WORD[req.level] in req.statement
    assert req.rationale.strip() and req.title.strip()
    assert req.id == req.id.strip() and req.anchor == req.id.lower()


def test_groups_follow_id_prefixes() -> None:
    for req in REQUIREMENTS.values():
        if req.id.startswith("ES-"):
            assert req.group is Group.ENGINE_STREAM
        else:
            assert req.group in (Group.MANAGER, Group.ROUND, Group.STOP)
    assert {r.id for r in select_requirements(group=Group.ROUND)} == {"SM-18", "SM-19", "SM-20", "SM-33"}
    assert all(r.condition for r in select_requirements(group=Group.STOP) if r.level.is_mandatory)


def test_levels_classify() -> None:
    assert Level.MUST.is_mandatory and Level.MUST_NOT.is_mandatory
    assert not Level.SHOULD.is_mandatory and Level.SHOULD.is_recommended
    assert Level.SHOULD_NOT.is_recommended and not Level.MAY.is_recommended
    shoulds = select_requirements(levels=[Level.SHOULD, Level.SHOULD_NOT])
    assert {r.id for r in shoulds} == {"ES-9", "ES-10", "SM-21", "SM-29", "SM-34", "SM-35", "SM-36"}


def test_unknown_id_is_a_clear_one_line_error() -> None:
    with pytest.raises(UnknownRequirementError) as info:
        get_requirement("ES-99")
    message = str(info.value)
    assert "'ES-99'" in message and "ES-1..ES-11" in message and "\n" not in message
    assert isinstance(info.value, LookupError)
    assert get_requirement("SM-8") is REQUIREMENTS["SM-8"]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"id": "XX-1"}, ValueError),
        ({"id": "ES-01"}, ValueError),
        ({"statement": "  "}, ValueError),
        ({"level": "MUST"}, TypeError),
        ({"group": "manager"}, TypeError),
    ],
)
def test_malformed_requirements_are_refused(changes: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        dataclasses.replace(REQUIREMENTS["ES-1"], **changes)


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        REQUIREMENTS["ES-1"] = REQUIREMENTS["ES-2"]  # type: ignore[index]  # proving the mapping is frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        REQUIREMENTS["ES-1"].level = Level.MAY  # type: ignore[misc]  # proving the dataclass is frozen


def test_table_lists_every_requirement_once() -> None:
    table = format_requirement_table()
    assert table.startswith(f"lmstream specification {SPEC_VERSION}")
    for rid, req in REQUIREMENTS.items():
        assert len(re.findall(rf"^{re.escape(rid)}\s+{re.escape(req.level.value)}\s", table, re.M)) == 1
    for group in Group:
        assert f"== {group.heading} ==" in table
