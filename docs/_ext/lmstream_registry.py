"""Sphinx directives that render the lmstream requirement registry (never copied by hand).

``.. lmstream-requirements::`` renders every requirement of one group (``:group: engine-stream``) or all,
each under an anchor equal to its lower-cased ID (``#es-3``), with level, statement and rationale.
``.. lmstream-transitions::`` renders the lifecycle table from ``STATE_TRANSITIONS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from lmstream.spec import REQUIREMENTS, SPEC_VERSION, STATE_TRANSITIONS, Group, select_requirements


class RequirementsDirective(SphinxDirective):
    """Render requirements of a group as sections with anchors."""

    option_spec: ClassVar[dict[str, Callable[[str], Any]] | None] = {"group": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        group_name = self.options.get("group")
        group = Group(group_name) if group_name else None
        out: list[nodes.Node] = []
        for req in select_requirements(group=group):
            section = nodes.section(ids=[req.anchor], names=[req.id.lower()])
            section += nodes.title(text=f"{req.id} ({req.level.value}): {req.title}")
            section += nodes.paragraph(text=req.statement)
            if req.condition:
                section += nodes.paragraph(text=f"Condition: {req.condition}")
            rationale = nodes.paragraph()
            rationale += nodes.emphasis(text="Rationale: ")
            rationale += nodes.Text(req.rationale)
            section += rationale
            self.env.note_dependency(__file__)
            out.append(section)
        return out


class TransitionsDirective(SphinxDirective):
    """Render the allowed state transitions as a bullet list."""

    def run(self) -> list[nodes.Node]:
        items = nodes.bullet_list()
        for before, afters in STATE_TRANSITIONS.items():
            targets = ", ".join(sorted(a.value for a in afters)) or "(terminal: no transition)"
            para = nodes.paragraph()
            para += nodes.literal(text=before.value)
            para += nodes.Text(f" -> {targets}")
            items += nodes.list_item("", para)
        return [items]


def _count(_app: Sphinx, _docname: str, source: list[str]) -> None:
    source[0] = (
        source[0]
        .replace("|requirement-count|", str(len(REQUIREMENTS)))
        .replace("|spec-version|", SPEC_VERSION)
    )


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directives."""
    app.add_directive("lmstream-requirements", RequirementsDirective)
    app.add_directive("lmstream-transitions", TransitionsDirective)
    app.connect("source-read", _count)
    return {"version": SPEC_VERSION, "parallel_read_safe": True}
