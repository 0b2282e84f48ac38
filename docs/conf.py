"""Sphinx configuration for the lmstream docs. The normative spec is rendered from the registry."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

from lmstream.spec import SPEC_VERSION

project = "lmstream"
author = "the lmstream developers"
copyright = "2026, the lmstream developers"
release = SPEC_VERSION
version = SPEC_VERSION

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.doctest",
    "lmstream_registry",
]
intersphinx_mapping = {"python": ("https://docs.python.org/3", None)}
# Offline builds: intersphinx inventories are fetched when reachable; a failure is not an error.
intersphinx_timeout = 5
nitpicky = True
nitpick_ignore_regex = [
    # TypeVars and typing internals have no reference target of their own.
    ("py:class", r"lmstream\.spec\.protocols\.CompletionT(_co)?"),
    ("py:class", r"CompletionT(_co)?"),
    ("py:class", r"(typing|collections\.abc|asyncio(\.locks)?)\..*"),
    ("py:class", r"(Any|Awaitable|AsyncIterable|AsyncIterator|Callable|Generator|Mapping|Iterable)"),
    ("py:class", r"(Final|StreamState|Level|Group|Requirement|Completion|Message|StreamManager)"),
    ("py:class", r"lmstream\.spec\.(registry|state|protocols)\.\w+"),
    ("py:data", r".*"),
    ("py:obj", r"lmstream\.spec\..*\.CompletionT(_co)?"),
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
exclude_patterns = ["_build"]
html_theme = "alabaster"
