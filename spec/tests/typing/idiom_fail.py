"""Negative cases: the conformance idiom reports a non-conforming class at the idiom's line, under both.

The messages differ: pyright names the member and the mismatch under the line; mypy's one-line form says
only which class and which Protocol (``Incompatible types in assignment (expression has type
"type[BrokenEngine]", variable has type "type[Engine[MyCompletion]]")``), while its function form lists
the conflicting members as notes. See idiom_pass.py for the idiom itself.

Each offending line carries ``# type: ignore[<mypy code>]`` (see messages_fail.py for how that works).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lmstream.spec import Engine, StoppableStreamManager

from ._shapes import MyCompletion, PlainManager


class BrokenEngine:
    """Yields ``bytes``: the engine author forgot to decode."""

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[bytes]:
        yield b"hi"


_engine_conforms: type[Engine[MyCompletion]] = BrokenEngine  # type: ignore[assignment]  # yields bytes
_stoppable_conforms: type[StoppableStreamManager[MyCompletion]] = PlainManager  # type: ignore[assignment]  # no aclose


def _(engine: BrokenEngine) -> Engine[MyCompletion]:
    return engine  # type: ignore[return-value]  # the function form reports at its return line
