"""The requirement registry's types and look-ups. The rules themselves are data, in :mod:`.requirements`.

Every normative rule of lmstream is a :class:`Requirement` with a stable ID (``ES-3``, ``SM-8``), an
RFC 2119 / RFC 8174 :class:`Level`, a statement and a rationale. The docs render these, the conformance
checks cite them, and a test fails if a MUST has no check.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["Group", "Level", "Requirement", "UnknownRequirementError"]

_ID_PATTERN = re.compile(r"^(ES|SM)-[1-9][0-9]*$")


class Level(str, enum.Enum):
    """Requirement levels, with the meanings of RFC 2119 as clarified by RFC 8174."""

    MUST = "MUST"
    MUST_NOT = "MUST NOT"
    SHOULD = "SHOULD"
    SHOULD_NOT = "SHOULD NOT"
    MAY = "MAY"

    def __str__(self) -> str:
        return self.value

    @property
    def is_mandatory(self) -> bool:
        """True for MUST and MUST NOT: a failure makes the implementation non-conforming."""
        return self in (Level.MUST, Level.MUST_NOT)

    @property
    def is_recommended(self) -> bool:
        """True for SHOULD and SHOULD NOT: a failure fails ``lmstream check --strict`` only."""
        return self in (Level.SHOULD, Level.SHOULD_NOT)


class Group(str, enum.Enum):
    """Which part of the contract a requirement belongs to (and which section of the spec shows it)."""

    ENGINE_STREAM = "engine-stream"
    """What an engine's ``stream()`` must yield (IDs ``ES-``)."""
    MANAGER = "manager"
    """What every stream manager must guarantee (IDs ``SM-``)."""
    ROUND = "round"
    """What a round stream (one manager per message of a function-calling round) must guarantee."""
    STOP = "stop"
    """What a stoppable manager (one that offers ``aclose()`` and ``state``) must guarantee."""

    def __str__(self) -> str:
        return self.value

    @property
    def heading(self) -> str:
        """The heading of this group's section in the spec."""
        return _GROUP_TITLES[self]


_GROUP_TITLES = {
    Group.ENGINE_STREAM: "Engine streams",
    Group.MANAGER: "Stream managers",
    Group.ROUND: "Round streams",
    Group.STOP: "Stopping a stream",
}


def _require_instance(rid: str, name: str, value: object, cls: type[enum.Enum]) -> None:
    if not isinstance(value, cls):
        raise TypeError(f"{rid}: {name} must be a {cls.__name__}, got {value!r}")


class UnknownRequirementError(LookupError):
    """A requirement ID that is not in the registry was asked for."""


@dataclass(frozen=True)
class Requirement:
    """One normative rule of the lmstream contract.

    :param id: stable identifier, ``ES-<n>`` or ``SM-<n>``; never reused for another rule.
    :param level: its RFC 2119 level.
    :param group: the part of the contract it belongs to.
    :param title: a few words naming the rule (used as a heading and in reports).
    :param statement: the rule itself, one paragraph, using the level keyword.
    :param rationale: why the rule exists.
    :param condition: when the rule applies, if not always (e.g. only to managers that offer ``aclose()``).
    """

    id: str
    level: Level
    group: Group
    title: str
    statement: str
    rationale: str
    condition: str | None = None

    def __post_init__(self) -> None:
        if not _ID_PATTERN.match(self.id):
            raise ValueError(f"requirement ID {self.id!r} is not of the form ES-<n> or SM-<n>")
        # Registry entries may be written by hand or loaded by tools: check the types the hints claim.
        _require_instance(self.id, "level", self.level, Level)
        _require_instance(self.id, "group", self.group, Group)
        for name in ("title", "statement", "rationale"):
            if not getattr(self, name).strip():
                raise ValueError(f"{self.id}: {name} must not be empty")

    @property
    def anchor(self) -> str:
        """The HTML anchor of this requirement in the rendered spec, e.g. ``es-3``."""
        return self.id.lower()

    @property
    def is_mandatory(self) -> bool:
        """Whether failing this requirement makes an implementation non-conforming."""
        return self.level.is_mandatory

    def __str__(self) -> str:
        return f"{self.id} ({self.level}): {self.title}"
