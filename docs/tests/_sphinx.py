"""Run a Sphinx build in-process for the docs tests: isolated, quiet, its warnings captured."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util.docutils import docutils_namespace, patch_docutils

DOCS = Path(__file__).resolve().parent.parent
"""The docs source directory (``docs/``)."""


@dataclass(frozen=True)
class Build:
    """A finished build: the application (its environment holds every documented object) and its warnings."""

    app: Sphinx
    warnings: str

    @property
    def outdir(self) -> Path:
        """Where the builder wrote its output."""
        return Path(self.app.outdir)


def build(srcdir: Path, outdir: Path, *, builder: str = "html", confdir: Path | None = None) -> Build:
    """Build ``srcdir`` (with ``confdir``'s conf.py, default ``srcdir``'s) into ``outdir`` from scratch.

    Docutils' global registries are restored afterwards, so builds do not leak roles into one another.
    Warnings are collected, not raised: each test decides which it expects.
    """
    warnings = io.StringIO()
    conf = confdir or srcdir
    with patch_docutils(conf), docutils_namespace():
        app = Sphinx(
            srcdir,
            conf,
            outdir / builder,
            outdir / "doctrees",
            builder,
            status=None,
            warning=warnings,
            freshenv=True,
        )
        app.build(force_all=True)
    return Build(app, re.sub(r"\x1b\[[0-9;]*m", "", warnings.getvalue()))  # no terminal colours
