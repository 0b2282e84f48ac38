"""A plain-text table of the registry, for terminals (``python -m lmstream.spec``)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from .registry import Requirement
from .requirements import REQUIREMENTS, SPEC_VERSION

__all__ = ["format_requirement_table"]


def format_requirement_table(requirements: Iterable[Requirement] | None = None, *, width: int = 100) -> str:
    """Render requirements (default: all) as an aligned text table grouped by section, with the version."""
    rows = list(REQUIREMENTS.values() if requirements is None else requirements)
    lines = [f"lmstream specification {SPEC_VERSION}: {len(rows)} requirements"]
    indent = " " * 19
    group = None
    for req in rows:
        if req.group is not group:
            group = req.group
            lines += ["", f"== {group.heading} =="]
        head = f"{req.id:<6} {req.level.value:<10}  "
        body = req.title + (f" [{req.condition}]" if req.condition else "")
        wrapped = textwrap.wrap(body, width=max(20, width - len(indent)))
        lines.append(head + wrapped[0])
        lines += [indent + w for w in wrapped[1:]]
    return "\n".join(lines)
