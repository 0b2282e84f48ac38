"""What a package exports, for documenting it: each ``__all__`` name, what it is and where it is defined.

Pure introspection (imports and source reading through :class:`sphinx.pycode.ModuleAnalyzer`), no
reST: :mod:`.api` turns the result into the API reference.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Final, Literal

from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.typing import stringify_annotation

__all__ = [
    "Kind",
    "PublicName",
    "attribute_docs",
    "data_type",
    "docstring_lines",
    "module_extras",
    "public_api",
    "public_submodules",
]

Kind = Literal["class", "exception", "function", "data"]
"""What a public name is, as far as documenting it goes."""
_MISSING: Final = object()


@dataclass(frozen=True)
class PublicName:
    """One entry of a package's ``__all__``: what it is and which module defines it (``home``)."""

    package: str
    name: str
    kind: Kind
    home: str
    value: object

    @property
    def qualified(self) -> str:
        """The public dotted name, ``package.name``."""
        return f"{self.package}.{self.name}"

    @property
    def external(self) -> bool:
        """Whether it is defined outside the package (a re-export of another package's name)."""
        return self.home != self.package and not self.home.startswith(self.package + ".")


def _kind(value: object) -> Kind:
    if inspect.isclass(value):
        return "exception" if issubclass(value, BaseException) else "class"
    if inspect.isroutine(value):
        return "function"
    return "data"


def attribute_docs(module: str) -> dict[tuple[str, str], list[str]]:
    """The docstrings of a module's attributes (``(class or "", name) -> lines``), read from its source."""
    try:
        return dict(ModuleAnalyzer.for_module(module).find_attr_docs())
    except PycodeError:
        return {}


def _data_home(package: ModuleType, name: str, value: object) -> str:
    """The submodule that defines data ``name``: one holding the same object and a docstring for it."""
    prefix = package.__name__ + "."
    holders = sorted(
        module_name
        for module_name, module in list(sys.modules.items())
        if module_name.startswith(prefix) and vars(module).get(name, _MISSING) is value
    )
    for module_name in holders:
        if ("", name) in attribute_docs(module_name):
            return module_name
    return holders[0] if holders else package.__name__


def public_api(package_name: str) -> list[PublicName]:
    """The package's ``__all__`` as :class:`PublicName` entries, in ``__all__`` order (empty if none).

    :raises ValueError: if ``__all__`` names an attribute the package does not have.
    """
    package = importlib.import_module(package_name)
    exported: Sequence[str] = getattr(package, "__all__", ())
    result: list[PublicName] = []
    for name in exported:
        value = getattr(package, name, _MISSING)
        if value is _MISSING:
            raise ValueError(f"{package_name}.__all__ lists {name!r}, which {package_name} does not define")
        kind = _kind(value)
        module = getattr(value, "__module__", None)
        home = module if kind != "data" and isinstance(module, str) else _data_home(package, name, value)
        result.append(PublicName(package_name, name, kind, home, value))
    return result


def docstring_lines(entry: PublicName) -> list[str]:
    """The entry's docstring as lines (empty when it has none): its own, or for data the one in its source."""
    if entry.kind == "data":
        return list(attribute_docs(entry.home).get(("", entry.name), []))
    doc = entry.value.__doc__ if isinstance(entry.value, type) else getattr(entry.value, "__doc__", None)
    return inspect.cleandoc(doc).splitlines() if isinstance(doc, str) and doc.strip() else []


def data_type(entry: PublicName) -> str | None:
    """The annotated type of a data entry (``Final`` removed) as Sphinx writes types, or ``None``."""
    module = sys.modules[entry.home]
    annotation = getattr(module, "__annotations__", {}).get(entry.name)
    if annotation is None:
        return None
    hint: object = annotation
    if isinstance(annotation, str):
        try:
            hint = eval(annotation, vars(module))  # the module's own annotation, in its own namespace
        except Exception:
            return annotation
    if hint is typing.Final:
        return None
    if typing.get_origin(hint) is typing.Final:
        hint = typing.get_args(hint)[0]
    return stringify_annotation(hint, "smart")


def public_submodules(package: str) -> list[str]:
    """The package's direct submodules whose names do not start with an underscore, imported now (as
    autodoc would), so the list does not depend on what happens to be imported already.
    """
    module = importlib.import_module(package)
    found = sorted(info.name for info in pkgutil.iter_modules(getattr(module, "__path__", [])))
    names = [f"{package}.{name}" for name in found if not name.startswith("_")]
    for name in names:
        importlib.import_module(name)
    return names


def module_extras(module: str, documented: set[int]) -> list[PublicName]:
    """Names in a submodule's own ``__all__`` that it defines itself and that are not ``documented``
    (a set of ``id()`` of objects the package already exports)."""
    try:
        entries = public_api(module)
    except ValueError:
        return []
    return [e for e in entries if not e.external and e.home == module and id(e.value) not in documented]
