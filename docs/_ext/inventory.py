"""The committed intersphinx inventories in ``docs/_intersphinx``: read, write and refresh them.

The docs link to Python's documentation (and typing_extensions') without the network: intersphinx reads
``docs/_intersphinx/python.inv``, a small inventory in Sphinx's plain-text *version 1* format, which
Sphinx reads natively (``# Sphinx inventory version 1``, ``# Project:``, ``# Version:``, then one
``name type page`` a line, no blank or comment lines). A line ``asyncio.Lock class library/asyncio-sync.html``
stands for ``https://docs.python.org/3/library/asyncio-sync.html#asyncio.Lock``; a module
(type ``mod``) for ``...page#module-name``. The file lists the names the docs refer to, no more.

A name the docs newly refer to makes the build fail (nitpicky mode) until it is added. Add it by hand
(look the page up on docs.python.org), or refresh every entry from the real inventory (needs the network
or a local copy of ``objects.inv``, e.g. from Debian's ``python3-doc``) and add names in the same step::

    python -m docs._ext.inventory docs/_intersphinx/python.inv https://docs.python.org/3/objects.inv \\
        --add asyncio.Event typing.Self

A name that the real inventory lacks, or whose anchor is not ``#name``, is refused with a message.
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.request
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["Entry", "main", "read_v1", "read_v2", "refresh", "url_of", "write_v1"]

_V1_HEADER: Final = "# Sphinx inventory version 1"
_V2_HEADER: Final = b"# Sphinx inventory version 2"
_V2_LINE: Final = re.compile(r"(.+?)\s+(\S+)\s+(-?\d+)\s+?(\S*)\s+(.*)")


@dataclass(frozen=True, order=True)
class Entry:
    """One object: its dotted ``name``, its version-1 ``type`` (``class``, ``mod``, ...) and ``page``."""

    name: str
    type: str
    page: str

    @property
    def anchor(self) -> str:
        """The fragment Sphinx appends to the page for a version-1 entry."""
        return f"module-{self.name}" if self.type == "mod" else self.name

    @property
    def role_type(self) -> str:
        """The ``domain:type`` key Sphinx files it under (``py:class``, ``py:module``, ...)."""
        return "py:module" if self.type == "mod" else f"py:{self.type}"


@dataclass(frozen=True)
class Inventory:
    """A version-1 inventory: project, version and entries."""

    project: str
    version: str
    entries: tuple[Entry, ...]


def read_v1(text: str) -> Inventory:
    """Parse a version-1 inventory.

    :raises ValueError: naming the line, for a bad header, a blank line or a line without three fields.
    """
    lines = text.splitlines()
    if len(lines) < 3 or lines[0] != _V1_HEADER:
        raise ValueError(f"not a version 1 inventory: the first line must be {_V1_HEADER!r}")
    if not lines[1].startswith("# Project: ") or not lines[2].startswith("# Version: "):
        raise ValueError("lines 2 and 3 must be '# Project: NAME' and '# Version: VERSION'")
    entries: list[Entry] = []
    for number, line in enumerate(lines[3:], start=4):
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"line {number}: expected 'name type page', got {line!r}")
        entries.append(Entry(*fields))
    return Inventory(lines[1][len("# Project: ") :], lines[2][len("# Version: ") :], tuple(entries))


def write_v1(inventory: Inventory) -> str:
    """Serialise a version-1 inventory, entries sorted by name then type, one per line."""
    body = [f"{e.name} {e.type} {e.page}" for e in sorted(inventory.entries)]
    return (
        "\n".join([_V1_HEADER, f"# Project: {inventory.project}", f"# Version: {inventory.version}", *body])
        + "\n"
    )


def read_v2(data: bytes) -> dict[tuple[str, str], str]:
    """Parse a real (version 2, zlib-compressed) ``objects.inv``: ``(type, name) -> location``.

    :raises ValueError: if ``data`` is not a version 2 inventory.
    """
    header, _, rest = data.partition(b"\n")
    if header.rstrip() != _V2_HEADER:
        raise ValueError("not a version 2 inventory")
    _project, _version, _compression, compressed = rest.split(b"\n", 3)
    result: dict[tuple[str, str], str] = {}
    for line in zlib.decompress(compressed).decode().splitlines():
        match = _V2_LINE.match(line.rstrip())
        if not match:
            continue
        name, kind, _priority, location, _display = match.groups()
        result.setdefault((kind, name), location[:-1] + name if location.endswith("$") else location)
    return result


def refresh(
    entries: Iterable[Entry], real: Mapping[tuple[str, str], str], add: Sequence[str] = ()
) -> list[Entry]:
    """Re-derive each entry's page from ``real`` (a :func:`read_v2` result), and add the Python objects
    named in ``add`` (every type the real inventory has for them).

    :raises ValueError: listing every name the real inventory lacks, or whose anchor is not the one a
        version-1 entry implies.
    """
    wanted = {(e.role_type, e.name) for e in entries}
    for name in add:
        found = {(kind, n) for kind, n in real if n == name and kind.startswith("py:")}
        wanted |= found or {("?", name)}
    problems: list[str] = []
    result: list[Entry] = []
    for kind, name in sorted(wanted):
        location = real.get((kind, name))
        if location is None:
            problems.append(f"{name} ({kind}): not in the real inventory")
            continue
        v1_type = "mod" if kind == "py:module" else kind.removeprefix("py:")
        page, _, anchor = location.partition("#")
        entry = Entry(name, v1_type, page)
        if anchor != entry.anchor:
            problems.append(
                f"{name} ({kind}): its anchor is #{anchor}, a version 1 entry implies #{entry.anchor}"
            )
            continue
        result.append(entry)
    if problems:
        raise ValueError("cannot refresh the inventory:\n  " + "\n  ".join(problems))
    return result


def url_of(base: str, entry: Entry) -> str:
    """The documentation URL intersphinx links ``entry`` to, under ``base``."""
    return f"{base.rstrip('/')}/{entry.page}#{entry.anchor}"


def _load(source: str) -> bytes:
    if source.startswith(("https://", "http://")):
        with urllib.request.urlopen(source, timeout=30) as response:  # only when run by hand
            data: bytes = response.read()
            return data
    return Path(source).read_bytes()


def main(argv: Sequence[str] | None = None) -> int:
    """Refresh a committed inventory from a real one (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m docs._ext.inventory", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("inventory", type=Path, help="the committed version-1 inventory to rewrite")
    parser.add_argument("source", help="URL or path of the real objects.inv")
    parser.add_argument("--add", nargs="*", default=[], metavar="NAME", help="Python objects to add")
    args = parser.parse_args(argv)
    path: Path = args.inventory
    current = read_v1(path.read_text(encoding="utf-8"))
    try:
        entries = refresh(current.entries, read_v2(_load(args.source)), args.add)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    path.write_text(write_v1(Inventory(current.project, current.version, tuple(entries))), encoding="utf-8")
    print(f"{path}: {len(entries)} entries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
