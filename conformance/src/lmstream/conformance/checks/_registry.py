"""The ``@check`` decorator and the list it fills. Internal: use :mod:`lmstream.conformance.checks`."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from lmstream.conformance.context import CheckContext
from lmstream.conformance.model import Check, TargetKind
from lmstream.spec import REQUIREMENTS, get_requirement

__all__ = ["check", "registered"]

_F = TypeVar("_F", bound=Callable[[Any, CheckContext], Awaitable[None]])
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ORDER = {rid: index for index, rid in enumerate(REQUIREMENTS)}
_REGISTERED: list[Check] = []


def check(
    requirement_id: str, kind: TargetKind, *, summary: str, name: str | None = None
) -> Callable[[_F], _F]:
    """Register ``async def run(target, ctx) -> None`` as the check of one requirement.

    :param requirement_id: the registry ID it verifies; an unknown ID fails at import time.
    :param kind: the kind of target it examines (the ``target`` argument is then an
        :class:`~lmstream.conformance.targets.EngineTarget`, a ``ManagerTarget`` or a ``RoundTarget``).
    :param summary: one line saying what the check does.
    :param name: a stable snake_case name, unique within its kind; defaults to the function's name. The
        pytest test is named ``test_<ID>_<name>`` (``test_ES_3_at_most_one_completion``).

    The function is returned unchanged. It passes by returning, fails by raising
    :class:`~lmstream.conformance.model.CheckFailure`, is not applicable by raising
    :class:`~lmstream.conformance.model.CheckSkipped`; any other exception fails the check with the
    exception summarised.
    """
    get_requirement(requirement_id)  # an unknown ID fails here, at import time of the check's module

    def register(run: _F) -> _F:
        check_name = name or run.__name__
        if not _NAME.match(check_name):
            raise ValueError(f"check name {check_name!r} must be snake_case ([a-z][a-z0-9_]*)")
        if not summary.strip():
            raise ValueError(f"check {check_name!r} needs a one-line summary")
        made = Check(name=check_name, requirement_id=requirement_id, kind=kind, run=run, summary=summary)
        for other in _REGISTERED:
            if other.kind is kind and other.name == check_name:
                raise ValueError(
                    f"two {kind} checks are named {check_name!r} "
                    f"({other.requirement_id} and {requirement_id})"
                )
        _REGISTERED.append(made)
        return run

    return register


def registered() -> tuple[Check, ...]:
    """Every registered check, in registry order of their requirements, then in registration order."""
    numbered = list(enumerate(_REGISTERED))
    numbered.sort(key=lambda pair: (_ORDER[pair[1].requirement_id], pair[0]))
    return tuple(c for _, c in numbered)
