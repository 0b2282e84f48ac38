"""The runtime-checkable Protocols accept kani's types and plain dataclasses, and reject look-alikes.

``isinstance`` against a Protocol checks that members exist, nothing more (see the module docstring of
lmstream.spec.protocols); the static side of the same cases is in tests/typing/.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from kani.engines.base import BaseCompletion, BaseEngine
from kani.engines.base import Completion as KaniCompletion
from kani.models import ChatMessage, ChatRole
from kani.streaming import StreamManager as KaniStreamManager

from lmstream.spec import (
    Completion,
    Engine,
    EngineStream,
    Message,
    StoppableStreamManager,
    StreamManager,
    StreamState,
)


@dataclass(frozen=True)
class Msg:
    role: str
    text: str | None


@dataclass(frozen=True)
class Comp:
    message: Msg
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class NoText:
    role: str


@dataclass(frozen=True)
class NoCompletionTokens:
    message: Msg
    prompt_tokens: int | None = None


class ScriptedKaniEngine(BaseEngine):
    max_context_size = 1000

    def prompt_len(self, messages: Any, functions: Any = None, **kwargs: Any) -> Any:  # kani: sync or async
        return 0

    async def predict(self, messages: Any, functions: Any = None, **hyperparams: Any) -> BaseCompletion:
        return KaniCompletion(ChatMessage(role=ChatRole.ASSISTANT, content="hi"))


class GeneratorEngine:
    async def stream(
        self, messages: Any, functions: Any = None, **hyperparams: Any
    ) -> AsyncIterator[str | Comp]:
        yield "hi"
        yield Comp(Msg("assistant", "hi"))


class SyncListEngine:
    def strem(self, messages: Any) -> list[str]:  # misspelt on purpose: no `stream` member
        return ["hi"]


class FakeManager:
    role = "assistant"

    def __aiter__(self) -> AsyncIterator[str]:
        raise NotImplementedError

    async def completion(self) -> Comp:
        raise NotImplementedError

    async def message(self) -> Msg:
        raise NotImplementedError

    def __await__(self) -> Any:
        raise NotImplementedError


class StoppableFakeManager(FakeManager):
    state = StreamState.PENDING

    async def aclose(self) -> None:
        return None


class ManagerWithoutCompletion:
    role = "assistant"

    def __aiter__(self) -> AsyncIterator[str]:
        raise NotImplementedError

    async def message(self) -> Msg:
        raise NotImplementedError


def test_message_accepts_kani_and_dataclasses() -> None:
    assert isinstance(ChatMessage(role=ChatRole.ASSISTANT, content="x"), Message)
    assert isinstance(ChatMessage(role=ChatRole.ASSISTANT, content=None), Message)
    assert isinstance(Msg("assistant", None), Message)
    assert not isinstance(NoText("assistant"), Message)
    assert not isinstance("text", Message)


def test_completion_accepts_kani_and_dataclasses() -> None:
    assert isinstance(KaniCompletion(ChatMessage(role=ChatRole.ASSISTANT, content="x"), 3, 4), Completion)
    assert isinstance(Comp(Msg("assistant", "x")), Completion)
    assert not isinstance(NoCompletionTokens(Msg("assistant", "x")), Completion)
    assert not isinstance(Msg("assistant", "x"), Completion)


async def test_engine_and_stream_accept_generators_and_kani() -> None:
    assert isinstance(ScriptedKaniEngine(), Engine)
    assert isinstance(GeneratorEngine(), Engine)
    assert not isinstance(SyncListEngine(), Engine)
    stream = GeneratorEngine().stream([])
    assert isinstance(stream, EngineStream)
    assert isinstance(stream, AsyncGenerator)
    await stream.aclose()
    assert not isinstance(["hi"], EngineStream)


async def test_manager_protocols() -> None:
    async def _nothing() -> AsyncGenerator[str, None]:
        return
        yield  # pragma: no cover - makes this an async generator

    gen = _nothing()
    # Typed as object: statically, kani's manager does not conform (it annotates __aiter__ as returning
    # AsyncIterable, on which `async for` is a type error); at run time its members all exist.
    kani_manager: object = KaniStreamManager(gen, role=ChatRole.ASSISTANT, lock=asyncio.Lock())
    assert isinstance(kani_manager, StreamManager)
    assert not isinstance(kani_manager, StoppableStreamManager)  # kani has no aclose() or state
    await gen.aclose()
    assert isinstance(FakeManager(), StreamManager)
    assert isinstance(StoppableFakeManager(), StoppableStreamManager)
    assert not isinstance(ManagerWithoutCompletion(), StreamManager)


@pytest.mark.parametrize("proto", [Message, Completion, Engine, EngineStream, StreamManager])
def test_plain_objects_conform_to_nothing(proto: type[Any]) -> None:
    assert not isinstance(object(), proto)
