"""``.. lmstream-traceability::`` renders requirement -> the conformance checks that verify it.

The checks come from ``lmstream.conformance.CHECKS`` (a tuple of
:class:`lmstream.conformance.model.Check`), imported when the directive runs, so the docs never lag the
suite. Every requirement of the registry gets a row, in registry order; a MUST or MUST NOT that no check
verifies is flagged in its row and listed above the table. A check citing an ID the registry does not
have is a build warning.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from docutils import nodes
from docutils.nodes import Node
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from lmstream.spec import REQUIREMENTS, SPEC_VERSION, Requirement

from .requirements import requirement_link
from .tables import table

__all__ = ["CheckLike", "TraceRow", "TraceabilityDirective", "load_checks", "setup", "trace"]

logger = logging.getLogger(__name__)

CONFORMANCE_PACKAGE = "lmstream.conformance"


class CheckLike(Protocol):
    """What the table needs of a check (``lmstream.conformance.model.Check`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def requirement_id(self) -> str: ...
    @property
    def kind(self) -> object: ...
    @property
    def summary(self) -> str: ...


@dataclass(frozen=True)
class TraceRow:
    """One requirement and the checks that verify it (empty when none does)."""

    requirement: Requirement
    checks: tuple[CheckLike, ...]

    @property
    def unverified_mandatory(self) -> bool:
        """A MUST or MUST NOT with no check: flagged in the table."""
        return self.requirement.is_mandatory and not self.checks


def trace(
    requirements: Iterable[Requirement], checks: Iterable[CheckLike]
) -> tuple[list[TraceRow], list[CheckLike]]:
    """One row per requirement (in the given order) with its checks (in suite order), and the checks
    that cite an ID not among ``requirements``.
    """
    by_id: dict[str, list[CheckLike]] = {}
    for check in checks:
        by_id.setdefault(check.requirement_id, []).append(check)
    ordered = list(requirements)
    rows = [TraceRow(r, tuple(by_id.pop(r.id, []))) for r in ordered]
    orphans = [check for found in by_id.values() for check in found]
    return rows, orphans


def _as_check(item: object, position: int) -> CheckLike:
    for attribute in ("name", "requirement_id", "summary"):
        if not isinstance(getattr(item, attribute, None), str):
            raise TypeError(
                f"{CONFORMANCE_PACKAGE}.CHECKS[{position}] is {item!r}: "
                f"expected a Check with a str {attribute!r}"
            )
    if not hasattr(item, "kind"):
        raise TypeError(
            f"{CONFORMANCE_PACKAGE}.CHECKS[{position}] is {item!r}: expected a Check with a 'kind'"
        )
    return cast("CheckLike", item)


def load_checks() -> tuple[CheckLike, ...]:
    """``lmstream.conformance.CHECKS``, imported now.

    An import error of the package is not hidden: the docs must not silently lose the table.

    :raises TypeError: if ``CHECKS`` is missing or is not a sequence of checks.
    """
    package = importlib.import_module(CONFORMANCE_PACKAGE)
    raw: object = getattr(package, "CHECKS", None)
    if not isinstance(raw, (tuple, list)):
        raise TypeError(f"{CONFORMANCE_PACKAGE}.CHECKS is {type(raw).__name__}: expected a tuple of Check")
    items = cast("Sequence[object]", raw)
    return tuple(_as_check(item, i) for i, item in enumerate(items))


class TraceabilityDirective(SphinxDirective):
    """The traceability table."""

    has_content = False

    def _note_sources(self) -> None:
        """Rebuild the page when the suite or this extension changes."""
        self.env.note_dependency(__file__)
        for name, module in list(sys.modules.items()):
            if name == CONFORMANCE_PACKAGE or name.startswith(CONFORMANCE_PACKAGE + "."):
                source = getattr(module, "__file__", None)
                if isinstance(source, str):
                    self.env.note_dependency(source)

    def run(self) -> list[Node]:
        try:
            checks = load_checks()
        except TypeError as exc:
            raise self.error(str(exc)) from exc
        except Exception as exc:  # a broken suite must fail the build here, not drop the table or crash
            raise self.error(f"cannot import {CONFORMANCE_PACKAGE}: {type(exc).__name__}: {exc}") from exc
        finally:
            self._note_sources()
        rows, orphans = trace(REQUIREMENTS.values(), checks)
        for orphan in orphans:
            logger.warning(
                "conformance check %r cites %r, which is not a requirement",
                orphan.name,
                orphan.requirement_id,
                location=self.get_location(),
                type="lmstream",
                subtype="traceability",
            )
        return [self._summary(rows, len(checks)), self._table(rows)]

    def _summary(self, rows: Sequence[TraceRow], check_count: int) -> Node:
        mandatory = [row for row in rows if row.requirement.is_mandatory]
        missing = [row for row in rows if row.unverified_mandatory]
        verified = sum(1 for row in rows if row.checks)
        covered = len(mandatory) - len(missing)
        text = (
            f"{check_count} checks verify {verified} of {len(rows)} requirements; "
            f"{covered} of the {len(mandatory)} MUST and MUST NOT requirements have a check."
        )
        paragraph = nodes.paragraph(text, text)
        if not missing:
            return paragraph
        warning = nodes.warning()
        warning += paragraph
        flagged = nodes.paragraph()
        flagged += nodes.strong("", "Mandatory requirements without a check: ")
        for i, row in enumerate(missing):
            if i:
                flagged += nodes.Text(", ")
            flagged += requirement_link(row.requirement.id, docname=self.env.docname)
        warning += flagged
        return warning

    def _checks_cell(self, row: TraceRow) -> Node:
        if not row.checks:
            if row.unverified_mandatory:
                flag = nodes.paragraph(classes=["lmstream-unchecked"])
                flag += nodes.strong("", "no check (a MUST without a check)")
                return flag
            return nodes.paragraph("", "", nodes.emphasis("", "no check"))
        items = nodes.bullet_list()
        for check in row.checks:
            paragraph = nodes.paragraph()
            paragraph += nodes.literal(check.name, check.name)
            paragraph += nodes.Text(f" ({check.kind})" + (f": {check.summary}" if check.summary else ""))
            items += nodes.list_item("", paragraph)
        return items

    def _table(self, rows: Sequence[TraceRow]) -> Node:
        cells: list[list[Node | str]] = []
        classes: list[list[str]] = []
        for row in rows:
            requirement = nodes.paragraph()
            requirement += requirement_link(row.requirement.id, docname=self.env.docname)
            requirement += nodes.Text(f" {row.requirement.title}")
            cells.append([requirement, row.requirement.level.value, self._checks_cell(row)])
            classes.append(["lmstream-unchecked"] if row.unverified_mandatory else [])
        return table(
            ["Requirement", "Level", "Checks"],
            cells,
            widths=[35, 12, 53],
            classes=["lmstream-traceability"],
            row_classes=classes,
        )


def setup(app: Sphinx) -> dict[str, Any]:
    """Register ``lmstream-traceability``."""
    app.add_directive("lmstream-traceability", TraceabilityDirective)
    return {"version": SPEC_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
