"""Real engines, written as their authors write them, over the SDKs they use: the openai SDK (async, its
stream helper, and the sync client in a worker thread), the anthropic SDK, plain httpx, and kani's own
``OpenAIEngine`` and ``AnthropicEngine``. Each is written naively (the SDK's response is never closed)
and carefully (it is closed with the stream).

Nothing here is a test. Every engine is reached through a zero-argument factory named in
:data:`ENGINES`, importable as ``conformance.tests._sdk_engines:<name>`` (so the command line, and a
worker process that imports targets by name, can run it). A factory builds a fresh client each call: over
:func:`conformance.tests._replay.mock_transport` (``<name>``), or over real sockets to the local server
whose URL is in ``$LMSTREAM_TEST_SSE_SERVER`` (``<name>_socket``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import aiohttp
import httpx
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam, RawContentBlockDeltaEvent, TextDelta
from kani.engines.anthropic.engine import AnthropicEngine
from kani.engines.openai.engine import OpenAIEngine
from openai import AsyncOpenAI, OpenAI, Stream
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from lmstream.reference import ChatMessage, Completion

from ._replay import mock_transport, server_url

MOCK_BASE: Final = "https://api.replayed.test"
"""The base URL the in-memory engines call (MockTransport answers, nothing leaves the process)."""

MODEL_OPENAI: Final = "gpt-4.1-nano"
MODEL_ANTHROPIC: Final = "claude-haiku-4-5"


def _messages(messages: Any) -> list[ChatCompletionMessageParam]:
    return cast(list[ChatCompletionMessageParam], [{"role": m.role, "content": m.text} for m in messages])


def _anthropic_messages(messages: Any) -> tuple[str, list[MessageParam]]:
    system = " ".join(m.text for m in messages if m.role == "system")
    turns = [{"role": m.role, "content": m.text} for m in messages if m.role != "system"]
    return system, cast(list[MessageParam], turns)


def _plain(messages: Any) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.text} for m in messages]


def _completion(text: str, prompt_tokens: int | None, completion_tokens: int | None) -> Completion:
    return Completion(ChatMessage("assistant", text), prompt_tokens, completion_tokens)


# ---------------------------------------------------------------------------------------------- clients
@dataclass(frozen=True)
class Network:
    """Where a factory's client sends its requests: replayed in memory, or the local server's sockets."""

    socket: bool

    def base(self) -> str:
        return server_url() if self.socket else MOCK_BASE

    def async_client(self) -> httpx.AsyncClient:
        if self.socket:
            return httpx.AsyncClient(base_url=self.base(), timeout=5.0)
        return httpx.AsyncClient(base_url=self.base(), transport=mock_transport())

    def sync_client(self) -> httpx.Client:
        if self.socket:
            return httpx.Client(base_url=self.base(), timeout=5.0)
        return httpx.Client(base_url=self.base(), transport=mock_transport())

    def openai(self) -> AsyncOpenAI:
        return AsyncOpenAI(
            api_key="sk-test", base_url=f"{self.base()}/v1", http_client=self.async_client(), max_retries=0
        )

    def openai_sync(self) -> OpenAI:
        return OpenAI(
            api_key="sk-test", base_url=f"{self.base()}/v1", http_client=self.sync_client(), max_retries=0
        )

    def anthropic(self) -> AsyncAnthropic:
        return AsyncAnthropic(
            api_key="sk-ant-test", base_url=self.base(), http_client=self.async_client(), max_retries=0
        )


# ---------------------------------------------------------------------------------------------- openai
class OpenAINaive:
    """``async for chunk in await client.chat.completions.create(stream=True)``: the SDK's stream is never
    closed, so closing this stream leaves the HTTP response open."""

    def __init__(self, network: Network) -> None:
        self.client = network.openai()

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        chunks = await self.client.chat.completions.create(
            model=MODEL_OPENAI,
            messages=_messages(messages),
            stream=True,
            stream_options={"include_usage": True},
        )
        text: list[str] = []
        usage = None
        async for chunk in chunks:
            usage = chunk.usage or usage
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
                yield chunk.choices[0].delta.content
        yield _completion(
            "".join(text), usage.prompt_tokens if usage else None, usage.completion_tokens if usage else None
        )


class OpenAICareful(OpenAINaive):
    """The same, with the SDK's stream as an async context manager: closing this stream closes it."""

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        chunks = await self.client.chat.completions.create(
            model=MODEL_OPENAI,
            messages=_messages(messages),
            stream=True,
            stream_options={"include_usage": True},
        )
        text: list[str] = []
        usage = None
        async with chunks:
            async for chunk in chunks:
                usage = chunk.usage or usage
                if chunk.choices and chunk.choices[0].delta.content:
                    text.append(chunk.choices[0].delta.content)
                    yield chunk.choices[0].delta.content
        yield _completion(
            "".join(text), usage.prompt_tokens if usage else None, usage.completion_tokens if usage else None
        )


