"""The engine authors' guide's pytest example: the engine conformance checks as tests of one's own suite.

The guide's doctest runs pytest on this file in-process (docs/guides/engine-authors.rst); ``make pytest``
does not collect it (it is not under the testpaths), ``pytest docs/guides/examples`` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from my_engines import ChunkEngine

from lmstream.conformance import EngineConformance


class TestChunkEngine(EngineConformance):
    engine = ChunkEngine  # a zero-argument callable is called afresh for every check
    timeout = 0.5  # seconds per check
    # Opt-outs are explicit, need a reason, and show up in the report as skips with that reason.
    not_applicable: ClassVar[Mapping[str, str]] = {"ES-11": "this provider always sends text"}
