"""Render the requirement registry as the normative spec, and link to requirements from anywhere.

* ``.. lmstream-requirements::`` (option ``:group: engine-stream|manager|round|stop``, default all) renders
  each requirement of :data:`lmstream.spec.REQUIREMENTS` as a section whose HTML anchor is its lower-cased
  ID (``spec.html#sm-8``), with its level, statement, condition and rationale. RFC 2119 keywords are set in
  bold and every requirement ID in the text links to that requirement.
* ``:req:`SM-8``` (or ``:req:`the lock rule <SM-12>```) links to a requirement; an ID that is not in the
  registry is an error where the role is written. ``:ref:`sm-8``` works too (each section is a label).
* The ``lmstream`` domain records where each requirement is rendered, so requirements appear in
  ``objects.inv`` as ``lmstream:requirement`` (other projects can link to them with intersphinx), and the
  build warns about a requirement rendered twice or not at all.

Nothing here copies text from the registry by hand: editing a requirement changes the page on the next build.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Set
from typing import Any, ClassVar, cast

from docutils import nodes
from docutils.nodes import Element, Node, system_message
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.builders import Builder
from sphinx.domains import Domain, ObjType
from sphinx.environment import BuildEnvironment
from sphinx.roles import XRefRole
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective, SphinxRole
from sphinx.util.nodes import make_refnode, split_explicit_title
from sphinx.util.typing import RoleFunction

from lmstream.spec import (
    REQUIREMENTS,
    SPEC_VERSION,
    Group,
    Requirement,
    UnknownRequirementError,
    get_requirement,
    select_requirements,
)

from .spectext import split_spec_text

__all__ = ["RequirementDomain", "RequirementRole", "RequirementsDirective", "requirement_link", "setup"]

logger = logging.getLogger(__name__)


def requirement_link(requirement_id: str, text: str | None = None, *, docname: str) -> pending_xref:
    """A cross-reference to a requirement, resolved by the ``lmstream`` domain once every page is read.

    It always warns when unresolved (``refwarn``), nitpicky or not: a dead link in the spec is a bug.
    """
    shown = text or requirement_id
    node = pending_xref(
        "",
        refdomain="lmstream",
        reftype="req",
        reftarget=requirement_id,
        refexplicit=text is not None,
        refwarn=True,
        refdoc=docname,
    )
    node += nodes.inline(shown, shown, classes=["xref", "lmstream-req"])
    return node


def _spec_text(text: str, *, docname: str, owner: str) -> list[Node]:
    """Registry text as inline nodes: keywords bold, IDs linked. An unknown ID is reported, not linked."""
    out: list[Node] = []
    for kind, value in split_spec_text(text):
        if kind == "keyword":
            out.append(nodes.strong(value, value, classes=["rfc2119"]))
        elif kind == "id" and value in REQUIREMENTS:
            out.append(requirement_link(value, docname=docname))
        elif kind == "id":
            logger.warning(
                "the registry text of %s mentions %s, which is not a requirement",
                owner,
                value,
                location=docname,
                type="lmstream",
                subtype="registry",
            )
            out.append(nodes.Text(value))
        else:
            out.append(nodes.Text(value))
    return out


class RequirementRole(SphinxRole):
    """``:req:`SM-8``` or ``:req:`text <SM-8>```: a link to a requirement; an unknown ID is an error."""

    def run(self) -> tuple[list[Node], list[system_message]]:
        has_title, title, target = split_explicit_title(self.text)
        requirement_id = target.strip()
        try:
            get_requirement(requirement_id)
        except UnknownRequirementError as exc:
            # typeshed's docutils stubs leave the **kwargs of Reporter.error untyped, hence the named ignore
            message = self.inliner.reporter.error(f":req: {exc}", line=self.lineno)  # pyright: ignore[reportUnknownMemberType]
            problem = self.inliner.problematic(self.rawtext, self.rawtext, message)
            return [problem], [message]
        link = requirement_link(requirement_id, title if has_title else None, docname=self.env.docname)
        self.set_source_info(link)
        return [link], []


class RequirementDomain(Domain):
    """Where each requirement is rendered: ``data["requirements"]`` maps an ID to (docname, anchor)."""

    name = "lmstream"
    label = "lmstream"
    object_types: ClassVar[dict[str, ObjType]] = {"requirement": ObjType("requirement", "req")}
    roles: ClassVar[dict[str, RoleFunction | XRefRole]] = {"req": RequirementRole()}
    initial_data: ClassVar[dict[str, Any]] = {"requirements": {}}
    data_version = 1

    @property
    def requirements(self) -> dict[str, tuple[str, str]]:
        """ID -> (docname, anchor) of every requirement rendered so far."""
        return cast("dict[str, tuple[str, str]]", self.data["requirements"])

    def note_requirement(self, requirement: Requirement, docname: str, lineno: int) -> None:
        """Record that ``requirement`` is rendered in ``docname``; warn if it already is elsewhere."""
        if requirement.id in self.requirements:
            other, _ = self.requirements[requirement.id]
            logger.warning(
                "requirement %s is rendered twice (also in %s); render each group once",
                requirement.id,
                other,
                location=(docname, lineno),
                type="lmstream",
                subtype="duplicate",
            )
            return
        self.requirements[requirement.id] = (docname, requirement.anchor)

    def clear_doc(self, docname: str) -> None:
        for rid, (doc, _) in list(self.requirements.items()):
            if doc == docname:
                del self.requirements[rid]

    def merge_domaindata(self, docnames: Set[str], otherdata: dict[str, Any]) -> None:
        theirs = cast("dict[str, tuple[str, str]]", otherdata["requirements"])
        for rid, (doc, anchor) in theirs.items():
            if doc in docnames:
                self.requirements[rid] = (doc, anchor)

    def check_consistency(self) -> None:
        for requirement in REQUIREMENTS.values():
            if requirement.id not in self.requirements:
                logger.warning(
                    "requirement %s (group %s) is not rendered anywhere: no 'lmstream-requirements' "
                    "directive covers group %r",
                    requirement.id,
                    requirement.group.value,
                    requirement.group.value,
                    type="lmstream",
                    subtype="missing",
                )

    def resolve_xref(
        self,
        env: BuildEnvironment,
        fromdocname: str,
        builder: Builder,
        typ: str,
        target: str,
        node: pending_xref,
        contnode: Element,
    ) -> nodes.reference | None:
        if target not in self.requirements:
            return None
        docname, anchor = self.requirements[target]
        return make_refnode(builder, fromdocname, docname, anchor, contnode, str(get_requirement(target)))

    def resolve_any_xref(
        self,
        env: BuildEnvironment,
        fromdocname: str,
        builder: Builder,
        target: str,
        node: pending_xref,
        contnode: Element,
    ) -> list[tuple[str, nodes.reference]]:
        found = self.resolve_xref(env, fromdocname, builder, "req", target, node, contnode)
        return [] if found is None else [("lmstream:req", found)]

    def get_objects(self) -> Iterator[tuple[str, str, str, str, str, int]]:
        for rid, (docname, anchor) in sorted(self.requirements.items()):
            yield rid, rid, "requirement", docname, anchor, 1


def _field(name: str, body: Iterable[Node]) -> nodes.field:
    paragraph = nodes.paragraph()
    paragraph.extend(body)
    field = nodes.field()
    field += nodes.field_name(name, name)
    field += nodes.field_body("", paragraph)
    return field


class RequirementsDirective(SphinxDirective):
    """Render the requirements of one group (``:group:``), or all, as sections in registry order."""

    has_content = False
    option_spec: ClassVar[dict[str, Callable[[str], Any]] | None] = {
        "group": lambda value: directives.choice(value, [g.value for g in Group]),
    }

    def run(self) -> list[Node]:
        group_name = cast("str | None", self.options.get("group"))
        group = Group(group_name) if group_name else None
        self.env.note_dependency(__file__)  # rebuild when this extension changes
        registry_file = sys.modules[select_requirements.__module__].__file__
        if registry_file:  # rebuild this page when the registry's data changes
            self.env.note_dependency(registry_file)
        domain = cast("RequirementDomain", self.env.get_domain("lmstream"))
        out: list[Node] = []
        for requirement in select_requirements(group=group):
            out.append(self._section(requirement))
            domain.note_requirement(requirement, self.env.docname, self.lineno)
        return out

    def _section(self, requirement: Requirement) -> nodes.section:
        docname = self.env.docname
        section = nodes.section(ids=[requirement.anchor], names=[requirement.anchor])
        section["classes"].append("lmstream-requirement")
        title = f"{requirement.id}: {requirement.title}"
        section += nodes.title(title, title)
        self.state.document.note_explicit_target(section)  # makes :ref:`sm-8` work
        entry = f"{requirement.id} (requirement {SPEC_VERSION})"
        section += addnodes.index(entries=[("single", entry, requirement.anchor, "", None)])
        statement = nodes.paragraph(classes=["lmstream-statement"])
        statement.extend(_spec_text(requirement.statement, docname=docname, owner=requirement.id))
        section += statement
        fields = nodes.field_list(classes=["lmstream-requirement-fields"])
        level = requirement.level.value
        badge = nodes.inline(
            level, level, classes=["lmstream-level", "lmstream-level-" + level.lower().replace(" ", "-")]
        )
        fields += _field("Level", [badge])
        if requirement.condition:
            fields += _field(
                "Applies", _spec_text(requirement.condition, docname=docname, owner=requirement.id)
            )
        fields += _field(
            "Rationale", _spec_text(requirement.rationale, docname=docname, owner=requirement.id)
        )
        section += fields
        return section


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the ``lmstream`` domain, the ``:req:`` role and the ``lmstream-requirements`` directive."""
    app.add_domain(RequirementDomain)
    app.add_role("req", RequirementRole())
    app.add_directive("lmstream-requirements", RequirementsDirective)
    return {
        "version": SPEC_VERSION,
        "env_version": 1,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
