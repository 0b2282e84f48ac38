"""Negative cases: what the reference manager's types rightly refuse.

Without a ``build_completion``, a stream that ends without a completion gets the reference's own
``Completion``, so the manager is not a ``StreamManager[MyCompletion]`` and the class is not a
``ManagerFactory[MyCompletion]``; a builder must return a ``Completion``.

Each offending line carries ``# type: ignore[<mypy code>]``; ``test_typing_cases.py`` strips the markers
and shows both checkers report each line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lmstream import reference
from lmstream.spec import ManagerFactory, StreamManager

from ._shapes import MyCompletion


async def engine_stream() -> AsyncIterator[str | MyCompletion]:
    yield "hi"


def not_a_completion(role: Any, text: str) -> str:
    return text


def cases() -> None:
    plain = reference.StreamManager(engine_stream(), "assistant")
    narrowed: StreamManager[MyCompletion] = plain  # type: ignore[assignment]  # may be reference.Completion
    factory: ManagerFactory[MyCompletion] = reference.StreamManager  # type: ignore[assignment]  # same
    wrong = reference.StreamManager(engine_stream(), "assistant", build_completion=not_a_completion)  # type: ignore[arg-type]  # builds a str
    del narrowed, factory, wrong
