"""Resolve Python cross-references that name an object by a path other than the documented one.

Annotations and docstrings name objects where they are defined or imported, not where they are
documented: ``asyncio.locks.Lock`` (documented as ``asyncio.Lock``), ``lmstream.reference.manager.
StreamManager.aclose`` (documented as ``lmstream.reference.StreamManager.aclose``), or a bare
``StreamManager`` in a signature, meaning whatever that name is in the module that wrote it. Two steps fix
these, both by looking the name up at run time (only in modules already imported; nothing is imported to
resolve a reference):

1. :class:`QualifyByNamespace`, before references are resolved: a name that matches no documented object
   exactly is looked up in the namespace of the module that defines the documented object it appears in
   (its docstring or signature), and replaced by a documented path to the same object. Without this, a bare
   ``StreamManager`` would match several documented objects and link to an arbitrary one.
2. :func:`missing_reference`, when the Python domain and intersphinx both missed: the object the path
   names is found and each shorter public path to it (``pkg.sub.Name`` -> ``pkg.Name``) is tried, first in
   these docs, then in the intersphinx inventories.

An interpreter type named by its internal name (``async_generator``, as Python 3.10 reports
``types.AsyncGeneratorType``) is linked to its :mod:`types` entry. Two more cases resolve without a link,
deliberately: a type variable that is not documented (a private
``TypeVar`` in a signature has no page of its own) is shown as its name; and a reference that annotations
make to a typing construct as a class (``typing.Any``, ``typing_extensions.TypeIs`` are documented as data)
is retried as any object type. Anything else still fails the nitpicky build.
"""

from __future__ import annotations

import builtins
import sys
import types
from collections.abc import Container, Iterator
from typing import Any, Final, cast

from docutils.nodes import Element, Node, TextElement
from sphinx.addnodes import desc, desc_signature, pending_xref
from sphinx.application import Sphinx
from sphinx.domains.python import PythonDomain
from sphinx.environment import BuildEnvironment
from sphinx.ext.intersphinx import missing_reference as intersphinx_missing_reference
from sphinx.transforms.post_transforms import SphinxPostTransform

from lmstream.spec import SPEC_VERSION

__all__ = [
    "MISSING",
    "QualifyByNamespace",
    "builtin_type_path",
    "lookup",
    "missing_reference",
    "public_paths",
    "qualify",
    "setup",
]

MISSING: Final = object()
"""What :func:`lookup` returns for a path that names nothing."""
_RETRIED: Final = "lmstream_retried"


def lookup(dotted: str) -> object:
    """The object a dotted path names, looked up through modules already imported, or :data:`MISSING`."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:split]))
        if module is None:
            continue
        obj: object = module
        for attribute in parts[split:]:
            obj = getattr(obj, attribute, MISSING)
            if obj is MISSING:
                return MISSING
        return obj
    return MISSING


def public_paths(dotted: str, obj: object) -> Iterator[str]:
    """Other dotted paths to the same ``obj``, shortest module first: for ``a.b.c.Name.attr`` (module
    ``a.b.c``), ``a.Name.attr`` then ``a.b.Name.attr`` where they name ``obj`` too; then the defining
    module's path of a class or function, and its parents the same way.
    """
    seen = {dotted}
    starts = [dotted]
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module_name, str) and isinstance(qualname, str) and "<" not in qualname:
        starts.append(f"{module_name}.{qualname}")
    for start in starts:
        parts = start.split(".")
        module_end = next((i for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in sys.modules), 0)
        attributes = parts[module_end:]
        for end in [*range(1, module_end), module_end]:
            candidate = ".".join(parts[:end] + attributes)
            if candidate not in seen and lookup(candidate) is obj:
                seen.add(candidate)
                yield candidate


def qualify(target: str, namespace: str, documented: Container[str]) -> str | None:
    """A documented path for what ``target`` means in module ``namespace`` at run time, or ``None``.

    ``target`` may be dotted (``StreamState.INCOMPLETE``); a leading ``.`` or ``~`` is ignored.
    """
    name = target.lstrip(".~")
    obj = lookup(f"{namespace}.{name}")
    if obj is MISSING:
        return None
    return next((path for path in public_paths(f"{namespace}.{name}", obj) if path in documented), None)


def _defining_module(node: Node, fallback: str | None) -> str | None:
    """The module that defines the documented object ``node`` sits in (its nearest ``desc``)."""
    parent = node.parent
    while parent is not None and not isinstance(parent, desc):
        parent = parent.parent
    if parent is not None:
        for signature in parent.findall(desc_signature):
            module, fullname = signature.get("module"), signature.get("fullname")
            if isinstance(module, str) and isinstance(fullname, str):
                obj = lookup(f"{module}.{fullname}")
                home = getattr(obj, "__module__", None)
                return home if isinstance(home, str) else module
    return fallback


class QualifyByNamespace(SphinxPostTransform):
    """Step 1 of the module docstring; runs before Sphinx's ``ReferencesResolver`` (priority 10)."""

    default_priority = 5

    def run(self, **kwargs: Any) -> None:
        documented = cast("PythonDomain", self.env.get_domain("py")).objects
        for node in list(self.document.findall(pending_xref)):
            if node.get("refdomain") != "py":
                continue
            target = str(node["reftarget"])
            module = node.get("py:module")
            klass = node.get("py:class")
            exact = [target]
            if isinstance(module, str):
                exact.append(f"{module}.{target}")
                if isinstance(klass, str):
                    exact.append(f"{module}.{klass}.{target}")
            if any(candidate in documented for candidate in exact):
                continue
            namespace = _defining_module(node, module if isinstance(module, str) else None)
            path = qualify(target, namespace, documented) if namespace else None
            if path is not None:
                node["reftarget"] = path
                if "refspecific" in node:
                    del node["refspecific"]  # an exact path: no fuzzy search