class OpenAIStreamHelper(OpenAINaive):
    """``async with client.chat.completions.stream(...)``, the SDK's streaming helper (careful)."""

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        async with self.client.chat.completions.stream(
            model=MODEL_OPENAI,
            messages=_messages(messages),
            stream_options={"include_usage": True},
        ) as events:
            async for event in events:
                if event.type == "content.delta" and event.delta:
                    yield event.delta
            final = await events.get_final_completion()
        usage = final.usage
        yield _completion(
            final.choices[0].message.content or "",
            usage.prompt_tokens if usage else None,
            usage.completion_tokens if usage else None,
        )


class OpenAIEveryDelta(OpenAICareful):
    """Careful about closing, careless about items: yields ``delta.content`` as it comes, ``None`` included
    (an ES-2 violation; ES-5 is kept)."""

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        async with await self.client.chat.completions.create(
            model=MODEL_OPENAI,
            messages=_messages(messages),
            stream=True,
        ) as chunks:
            text: list[str] = []
            async for chunk in chunks:
                if chunk.choices:
                    text.append(chunk.choices[0].delta.content or "")
                    yield chunk.choices[0].delta.content
        yield _completion("".join(text), None, None)


class OpenAISyncInThreadNaive:
    """The sync openai client, each blocking step in a worker thread (``asyncio.to_thread``); the response
    is never closed."""

    def __init__(self, network: Network) -> None:
        self.client = network.openai_sync()

    def _open(self, messages: Any) -> Stream[ChatCompletionChunk]:
        return self.client.chat.completions.create(
            model=MODEL_OPENAI,
            messages=_messages(messages),
            stream=True,
        )

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        chunks = await asyncio.to_thread(self._open, messages)
        iterator = iter(chunks)
        text: list[str] = []
        while (chunk := await asyncio.to_thread(next, iterator, None)) is not None:
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
                yield chunk.choices[0].delta.content
        yield _completion("".join(text), None, None)


class OpenAISyncInThreadCareful(OpenAISyncInThreadNaive):
    """The same, closing the SDK's stream in a ``finally`` (in the worker thread, as the rest)."""

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        chunks = await asyncio.to_thread(self._open, messages)
        try:
            iterator = iter(chunks)
            text: list[str] = []
            while (chunk := await asyncio.to_thread(next, iterator, None)) is not None:
                if chunk.choices and chunk.choices[0].delta.content:
                    text.append(chunk.choices[0].delta.content)
                    yield chunk.choices[0].delta.content
        finally:
            await asyncio.to_thread(chunks.close)
        yield _completion("".join(text), None, None)


# ---------------------------------------------------------------------------------------------- anthropic
class AnthropicNaive:
    """``async for event in await client.messages.create(stream=True)``, never closed."""

    def __init__(self, network: Network) -> None:
        self.client = network.anthropic()

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        system, turns = _anthropic_messages(messages)
        events = await self.client.messages.create(
            model=MODEL_ANTHROPIC, max_tokens=256, system=system, messages=turns, stream=True
        )
        text: list[str] = []
        async for event in events:
            delta = event.delta if isinstance(event, RawContentBlockDeltaEvent) else None
            if isinstance(delta, TextDelta) and delta.text:
                text.append(delta.text)
                yield delta.text
        yield _completion("".join(text), None, None)


class AnthropicCareful(AnthropicNaive):
    """``async with client.messages.stream(...)`` and its ``text_stream`` (careful)."""

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        system, turns = _anthropic_messages(messages)
        async with self.client.messages.stream(
            model=MODEL_ANTHROPIC, max_tokens=256, system=system, messages=turns
        ) as stream:
            async for text in stream.text_stream:
                if text:
                    yield text
            final = await stream.get_final_message()
        yield _completion(
            "".join(b.text for b in final.content if b.type == "text"),
            final.usage.input_tokens,
            final.usage.output_tokens,
        )


