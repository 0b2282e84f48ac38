"""Known limit: kani's ``StreamManager`` does not satisfy the Protocols statically (kani 1.10).

kani annotates ``StreamManager.__aiter__`` as returning ``AsyncIterable[str]``. The object it returns is
an async generator, so ``async for`` works at run time and ``isinstance(manager, StreamManager)`` is true
(test_protocols_runtime.py), but an ``AsyncIterable`` has no ``__anext__``, so statically ``async for``
over it is an error and the Protocol rightly requires ``AsyncIterator[str]``. Loosening the Protocol would
make every conforming manager's ``async for`` a type error; the annotation is kani's to fix.

The class is not a ``ManagerFactory`` either, for the same reason and one more: ``lock: asyncio.Lock =
None`` is an implicit ``Optional``, which both checkers read (PEP 484 now says so) as ``asyncio.Lock``, so
``lock=None`` is rejected. Integrators who wrap kani's manager should ``typing.cast`` it to
``StreamManager[BaseCompletion]`` at that one place; ``lmstream check manager`` verifies the behaviour.

Each marked line carries ``# type: ignore[<mypy code>]`` (see messages_fail.py for how that works): if a
kani release fixes the annotations, both checkers report the marker as unused and these cases move to
kani_pass.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from kani.engines.base import BaseCompletion
from kani.models import ChatRole
from kani.streaming import DummyStream
from kani.streaming import StreamManager as KaniStreamManager

from lmstream.spec import ManagerFactory, StreamManager


def kani_manager_is_not_a_stream_manager(
    stream_iter: AsyncIterator[str | BaseCompletion],
) -> StreamManager[BaseCompletion]:
    return KaniStreamManager(stream_iter, ChatRole.ASSISTANT)  # type: ignore[return-value]  # __aiter__


def kani_dummy_stream_is_not_a_stream_manager(stream: DummyStream) -> StreamManager[BaseCompletion]:
    return stream  # type: ignore[return-value]  # inherits the __aiter__ annotation


# __aiter__ again, and ``lock: asyncio.Lock = None`` does not accept ``lock=None``.
kani_factory: ManagerFactory[BaseCompletion] = KaniStreamManager  # type: ignore[assignment]
