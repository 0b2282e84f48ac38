"""Every conformance check, registered with :func:`check` and listed in :data:`CHECKS`.

A check is ``async def run(target, ctx) -> None`` decorated with ``@check(ID, kind, summary=...)``. Every
public module of this package (a name without a leading underscore: ``engine``, ``manager_*``, ``stop``,
``round``, ...) is imported when the package is, so a new module of checks needs no other registration.
:data:`CHECKS` lists them in registry order; the CLI, the pytest plugin and the docs all read it.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Final

from lmstream.conformance.model import Check, TargetKind

from ._registry import check, registered

__all__ = ["CHECKS", "check", "checks_for", "get_check"]

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

CHECKS: Final[tuple[Check, ...]] = registered()
"""Every check, in registry order of the requirements they verify."""


def checks_for(kind: TargetKind) -> tuple[Check, ...]:
    """The checks of one kind of target, in registry order."""
    return tuple(c for c in CHECKS if c.kind is kind)


def get_check(kind: TargetKind, name: str) -> Check:
    """The check of this kind named ``name`` (its snake_case name or its test name).

    :raises LookupError: naming the kind and the name, if there is none.
    """
    for c in checks_for(kind):
        if name in (c.name, c.test_name):
            return c
    raise LookupError(f"no {kind} check is named {name!r}")
