"""Every requirement of the registry has a check, every check a requirement of its kind, and registration
catches mistakes."""

from __future__ import annotations

import pytest

from lmstream.conformance import CHECKS, CheckContext, TargetKind, check, checks_for, get_check
from lmstream.conformance.checks import (
    _registry,  # pyright: ignore[reportPrivateUsage] - the registry under test
)
from lmstream.spec import REQUIREMENTS, Group, UnknownRequirementError, select_requirements

_KIND_OF_GROUP = {
    Group.ENGINE_STREAM: TargetKind.ENGINE,
    Group.MANAGER: TargetKind.MANAGER,
    Group.STOP: TargetKind.MANAGER,
    Group.ROUND: TargetKind.ROUND,
}
"""Which kind of target each group's requirements are checked on."""


def test_every_group_is_mapped() -> None:
    assert set(_KIND_OF_GROUP) == set(Group)


@pytest.mark.parametrize(("group", "kind"), list(_KIND_OF_GROUP.items()))
def test_every_requirement_has_a_check(group: Group, kind: TargetKind) -> None:
    checked = {c.requirement_id for c in checks_for(kind)}
    for requirement in select_requirements(group=group):  # MUSTs, SHOULDs and MAYs alike
        assert requirement.id in checked, f"{requirement.id} ({requirement.level}) has no {kind} check"


def test_every_check_cites_a_known_requirement_of_its_kind() -> None:
    for c in CHECKS:
        assert c.requirement_id in REQUIREMENTS
        assert _KIND_OF_GROUP[c.requirement.group] is c.kind, f"{c.test_name} checks a {c.kind} target"
        assert c.summary.strip() and "\n" not in c.summary


def test_test_names_are_unique_and_stable() -> None:
    names = [c.test_name for c in CHECKS]
    assert len(names) == len(set(names))
    assert get_check(TargetKind.ENGINE, "test_ES_3_at_most_one_completion_last").requirement_id == "ES-3"
    assert get_check(TargetKind.ENGINE, "at_most_one_completion_last").test_name.startswith("test_ES_3_")
    with pytest.raises(LookupError, match="no engine check is named 'nope'"):
        get_check(TargetKind.ENGINE, "nope")


async def _noop(target: object, ctx: CheckContext) -> None:
    return None


@pytest.fixture
def scratch_registry() -> object:
    saved = list(_registry._REGISTERED)  # pyright: ignore[reportPrivateUsage]
    yield None
    _registry._REGISTERED[:] = saved  # pyright: ignore[reportPrivateUsage]


@pytest.mark.usefixtures("scratch_registry")
def test_registration_refuses_mistakes() -> None:
    with pytest.raises(UnknownRequirementError, match="ES-99"):
        check("ES-99", TargetKind.ENGINE, summary="x")(_noop)
    with pytest.raises(ValueError, match="snake_case"):
        check("ES-1", TargetKind.ENGINE, summary="x", name="NotSnake")(_noop)
    with pytest.raises(ValueError, match="one-line summary"):
        check("ES-1", TargetKind.ENGINE, summary=" ", name="empty_summary")(_noop)
    with pytest.raises(ValueError, match="two engine checks are named 'returns_async_iterable'"):
        check("ES-2", TargetKind.ENGINE, summary="x", name="returns_async_iterable")(_noop)


@pytest.mark.usefixtures("scratch_registry")
def test_registered_checks_come_in_registry_order() -> None:
    assert check("SM-1", TargetKind.MANAGER, summary="x", name="late_sm1")(_noop) is _noop
    check("ES-1", TargetKind.ENGINE, summary="x", name="late_es1")(_noop)
    order = [c.requirement_id for c in _registry.registered()]
    keys = list(REQUIREMENTS)
    assert order == sorted(order, key=keys.index)
    assert [c.name for c in _registry.registered() if c.requirement_id == "ES-1"] == [
        "returns_async_iterable",
        "late_es1",
    ]
