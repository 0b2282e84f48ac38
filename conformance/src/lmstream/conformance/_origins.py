"""Whose code is it: the target's own, the suite's, the standard library's, or a named library's?

ES-5's rule (b) (an engine closes the async generators of its own code) and the report of what a check
left behind ask this of code objects: an async generator's, a task's coroutine's, a frame's.

**The target's own code**, precisely: a code object whose file is

* inside one of the target's *homes*: for each module the target was found in (the module of the target
  itself, of the engine object's class and of the class or function that defines its ``stream()``, of the
  stream object's type or async generator function), the directory of its outermost regular package, or
  the module's own file when it belongs to no regular package (a top-level module, or one in namespace
  packages only). So the engines of a library the author tests are that library's own code: for kani's
  ``OpenAIEngine``, installed in site-packages, everything under ``site-packages/kani`` is the target's;
* or outside every library location: not under a ``site-packages`` or ``dist-packages`` directory (a
  third-party library, named by its top-level package or module there), not in the standard library
  (:mod:`sysconfig`'s ``stdlib`` and ``platstdlib`` paths, frozen modules), and not in lmstream's own
  packages (``lmstream.spec``, ``lmstream.reference``, ``lmstream.conformance``). Such code belongs to the
  application or test suite the engine is written in (or is ``exec``'d code), so it is the author's.

A home in the standard library is ignored (a target found in :mod:`functools` does not make the standard
library the engine's). Classification is by file name only and is cached; it never imports anything.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from types import CodeType, FrameType, ModuleType
from typing import Final

__all__ = ["Origin", "Origins", "Owner"]

_LIBRARY_DIRS: Final = frozenset({"site-packages", "dist-packages"})


class Owner(Enum):
    """Who a piece of code belongs to."""

    TARGET = "the target"
    LIBRARY = "a library"
    STDLIB = "the standard library"
    LMSTREAM = "lmstream"


@dataclass(frozen=True)
class Origin:
    """Where a piece of code comes from: its owner and, for a library, the library's import name."""

    owner: Owner
    name: str = ""

    @property
    def is_target(self) -> bool:
        return self.owner is Owner.TARGET

    def label(self) -> str:
        """``httpx``, ``the standard library (asyncio)``, ``the target``, ``lmstream``."""
        if self.owner is Owner.LIBRARY:
            return self.name
        if self.owner is Owner.STDLIB:
            return f"the standard library ({self.name})" if self.name else "the standard library"
        return str(self.owner.value)


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


@functools.cache
def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found: set[str] = {_norm(paths[key]) for key in ("stdlib", "platstdlib") if key in paths}
    found.add(_norm(os.path.dirname(os.__file__)))
    return tuple(sorted(found))


@functools.cache
def _lmstream_dirs() -> tuple[str, ...]:
    found: list[str] = []
    for name in ("lmstream.spec", "lmstream.reference", "lmstream.conformance"):
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if isinstance(file, str):
            found.append(_norm(os.path.dirname(file)))
    return tuple(found)


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


class Origins:
    """Classifies code by file (see the module docstring). Add the target's homes with :meth:`add_home`."""

    def __init__(self, homes: Iterable[object] = ()) -> None:
        self._homes: list[str] = []
        self._stdlib = _stdlib_dirs()
        self._lmstream = _lmstream_dirs()
        self._cache: dict[str, Origin] = {}
        for thing in homes:
            self.add_home(thing)

    @property
    def homes(self) -> tuple[str, ...]:
        """The target's home directories and files, in the order they were added."""
        return tuple(self._homes)

    def add_home(self, thing: object) -> None:
        """Make the home of ``thing`` the target's: ``thing`` is a module name, a module, a class, a function
        or method, an async generator, or any other object (its type's module is used)."""
        home = self._home_of(thing)
        if home is not None and home not in self._homes:
            self._homes.append(home)
            self._cache.clear()

    def of_file(self, filename: str) -> Origin:
        """The origin of code in ``filename`` (a code object's ``co_filename``)."""
        cached = self._cache.get(filename)
        if cached is None:
            cached = self._cache[filename] = self._classify(filename)
        return cached

    def of_code(self, code: CodeType) -> Origin:
        return self.of_file(code.co_filename)

    def is_target(self, code: CodeType) -> bool:
        return self.of_code(code).is_target

    # ------------------------------------------------------------------ internals
    def _classify(self, filename: str) -> Origin:
        if filename.startswith("<frozen "):
            return Origin(Owner.STDLIB, filename[len("<frozen ") :].rstrip(">").split(".")[0])
        if filename.startswith("<"):
            return Origin(Owner.TARGET)  # exec'd or interactive code: the author's
        path = _norm(filename)
        if any(_within(path, home) for home in self._homes):
            return Origin(Owner.TARGET)
        parts = path.split(os.sep)
        for index in range(len(parts) - 1, -1, -1):
            if parts[index] in _LIBRARY_DIRS and index + 1 < len(parts):
                top = parts[index + 1]
                return Origin(Owner.LIBRARY, top[:-3] if top.endswith(".py") else top)
        if any(_within(path, d) for d in self._lmstream):
            return Origin(Owner.LMSTREAM)
        for directory in self._stdlib:
            if _within(path, directory):
                rest = os.path.relpath(path, directory).split(os.sep)[0]
                return Origin(Owner.STDLIB, rest[:-3] if rest.endswith(".py") else rest)
        return Origin(Owner.TARGET)

    def _home_of(self, thing: object) -> str | None:
        module_name = _module_name(thing)
        if module_name is None:
            return None
        home = _module_home(module_name)
        if home is None or (any(_within(home, d) for d in self._stdlib) and not _in_library_dir(home)):
            return None
        return home


def _in_library_dir(path: str) -> bool:
    return any(part in _LIBRARY_DIRS for part in path.split(os.sep))


def _module_name(thing: object) -> str | None:
    if isinstance(thing, str):
        return thing
    if isinstance(thing, ModuleType):
        return thing.__name__
    frame = getattr(thing, "ag_frame", None) or getattr(thing, "cr_frame", None)
    if isinstance(frame, FrameType):  # an async generator (or coroutine) object: its frame's module
        name = frame.f_globals.get("__name__")
        return name if isinstance(name, str) else None
    if isinstance(getattr(thing, "__code__", None), CodeType):  # a function or method
        module = getattr(thing, "__module__", None)
        return module if isinstance(module, str) else None
    if isinstance(thing, type):
        return thing.__module__
    method = getattr(thing, "__func__", None)
    if method is not None:
        return _module_name(method)
    return type(thing).__module__


def _module_home(module_name: str) -> str | None:
    """The directory of the outermost regular package of ``module_name``, or the module's own file."""
    parts = module_name.split(".")
    for depth in range(1, len(parts) + 1):
        module = sys.modules.get(".".join(parts[:depth]))
        if module is None:
            return None
        file = getattr(module, "__file__", None)
        if not isinstance(file, str):
            continue  # a namespace package (or a built-in module): look deeper
        if getattr(module, "__path__", None) is not None:
            return _norm(os.path.dirname(file))
        return _norm(file)
    return None