# ---------------------------------------------------------------------------------------------- httpx
async def _tokens(lines: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    async for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            token = json.loads(line[len("data: ") :])["token"]
            if token:
                yield token


class HttpxNaive:
    """Plain httpx: ``await client.send(request, stream=True)``, read line by line, never closed. Its
    inner generator is closed with ``contextlib.aclosing``: only the response leaks."""

    def __init__(self, network: Network) -> None:
        self.client = network.async_client()

    def _request(self, messages: Any) -> httpx.Request:
        return self.client.build_request("POST", "/v1/generate", json={"messages": _plain(messages)})

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        response = await self.client.send(self._request(messages), stream=True)
        text: list[str] = []
        async with contextlib.aclosing(_tokens(response.aiter_lines())) as tokens:
            async for token in tokens:
                text.append(token)
                yield token
        yield _completion("".join(text), None, None)


class HttpxCareful(HttpxNaive):
    """Plain httpx: ``async with client.stream(...) as response`` (careful)."""

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        text: list[str] = []
        async with (
            self.client.stream("POST", "/v1/generate", json={"messages": _plain(messages)}) as response,
            contextlib.aclosing(_tokens(response.aiter_lines())) as tokens,
        ):
            async for token in tokens:
                text.append(token)
                yield token
        yield _completion("".join(text), None, None)


class HttpxInnerLeft(HttpxCareful):
    """The response is closed with ``async with``, but the engine's own line parser (an async generator)
    is iterated without being closed: closing the stream drops it unclosed (ES-5's rule (b))."""

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        text: list[str] = []
        async with self.client.stream(
            "POST", "/v1/generate", json={"messages": _plain(messages)}
        ) as response:
            async for token in _tokens(response.aiter_lines()):
                text.append(token)
                yield token
        yield _completion("".join(text), None, None)


# ---------------------------------------------------------------------------------------------- aiohttp
class AiohttpNaive:
    """aiohttp: ``await session.post(...)``, read line by line, never released (real sockets only:
    aiohttp has no in-memory transport)."""

    def __init__(self, network: Network) -> None:
        self.base = network.base()
        self.session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:  # created in the running loop, on first use
            self.session = aiohttp.ClientSession()
        return self.session

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        response = await self._session().post(f"{self.base}/v1/generate", json={"messages": _plain(messages)})
        text: list[str] = []
        async for raw in response.content:
            line = raw.decode().strip()
            if (
                line.startswith("data: ")
                and line != "data: [DONE]"
                and (token := json.loads(line[6:])["token"])
            ):
                text.append(token)
                yield token
        yield _completion("".join(text), None, None)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


class AiohttpCareful(AiohttpNaive):
    """aiohttp: ``async with session.post(...) as response`` (careful)."""

    async def stream(self, messages: Any, functions: Any = None, **hyperparams: Any) -> AsyncIterator[object]:
        text: list[str] = []
        url = f"{self.base}/v1/generate"
        async with self._session().post(url, json={"messages": _plain(messages)}) as response:
            async for raw in response.content:
                line = raw.decode().strip()
                if (
                    line.startswith("data: ")
                    and line != "data: [DONE]"
                    and (token := json.loads(line[6:])["token"])
                ):
                    text.append(token)
                    yield token
        yield _completion("".join(text), None, None)


# ---------------------------------------------------------------------------------------------- kani
def _kani_openai(network: Network) -> OpenAIEngine:
    return OpenAIEngine(client=network.openai(), model=MODEL_OPENAI, api_type="chat_completions")


def _kani_anthropic(network: Network) -> AnthropicEngine:
    return AnthropicEngine(client=network.anthropic(), model=MODEL_ANTHROPIC, max_tokens=256)


# ---------------------------------------------------------------------------------------------- the list
@dataclass(frozen=True)
class RealEngine:
    """One real engine of the tests and the docs' ecosystem report.

    :ivar name: the factory's name in this module (``<name>_socket`` is the real-socket variant).
    :ivar what: one line saying what it is.
    :ivar make: builds it over a network.
    :ivar kani: whether it takes kani's messages (the prompt is ``_engines:KANI_PROMPT``).
    :ivar fails: the requirement IDs it must fail (exactly: nothing else fails).
    :ivar fix: for a failing engine, the fix, in one line.
    """

    name: str
    what: str
    make: Callable[[Network], object]
    fails: frozenset[str] = frozenset()
    kani: bool = False
    fix: str = ""


ENGINES: Final[tuple[RealEngine, ...]] = (
    RealEngine(
        "openai_naive",
        "openai SDK: async for over chat.completions.create(stream=True)",
        OpenAINaive,
        frozenset({"ES-5"}),
        fix="`async with await client.chat.completions.create(..., stream=True) as chunks:`",
    ),
    RealEngine("openai_careful", "openai SDK: the same, inside `async with` the SDK's stream", OpenAICareful),
    RealEngine(
        "openai_stream_helper",
        "openai SDK: `async with client.chat.completions.stream(...)`",
        OpenAIStreamHelper,
    ),
    RealEngine(
        "openai_every_delta",
        "openai SDK, closed with `async with`, yielding every delta.content (None included)",
        OpenAIEveryDelta,
        frozenset({"ES-2", "ES-10"}),
        fix="yield `delta.content` only when it is a non-empty str",
    ),
    RealEngine(
        "openai_sync_thread_naive",
        "sync openai SDK in a worker thread (asyncio.to_thread), never closed",
        OpenAISyncInThreadNaive,
        frozenset({"ES-5"}),
        fix="close the SDK's stream in a `finally`: `await asyncio.to_thread(chunks.close)`",
    ),
    RealEngine(
        "openai_sync_thread_careful",
        "sync openai SDK in a worker thread, closed in a `finally`",
        OpenAISyncInThreadCareful,
    ),
    RealEngine(
        "anthropic_naive",
        "anthropic SDK: async for over messages.create(stream=True)",
        AnthropicNaive,
        frozenset({"ES-5"}),
        fix="`async with client.messages.stream(...) as stream:`",
    ),
    RealEngine(
        "anthropic_careful", "anthropic SDK: `async with client.messages.stream(...)`", AnthropicCareful
    ),
    RealEngine(
        "httpx_naive",
        "plain httpx: `await client.send(request, stream=True)`, never closed",
        HttpxNaive,
        frozenset({"ES-5"}),
        fix="`async with client.stream(...) as response:`",
    ),
    RealEngine("httpx_careful", "plain httpx: `async with client.stream(...)`", HttpxCareful),
    RealEngine(
        "httpx_inner_left",
        "plain httpx, closed with `async with`, but its own parser generator is not closed",
        HttpxInnerLeft,
        frozenset({"ES-5"}),
        fix="close the inner generator: `async with contextlib.aclosing(parser) as tokens:`",
    ),
    RealEngine(
        "kani_openai",
        "kani 1.10 `OpenAIEngine` (chat completions)",
        _kani_openai,
        frozenset({"ES-5", "ES-10"}),
        kani=True,
        fix="close the inner `_stream_chat_completions()` and the SDK's stream; skip empty deltas",
    ),
    RealEngine("kani_anthropic", "kani 1.10 `AnthropicEngine`", _kani_anthropic, kani=True),
)
"""Every real engine, in report order."""

SOCKET_ONLY: Final[tuple[RealEngine, ...]] = (
    RealEngine(
        "aiohttp_naive",
        "aiohttp: `await session.post(...)`, never released",
        AiohttpNaive,
        frozenset({"ES-5"}),
        fix="`async with session.post(...) as response:`",
    ),
    RealEngine("aiohttp_careful", "aiohttp: `async with session.post(...)`", AiohttpCareful),
)
"""Engines over aiohttp, which has no in-memory transport: real sockets only (``<name>_socket``)."""


def _factory(name: str, socket: bool) -> Callable[[], object]:
    (engine,) = [e for e in (*ENGINES, *SOCKET_ONLY) if e.name == name]

    def make() -> object:
        return engine.make(Network(socket))

    make.__name__ = make.__qualname__ = engine.name + ("_socket" if socket else "")
    make.__module__ = __name__
    make.__doc__ = f"{engine.what}{' (real sockets)' if socket else ''}: a fresh engine."
    return make


openai_naive = _factory("openai_naive", False)
openai_careful = _factory("openai_careful", False)
openai_stream_helper = _factory("openai_stream_helper", False)
openai_every_delta = _factory("openai_every_delta", False)
openai_sync_thread_naive = _factory("openai_sync_thread_naive", False)
openai_sync_thread_careful = _factory("openai_sync_thread_careful", False)
anthropic_naive = _factory("anthropic_naive", False)
anthropic_careful = _factory("anthropic_careful", False)
httpx_naive = _factory("httpx_naive", False)
httpx_careful = _factory("httpx_careful", False)
httpx_inner_left = _factory("httpx_inner_left", False)
kani_openai = _factory("kani_openai", False)
kani_anthropic = _factory("kani_anthropic", False)

openai_naive_socket = _factory("openai_naive", True)
openai_careful_socket = _factory("openai_careful", True)
openai_stream_helper_socket = _factory("openai_stream_helper", True)
openai_every_delta_socket = _factory("openai_every_delta", True)
openai_sync_thread_naive_socket = _factory("openai_sync_thread_naive", True)
openai_sync_thread_careful_socket = _factory("openai_sync_thread_careful", True)
anthropic_naive_socket = _factory("anthropic_naive", True)
anthropic_careful_socket = _factory("anthropic_careful", True)
httpx_naive_socket = _factory("httpx_naive", True)
httpx_careful_socket = _factory("httpx_careful", True)
httpx_inner_left_socket = _factory("httpx_inner_left", True)
kani_openai_socket = _factory("kani_openai", True)
kani_anthropic_socket = _factory("kani_anthropic", True)

aiohttp_naive_socket = _factory("aiohttp_naive", True)
aiohttp_careful_socket = _factory("aiohttp_careful", True)
