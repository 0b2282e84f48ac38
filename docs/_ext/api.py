"""``.. lmstream-api:: lmstream.spec`` documents a package's public API: every name in its ``__all__``.

Each name is documented under its public, importable name (``lmstream.spec.StreamState``), grouped by the
public submodule that defines it, with that submodule's docstring as the group's introduction. Classes and
functions go through autodoc; module-level data (constants, type variables), whose docstrings autodoc
cannot find through a re-export, are written as ``py:data`` with the docstring, type and value read from
the defining module (see :mod:`.publicapi`). Every object also answers to its defining path
(``:canonical:``), so annotations and docstrings that name ``lmstream.spec.state.StreamState`` link to the
same entry. A submodule's own ``__all__`` names that the package does not re-export are documented in its
group under the module's path; public submodules with no such names get their docstring under "Other
modules", so ``:mod:`` references to them resolve.

The directive's optional content orders the groups and names them, one submodule a line (``protocols``
or ``protocols: The Protocols``); submodules not listed follow in alphabetical order.

A name of the package's ``__all__`` without a docstring is a build warning, and ``__all__`` naming
something missing is an error: the API reference must cover the whole public API
(``docs/tests/test_api_documented.py`` checks it). Requirement IDs in every docstring link to the spec.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Final

from docutils.nodes import Node
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from lmstream.spec import SPEC_VERSION

from .publicapi import PublicName, data_type, docstring_lines, module_extras, public_api, public_submodules
from .spectext import link_requirement_ids

__all__ = ["ApiDirective", "api_rst", "setup"]

logger = logging.getLogger(__name__)

_SPECIAL_MEMBERS: Final = "__aiter__, __anext__, __await__, __call__, __aenter__, __aexit__"
"""Documented when a class defines them: they are how the contract is used (``async for``, ``await``)."""
_SHORT_VALUE: Final = 60
"""Show a constant's value when its repr is at most this long."""


def _typevar_note(value: object) -> list[str]:
    if type(value).__name__ != "TypeVar":
        return []
    parts: list[str] = []
    bound: object = getattr(value, "__bound__", None)
    if isinstance(bound, type):
        parts.append(f"bound to :class:`~{bound.__module__}.{bound.__qualname__}`")
    if getattr(value, "__covariant__", False):
        parts.append("covariant")
    if getattr(value, "__contravariant__", False):
        parts.append("contravariant")
    has_default = getattr(value, "has_default", None)
    default: object = getattr(value, "__default__", None)
    if callable(has_default) and has_default() and isinstance(default, type):
        parts.append(f"defaults to :class:`~{default.__module__}.{default.__qualname__}`")
    return ["", "A type variable" + (": " + ", ".join(parts) if parts else "") + "."]


def _data_rst(entry: PublicName) -> list[str]:
    lines = [f".. py:data:: {entry.name}", f"   :module: {entry.package}"]
    if entry.home != entry.package:
        lines.append(f"   :canonical: {entry.home}.{entry.name}")
    shown_type = data_type(entry)
    if shown_type:
        lines.append(f"   :type: {shown_type}")
    if isinstance(entry.value, (str, int, float, bool)) and len(repr(entry.value)) <= _SHORT_VALUE:
        lines.append(f"   :value: {entry.value!r}")
    body = docstring_lines(entry) + _typevar_note(entry.value)
    link_requirement_ids(body)  # as autodoc-process-docstring does for the autodoc'ed entries
    return [*lines, "", *(f"   {line}" if line else "" for line in body), ""]


def _entry_rst(entry: PublicName) -> list[str]:
    if entry.external:
        target = f"{entry.home}.{getattr(entry.value, '__qualname__', entry.name)}"
        return [
            f".. py:data:: {entry.name}",
            f"   :module: {entry.package}",
            "",
            f"   Re-exported from ``{entry.home}``: see :py:obj:`{target}`.",
            "",
        ]
    if entry.kind == "data":
        return _data_rst(entry)
    directive = {"class": "autoclass", "exception": "autoexception", "function": "autofunction"}[entry.kind]
    lines = [f".. {directive}:: {entry.package}::{entry.name}"]  # "::" ends the module path explicitly
    if entry.kind in ("class", "exception"):
        lines += ["   :members:", "   :show-inheritance:", f"   :special-members: {_SPECIAL_MEMBERS}"]
    return [*lines, ""]


def _heading(text: str) -> list[str]:
    return [text, "-" * len(text), ""]


def _section_of(package: str, module: str) -> str:
    """The direct, public submodule of ``package`` that contains ``module`` (or ``package`` itself)."""
    if not module.startswith(package + "."):
        return package
    first = module[len(package) + 1 :].split(".")[0]
    return package if first.startswith("_") else f"{package}.{first}"


