"""Where a report's links to the spec point: ``<base>/spec.html#es-3``, a page that exists.

* ``LMSTREAM_DOCS_BASE`` set (and not blank): that base, e.g. ``file:///path/to/lmstream/docs/_build/html``
  after ``make docs``, or the address of a site that serves these docs.
* Otherwise (the default): a page rendered from the installed registry, on first use, into
  ``lmstream/spec-<version>-<digest>/spec.html`` under the user's cache directory (``$XDG_CACHE_HOME``,
  else ``~/.cache``; ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows), or under
  ``lmstream-<uid>`` in the temporary directory when that cannot be written. The digest is of the page,
  so a different registry gets its own page and no two versions share one. The link is a ``file://``
  URL to it.

The variable is read each time a link is made, so it may be set after import; the page is checked each
time too, and written again if it is missing or differs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Final

from lmstream.spec import SPEC_VERSION, get_requirement

from ._spec_page import render_spec_page

__all__ = ["DOCS_BASE_ENV", "docs_base", "local_spec_page", "spec_url"]

DOCS_BASE_ENV: Final = "LMSTREAM_DOCS_BASE"
"""The environment variable that points the links at a documentation build or site instead of the page
:func:`local_spec_page` writes."""

_PAGE: Final = "spec.html"


class _NoPlaceForThePage(OSError):
    """Neither the cache directory nor the temporary directory could hold the page."""


@functools.lru_cache(maxsize=1)
def _page() -> tuple[str, str]:
    """The page's text and the name of the directory it goes in (the registry does not change at run time)."""
    text = render_spec_page()
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return text, f"spec-{SPEC_VERSION}-{digest}"


def _cache_dirs() -> list[Path]:
    """Where the page may go, in order of preference."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg:
        cache = Path(xdg)
    elif sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        cache = Path(os.environ["LOCALAPPDATA"])
    elif sys.platform == "darwin":
        cache = Path.home() / "Library" / "Caches"
    else:
        cache = Path.home() / ".cache"
    user = getattr(os, "getuid", lambda: None)()  # one directory per user in a shared temporary directory
    fallback = "lmstream" if user is None else f"lmstream-{user}"
    return [cache / "lmstream", Path(tempfile.gettempdir()) / fallback]


def _holds(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole: a reader never sees half a page, a race of writers is harmless."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".spec-", suffix=".html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def local_spec_page() -> Path:
    """The spec page rendered from the installed registry, written first if it is not there yet.

    :raises OSError: when neither the cache directory nor the temporary directory can hold it.
    """
    text, directory = _page()
    problems: list[str] = []
    for base in _cache_dirs():
        path = base / directory / _PAGE
        try:
            if not _holds(path, text):  # missing, or not this page (truncated, edited, someone else's)
                _write(path, text)
        except OSError as exc:
            problems.append(f"{base}: {exc.strerror or exc}")
            continue
        return path
    raise _NoPlaceForThePage(f"cannot write the local spec page ({'; '.join(problems)})")


def docs_base() -> str:
    """The base URL in force: ``$LMSTREAM_DOCS_BASE`` when set and not blank, else the ``file://`` URL of
    the directory holding :func:`local_spec_page`. No trailing ``/``.

    :raises OSError: when the variable is not set and the page cannot be written anywhere.
    """
    base = os.environ.get(DOCS_BASE_ENV, "").strip()
    if not base:
        base = local_spec_page().parent.resolve().as_uri()
    return base.rstrip("/")


def spec_url(requirement_id: str) -> str:
    """The URL of a requirement's section of the spec, e.g. ``.../spec.html#es-3``.

    Without ``LMSTREAM_DOCS_BASE``, and should no directory take the local page, the answer says so
    instead of linking a page that does not exist.

    :raises lmstream.spec.UnknownRequirementError: for an ID that is not in the registry.
    """
    anchor = get_requirement(requirement_id).anchor
    try:
        base = docs_base()
    except OSError as exc:
        return f"{requirement_id} in lmstream-spec {SPEC_VERSION} ({exc}; set {DOCS_BASE_ENV} to link docs)"
    return f"{base}/{_PAGE}#{anchor}"
