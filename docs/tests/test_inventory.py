"""The committed intersphinx inventories: Sphinx reads them, they are canonical, the refresh tool works."""

from __future__ import annotations

import io
import posixpath
import zlib
from pathlib import Path

import pytest
from sphinx.util.inventory import InventoryFile

from docs._ext.inventory import Entry, Inventory, read_v1, read_v2, refresh, url_of, write_v1
from docs.tests._sphinx import DOCS

INVENTORIES = sorted((DOCS / "_intersphinx").glob("*.inv"))


def test_there_are_inventories_for_python_and_typing_extensions() -> None:
    assert {p.stem for p in INVENTORIES} == {"python", "typing_extensions"}


class _Stream:
    """The readable stream ``InventoryFile.load`` wants (its Protocol's ``read`` is not ``BytesIO``'s)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


def _sphinx_urls(data: bytes, base: str) -> dict[tuple[str, str], str]:
    """The inventory as intersphinx loads it: (type, name) -> URL (an item is a tuple before Sphinx 8.2)."""
    loaded = InventoryFile.load(_Stream(data), base, posixpath.join)
    urls: dict[tuple[str, str], str] = {}
    for kind, objects in loaded.items():
        for name, item in objects.items():
            uri: object = getattr(item, "uri", None) or tuple(item)[2]
            urls[kind, name] = str(uri)
    return urls


@pytest.mark.parametrize("path", INVENTORIES, ids=lambda p: p.stem)
def test_sphinx_reads_every_entry_at_its_url(path: Path) -> None:
    """What intersphinx will link to is exactly what the file says, for every line."""
    ours = read_v1(path.read_text(encoding="utf-8"))
    base = "https://example.invalid/docs"
    urls = _sphinx_urls(path.read_bytes(), base)
    assert urls == {(entry.role_type, entry.name): url_of(base, entry) for entry in ours.entries}


@pytest.mark.parametrize("path", INVENTORIES, ids=lambda p: p.stem)
def test_the_files_are_canonical(path: Path) -> None:
    """Sorted, no duplicates: what the refresh tool writes, so a diff shows only real changes."""
    text = path.read_text(encoding="utf-8")
    assert write_v1(read_v1(text)) == text
    entries = read_v1(text).entries
    assert len(set(entries)) == len(entries)


def test_python_names_the_docs_rely_on_are_there() -> None:
    names = {e.name for e in read_v1((DOCS / "_intersphinx" / "python.inv").read_text()).entries}
    assert {"asyncio.Lock", "asyncio.CancelledError", "typing.Protocol", "str", "enum.Enum"} <= names


def _v2(lines: list[str]) -> bytes:
    header = b"# Sphinx inventory version 2\n# Project: P\n# Version: 1\n# compressed using zlib\n"
    return header + zlib.compress("\n".join(lines).encode())


REAL = _v2(
    [
        "asyncio py:module 0 library/asyncio.html#module-$ -",
        "asyncio.Lock py:class 1 library/asyncio-sync.html#$ -",
        "asyncio.Event py:class 1 library/asyncio-sync.html#$ -",
        "odd py:function 1 library/odd.html#elsewhere -",
        "reference std:label -1 reference/index.html#$ Reference",
    ]
)


def test_read_v2_expands_the_dollar() -> None:
    real = read_v2(REAL)
    assert real["py:class", "asyncio.Lock"] == "library/asyncio-sync.html#asyncio.Lock"
    assert real["py:module", "asyncio"] == "library/asyncio.html#module-asyncio"


def test_refresh_rederives_pages_and_adds_names() -> None:
    stale = [Entry("asyncio.Lock", "class", "old.html"), Entry("asyncio", "mod", "old.html")]
    entries = refresh(stale, read_v2(REAL), add=["asyncio.Event"])
    assert sorted(entries) == [
        Entry("asyncio", "mod", "library/asyncio.html"),
        Entry("asyncio.Event", "class", "library/asyncio-sync.html"),
        Entry("asyncio.Lock", "class", "library/asyncio-sync.html"),
    ]


@pytest.mark.parametrize(
    ("add", "problem"), [(["nowhere"], "nowhere.*not in the real"), (["odd"], "odd.*#elsewhere")]
)
def test_refresh_refuses_what_it_cannot_write(add: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        refresh([], read_v2(REAL), add=add)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("# Sphinx inventory version 2\n# Project: P\n# Version: 1\n", "version 1"),
        ("# Sphinx inventory version 1\n# Version: 1\n# Project: P\n", "Project"),
        ("# Sphinx inventory version 1\n# Project: P\n# Version: 1\n\n", "line 4"),
        ("# Sphinx inventory version 1\n# Project: P\n# Version: 1\na class\n", "line 4"),
    ],
)
def test_a_malformed_file_is_named(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        read_v1(text)


def test_write_v1_round_trips() -> None:
    inventory = Inventory("P", "1", (Entry("b", "class", "x.html"), Entry("a", "mod", "y.html")))
    assert read_v1(write_v1(inventory)).entries == tuple(sorted(inventory.entries))
