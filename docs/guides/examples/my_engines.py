"""The engine of the engine authors' guide (``docs/guides/engine-authors.rst``), importable as ``my_engines``.

``conf.py`` puts this directory on ``sys.path``, so the guides' doctests import it and run
``lmstream check engine my_engines:ChunkEngine`` on it; pyright checks it as part of ``docs``.

* :func:`provider_events` stands in for a provider SDK's streaming response: one event per network read.
* :class:`ChunkEngine` turns those events into an lmstream engine stream: tokens, then one completion.
* :class:`FirstDraftEngine` is the first draft that forgot to decode the HTTP body: it yields ``bytes``
  (ES-2), which the guide uses to show a failure report.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from lmstream.spec import Engine


@dataclass(frozen=True)
class Message:
    """The engine's message: who said it and the exact text."""

    role: str
    text: str | None


@dataclass(frozen=True)
class Completion:
    """The engine's completion: the message and the provider's token counts (``None`` when unknown)."""

    message: Message
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Usage:
    """The provider's token counts, sent in the last event of a response."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Event:
    """One event of the provider's streaming response, shaped like the big providers' ones."""

    delta: str | None = None  # new text; None when the event carries none
    finish_reason: str | None = None  # set on the event that ends the text
    usage: Usage | None = None  # sent last, after the text has ended


REPLY = ("Hello", ",", " world", "!")
"""The provider's canned reply, in the pieces it arrives in."""

open_connections = 0
"""How many of the provider's responses are open right now (each is closed in its ``finally``)."""


async def provider_events(messages: Any) -> AsyncGenerator[Event, None]:
    """A provider's streaming response: a role-only event, the text pieces, a finish event, the usage."""
    global open_connections
    open_connections += 1
    try:
        yield Event()  # the first event only announces the role: no text
        for piece in REPLY:
            await asyncio.sleep(0)  # the next network read
            yield Event(delta=piece)
        yield Event(finish_reason="stop")
        yield Event(usage=Usage(prompt_tokens=12, completion_tokens=len(REPLY)))
    finally:
        open_connections -= 1  # the SDK closes the HTTP connection here


async def provider_body(messages: Any) -> AsyncGenerator[bytes, None]:
    """The same reply as the raw, undecoded body of the HTTP response."""
    for piece in REPLY:
        await asyncio.sleep(0)
        yield piece.encode()


class ChunkEngine:
    """A conforming engine: the provider's text pieces as tokens, then one completion."""

    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterator[str | Completion]:
        pieces: list[str] = []
        usage: Usage | None = None
        # Close the provider's response when this stream is closed, not when the GC gets to it (ES-5).
        async with contextlib.aclosing(provider_events(messages)) as events:
            async for event in events:
                if event.delta:  # None is not a token (ES-2), nor should "" be (ES-10)
                    pieces.append(event.delta)
                    yield event.delta  # unchanged: never strip a token
                if event.usage is not None:
                    usage = event.usage  # keep it: the completion comes last (ES-3)
        yield Completion(
            Message("assistant", "".join(pieces)),  # exactly the tokens' text (ES-9)
            prompt_tokens=usage.prompt_tokens if usage else None,  # ints or None (ES-4)
            completion_tokens=usage.completion_tokens if usage else None,
        )


class FirstDraftEngine:
    """A first draft that passes the HTTP body through undecoded: it yields ``bytes`` (breaks ES-2)."""

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[bytes]:
        async with contextlib.aclosing(provider_body(messages)) as body:
            async for chunk in body:
                yield chunk


# The static idiom: both mypy and pyright report this line if ChunkEngine stops conforming.
_chunk_engine_conforms: type[Engine[Completion]] = ChunkEngine