def _builtin_type_paths() -> dict[str, str]:
    """Interpreter types by their internal name (``async_generator``), as :mod:`types` documents them."""
    paths: dict[str, str] = {}
    for name in dir(types):
        value: object = getattr(types, name)
        if (
            isinstance(value, type)
            and value.__module__ == "builtins"
            and not hasattr(builtins, value.__name__)
        ):
            paths.setdefault(value.__name__, f"types.{name}")
    return paths


_BUILTIN_TYPE_PATHS: Final = _builtin_type_paths()


def builtin_type_path(name: str) -> str | None:
    """``types.AsyncGeneratorType`` for ``async_generator``, and so on; ``None`` for any other name."""
    return _BUILTIN_TYPE_PATHS.get(name)


def _is_typevar(obj: object) -> bool:
    return type(obj).__name__ == "TypeVar" and type(obj).__module__ in ("typing", "typing_extensions")


def _retry(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: TextElement, target: str, reftype: str
) -> Element | None:
    retry = node.deepcopy()
    retry["reftarget"] = target
    retry["reftype"] = reftype
    retry[_RETRIED] = True
    builder = app.builder
    docname = str(node.get("refdoc", env.docname))
    resolved = env.get_domain("py").resolve_xref(env, docname, builder, reftype, target, retry, contnode)
    if resolved is not None:
        return resolved
    return intersphinx_missing_reference(app, env, retry, contnode)


def _contexts(node: pending_xref) -> Iterator[str]:
    target = str(node["reftarget"]).lstrip(".~")
    module = node.get("py:module")
    klass = node.get("py:class")
    if isinstance(module, str) and isinstance(klass, str):
        yield f"{module}.{klass}.{target}"
    if isinstance(module, str):
        yield f"{module}.{target}"
    yield target


def missing_reference(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: TextElement
) -> Element | None:
    """The ``missing-reference`` handler (see the module docstring); ``None`` leaves the miss to others."""
    if node.get("refdomain") != "py" or node.get(_RETRIED):
        return None
    reftype = str(node["reftype"])
    builtin_path = builtin_type_path(str(node["reftarget"]))
    if builtin_path is not None:  # documented as data in the types module: any object type will do
        return _retry(app, env, node, contnode, builtin_path, "obj")
    for dotted in _contexts(node):
        obj = lookup(dotted)
        if obj is MISSING:
            continue
        for path in public_paths(dotted, obj):
            resolved = _retry(app, env, node, contnode, path, reftype)
            if resolved is not None:
                return resolved
        if _is_typevar(obj):
            return contnode
    if reftype == "class":
        return _retry(app, env, node, contnode, str(node["reftarget"]), "obj")
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    """Add the transform, and the handler after intersphinx's (500), before Sphinx's type fallback (900)."""
    app.setup_extension("sphinx.ext.intersphinx")
    app.add_post_transform(QualifyByNamespace)
    app.connect("missing-reference", missing_reference, priority=600)
    return {"version": SPEC_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
