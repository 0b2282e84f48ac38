"""Sphinx configuration for the lmstream docs.

The normative spec is rendered from the requirement registry, the lifecycle diagram from the state enum,
and the API reference from each package's ``__all__``; see the extensions in ``docs/_ext``. The build
needs no network and no system package: ``make docs`` from a fresh clone with Python and PyPI only. The
diagrams are drawn in the browser by the Mermaid vendored in ``_static/mermaid`` (see
``docs/_ext/mermaid.py``); the pages fetch nothing either.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The extensions in docs/_ext import one another relatively, so they are loaded as the namespace package
# ``docs._ext`` from the repository root: the same name docs/tests and the type checkers use.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The guides' example modules (my_engines, ...) are imported by their doctests under their own names, as a
# reader's modules would be, e.g. ``lmstream check engine my_engines:ChunkEngine``.
sys.path.insert(0, str(Path(__file__).resolve().parent / "guides" / "examples"))

from lmstream.spec import REQUIREMENTS, SPEC_VERSION

project = "lmstream"
author = "the lmstream developers"
copyright = "2026, the lmstream developers"
release = SPEC_VERSION
version = SPEC_VERSION

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.doctest",
    "docs._ext.requirements",  # lmstream-requirements, the :req: role, the lmstream domain
    "docs._ext.lifecycle",  # lmstream-state-diagram, lmstream-transitions
    "docs._ext.sequence",  # lmstream-sequence (Mermaid sequence diagrams)
    "docs._ext.traceability",  # lmstream-traceability
    "docs._ext.api",  # lmstream-api
    "docs._ext.resolve",  # references by defining path (asyncio.locks.Lock) reach the documented name
    "docs._ext.typingcases",  # lmstream-typing-cases
    "docs._ext.mutation",  # lmstream-mutation
]

rst_prolog = f"""
.. |spec-version| replace:: {SPEC_VERSION}
.. |requirement-count| replace:: {len(REQUIREMENTS)}
"""

# Offline intersphinx: the targets are the real documentation sites, but the inventories are small files
# committed in docs/_intersphinx (Sphinx's plain-text inventory format, one "name type page" a line) listing
# the names these docs refer to. The build never touches the network. When a new stdlib name is referred
# to, nitpicky mode fails the build until it is added: by hand, or refreshed from the real inventory with
#   python -m docs._ext.inventory docs/_intersphinx/python.inv \
#       https://docs.python.org/3/objects.inv --add NAME
# (see docs/_ext/inventory.py).
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", "_intersphinx/python.inv"),
    "typing_extensions": (
        "https://typing-extensions.readthedocs.io/en/latest",
        "_intersphinx/typing_extensions.inv",
    ),
}


nitpicky = True
nitpick_ignore_regex = [
    # Private names (a path component starting with one underscore, e.g. ``StreamManager._fail``) are never
    # documented, by design; a docstring that mentions one shows it as code, unlinked. Dunders such as
    # ``__aiter__`` are not matched: they are documented where they are part of a contract.
    (r"py:.*", r"(.+\.)?_[A-Za-z0-9]\w*(\..+)?"),
    # ManagerMachine's base class (shown by autodoc): hypothesis has no offline inventory here; the explorer
    # guide links hypothesis's documentation by its address.
    (r"py:class", r"hypothesis\.stateful\.RuleBasedStateMachine"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True

exclude_patterns = ["_build", "tests", "_intersphinx"]
templates_path: list[str] = []
html_theme = "alabaster"
html_theme_options = {"page_width": "1100px", "sidebar_width": "230px", "fixed_sidebar": False}
html_static_path = ["_static"]
html_css_files = ["lmstream.css"]