def _title(package: str, module: str) -> str:
    return "Other names" if module == package else module.rpartition(".")[2].replace("_", " ").capitalize()


def _order(
    package: str, modules: Sequence[str], layout: Sequence[str], problems: list[str]
) -> list[tuple[str, str]]:
    """(module, heading) in the order ``layout`` gives, then the other modules alphabetically."""
    order: list[tuple[str, str]] = []
    for raw in layout:
        line = raw.strip()
        if not line:
            continue
        short, _, heading = (part.strip() for part in line.partition(":"))
        module = f"{package}.{short}"
        if module not in modules:
            problems.append(
                f"{module} (listed in the directive's content) is not a public submodule with public names"
            )
            continue
        order.append((module, heading or _title(package, module)))
    listed = {module for module, _ in order}
    order += [(module, _title(package, module)) for module in sorted(modules) if module not in listed]
    return order


def _module_rst(module: str, public: set[str]) -> list[str]:
    """The module's docstring; a module shadowed by a public name of the same path (``from .validate import
    validate``) is shown but not indexed, so the name keeps one meaning.
    """
    return [f".. automodule:: {module}", *(["   :no-index:"] if module in public else []), ""]


def api_rst(package: str, layout: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The reST that documents ``package``'s public API, and the problems found (one sentence each).

    The package's ``__all__`` names are grouped by the public submodule that defines them; each group starts
    with that module's docstring and also documents the names in the module's own ``__all__`` that the
    package does not re-export (under the module's path: importable, and named by docstrings). Public
    submodules with neither follow under "Other modules". ``layout`` orders and names the groups (see the
    module docstring). A problem is a name of the package's ``__all__`` without a docstring, or a
    ``layout`` line naming no such module.

    :raises ImportError: if the package cannot be imported.
    :raises ValueError: if its ``__all__`` names something it does not define.
    """
    entries = public_api(package)
    lines = [f".. automodule:: {package}", ""]
    if not entries:
        lines += [
            ".. note::",
            "",
            f"   ``{package}`` exports no public names yet (its ``__all__`` is empty).",
            "",
        ]
        return lines, []
    documented = {id(entry.value) for entry in entries}
    members: dict[str, list[PublicName]] = {}
    for entry in entries:
        members.setdefault(package if entry.external else _section_of(package, entry.home), []).append(entry)
    others: list[str] = []
    for module in public_submodules(package):
        extras = module_extras(module, documented)
        if extras:
            members.setdefault(module, []).extend(extras)
        elif module not in members:
            others.append(module)
    problems = [
        f"{entry.qualified} is public (in __all__) but has no docstring"
        for entry in entries
        if not entry.external and not docstring_lines(entry)
    ]
    public = {entry.qualified for group in members.values() for entry in group}
    for module, heading in _order(package, list(members), layout, problems):
        lines += _heading(heading)
        if module != package:
            lines += _module_rst(module, public)
        for entry in members[module]:
            lines += _entry_rst(entry)
    if others:
        lines += _heading("Other modules")
        for module in others:
            lines += _module_rst(module, public)
    return lines, problems


class ApiDirective(SphinxDirective):
    """Document one package's public API (see the module docstring)."""

    required_arguments = 1
    has_content = True

    def run(self) -> list[Node]:
        package = self.arguments[0]
        try:
            lines, problems = api_rst(package, list(self.content))
        except Exception as exc:  # any error importing the package: report it here, not as a crash
            raise self.error(f"lmstream-api: cannot document {package}: {type(exc).__name__}: {exc}") from exc
        for problem in problems:
            logger.warning(
                "lmstream-api: %s", problem, location=self.get_location(), type="lmstream", subtype="api"
            )
        self.env.note_dependency(__file__)  # rebuild when this extension changes
        prefix = package + "."
        for name, module in list(sys.modules.items()):
            source = getattr(module, "__file__", None)
            if (name == package or name.startswith(prefix)) and isinstance(source, str):
                self.env.note_dependency(source)  # rebuild when the package changes
        return self.parse_text_to_nodes("\n".join(lines), allow_section_headings=True)


def _link_ids(_app: Sphinx, _what: str, _name: str, _obj: object, _options: object, lines: list[str]) -> None:
    link_requirement_ids(lines)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register ``lmstream-api``, and link requirement IDs in every docstring autodoc renders."""
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("docs._ext.requirements")
    app.add_directive("lmstream-api", ApiDirective)
    app.connect("autodoc-process-docstring", _link_ids)
    return {"version": SPEC_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
