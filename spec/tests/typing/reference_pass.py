"""Positive cases: the reference manager (lmstream.reference) conforms, with precise completion types.

Covers ``StreamManager`` as a ``StoppableStreamManager`` and, through its kani-shaped constructor, as a
``ManagerFactory``; ``completion()`` typed as "the engine's completion or the built one" without a
builder and exactly the builder's type with one; ``from_message`` (SM-17) and ``round_stream`` as a
``RoundStreamFactory``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from typing_extensions import assert_type

from lmstream import reference
from lmstream.spec import (
    Completion,
    ManagerFactory,
    Message,
    RoundStreamFactory,
    StoppableStreamManager,
    StreamManager,
    StreamState,
)

from ._shapes import Msg, MyCompletion


async def engine_stream() -> AsyncIterator[str | MyCompletion]:
    yield "hi"
    yield MyCompletion(Msg("assistant", "hi"))


async def token_stream() -> AsyncIterator[str]:
    yield "hi"


def my_completion(role: Any, text: str) -> MyCompletion:
    return MyCompletion(Msg(str(role), text))


# The class is a factory of the base Protocol's type: its built completions are Completions.
factory: ManagerFactory[Completion] = reference.StreamManager


# With a builder the completion type is exactly the builder's, so a factory that passes one is a factory
# over MyCompletion. (A functools.partial would pass too, but only because both checkers type it from the
# overload without a builder, as partial[StreamManager[Any | Completion]]: it would accept any builder.)
def typed_factory(
    stream_iter: AsyncIterable[str | MyCompletion],
    role: Any,
    *,
    after: Callable[[MyCompletion], Awaitable[object]] | None = None,
    lock: asyncio.Lock | None = None,
) -> reference.StreamManager[MyCompletion]:
    return reference.StreamManager(stream_iter, role, after=after, lock=lock, build_completion=my_completion)


_typed_factory_conforms: ManagerFactory[MyCompletion] = typed_factory
rounds: RoundStreamFactory[Completion] = reference.round_stream


async def cases() -> None:
    # Without a builder, completion() is the engine's completion or the reference's own built one.
    plain = reference.StreamManager(engine_stream(), "assistant")
    assert_type(await plain.completion(), MyCompletion | reference.Completion)
    stoppable: StoppableStreamManager[Completion] = plain
    assert_type(stoppable.state, StreamState)
    await stoppable.aclose()

    built = reference.StreamManager(engine_stream(), "assistant", build_completion=my_completion)
    assert_type(await built.completion(), MyCompletion)
    as_protocol: StreamManager[MyCompletion] = built
    assert_type(await as_protocol, Message)

    # A token-only engine: the completion is always the reference's own.
    tokens_only = reference.StreamManager(token_stream(), "assistant")
    assert_type(await tokens_only.completion(), reference.Completion)

    finished = reference.StreamManager.from_message(Msg("tool", "42"))
    assert_type(await finished.completion(), reference.Completion)
