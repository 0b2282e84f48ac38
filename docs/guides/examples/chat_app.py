"""The integrators' guide's example (``docs/guides/integrators.rst``): application code typed with the
Protocols of :mod:`lmstream.spec`, so that it accepts every conforming engine and manager and nothing
else. pyright checks this file as part of ``docs``; the guide's doctests run it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from my_engines import ChunkEngine, Message
from my_engines import Completion as MyCompletion

from lmstream.reference import StreamManager
from lmstream.spec import Completion, Engine, ManagerFactory, StoppableStreamManager

C = TypeVar("C", bound=Completion)

Send = Callable[[str], Awaitable[None]]


async def reply(engine: Engine[C], factory: ManagerFactory[C], messages: Sequence[object], send: Send) -> C:
    """Stream one reply: any engine, any manager factory, the engine's own completion type back."""
    stream = factory(engine.stream(messages), "assistant")
    async for token in stream:
        await send(token)
    return await stream.completion()


def stop_button(stream: object) -> Callable[[], Awaitable[None]] | None:
    """The stop action of a manager that offers one (SM-21), else ``None``."""
    if isinstance(stream, StoppableStreamManager):
        return stream.aclose
    return None


def build_completion(role: object, text: str) -> MyCompletion:
    """Build the application's own completion when an engine yields none (SM-4)."""
    return MyCompletion(Message(str(role), text))


def my_factory(
    stream_iter: AsyncIterable[str | MyCompletion],
    role: Any,
    *,
    after: Callable[[MyCompletion], Awaitable[object]] | None = None,
    lock: asyncio.Lock | None = None,
) -> StreamManager[MyCompletion]:
    """The reference manager, building the application's own completion type when it must."""
    return StreamManager(stream_iter, role, after=after, lock=lock, build_completion=build_completion)


_my_factory_conforms: ManagerFactory[MyCompletion] = my_factory


async def main(send: Send) -> MyCompletion:
    """One reply from the guides' engine through the reference manager, typed end to end."""
    return await reply(ChunkEngine(), my_factory, [Message("user", "Hi!")], send)
