"""validate_manager(): the reference manager passes; each violation seen live raises with its ID."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from typing import Any, cast

import pytest

from lmstream.conformance import ValidatedManager, ValidatedStoppableManager, validate_manager
from lmstream.reference import ChatMessage, Completion, StreamManager
from lmstream.spec import (
    Message,
    StreamConsumedError,
    StreamIncompleteError,
    StreamProtocolError,
    StreamState,
)

from ._engines import done


async def _engine(*items: object) -> AsyncGenerator[Any, None]:
    for item in items:
        await asyncio.sleep(0)
        yield item


async def test_the_reference_manager_passes_through() -> None:
    completion = done("Hello")
    manager = StreamManager(_engine("Hel", "lo", completion), "assistant")
    proxy = validate_manager(manager)
    assert isinstance(proxy, ValidatedStoppableManager)
    assert proxy.role == "assistant" and proxy.state.value == "pending"
    assert [token async for token in proxy] == ["Hel", "lo"]
    assert await proxy.completion() is completion
    assert await proxy.message() is completion.message
    assert await proxy is completion.message
    await proxy.aclose()
    assert proxy.state is StreamState.COMPLETED


async def test_an_early_stop_keeps_the_text_seen() -> None:
    proxy = validate_manager(StreamManager(_engine("a", "b", "c", done("abc")), "assistant"))
    iterator = proxy.__aiter__()
    assert await iterator.__anext__() == "a"
    await cast(Any, iterator).aclose()  # the proxy's iterator has aclose(), as the manager's has
    with pytest.raises(StreamIncompleteError) as info:
        await proxy.completion()
    assert info.value.text == "a"


class _Fake:
    """A manager without aclose(), broken in whichever way the test sets up."""

    def __init__(self, tokens: list[object], completion: Completion | None = None) -> None:
        self.role: object = "assistant"
        self.tokens = tokens
        self.result = completion or done("".join(str(t) for t in tokens))
        self.fresh_each_time = False
        self.other_message = False
        self.incomplete: StreamIncompleteError | None = None

    async def _iterate(self) -> AsyncIterator[object]:
        for token in self.tokens:
            yield token

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def completion(self) -> Completion:
        if self.incomplete is not None:
            raise self.incomplete
        if self.fresh_each_time:
            return Completion(self.result.message, None, None)
        return self.result

    async def message(self) -> Message:
        if self.other_message:
            return ChatMessage("assistant", self.result.message.text)
        return (await self.completion()).message

    def __await__(self) -> Generator[Any, Any, Message]:
        return self.message().__await__()


class _FakeStoppable(_Fake):
    def __init__(self, tokens: list[object]) -> None:
        super().__init__(tokens)
        self.state = StreamState.PENDING
        self.state_after_close = StreamState.STOPPED

    async def aclose(self) -> None:
        self.state = self.state_after_close


async def _sm_error(coro: Any) -> str:
    with pytest.raises(StreamProtocolError) as info:
        await coro
    return info.value.requirement_id


async def _iterate(proxy: Any) -> list[object]:
    return [token async for token in proxy]


async def test_sm1_a_non_str_token() -> None:
    proxy = validate_manager(_Fake(["a", 7]))
    assert type(proxy) is ValidatedManager
    assert await _sm_error(_iterate(proxy)) == "SM-1"


async def test_sm16_the_role_changes() -> None:
    fake = _Fake(["a"])
    proxy = validate_manager(fake)
    fake.role = "user"
    with pytest.raises(StreamProtocolError) as info:
        _ = proxy.role
    assert info.value.requirement_id == "SM-16"


async def test_sm5_message_is_not_the_completions() -> None:
    fake = _Fake(["a"])
    fake.other_message = True
    assert await _sm_error(validate_manager(fake).message()) == "SM-5"


async def test_sm7_completion_returns_different_objects() -> None:
    fake = _Fake(["a"])
    fake.fresh_each_time = True
    proxy = validate_manager(fake)
    await proxy.completion()
    assert await _sm_error(proxy.completion()) == "SM-7"


async def test_sm28_the_incomplete_text_is_not_what_the_consumer_saw() -> None:
    fake = _Fake(["a", "b"])
    fake.incomplete = StreamIncompleteError("a", StreamState.INCOMPLETE)
    proxy = validate_manager(fake)
    assert await _iterate(proxy) == ["a", "b"]
    assert await _sm_error(proxy.completion()) == "SM-28"


async def test_sm28_the_reason_is_not_the_state() -> None:
    fake = _FakeStoppable(["a"])
    proxy = validate_manager(fake)
    await _iterate(proxy)
    fake.state = StreamState.INCOMPLETE
    fake.incomplete = StreamIncompleteError("a", StreamState.STOPPED)
    assert await _sm_error(proxy.completion()) == "SM-28"


async def test_sm27_state_moves_backwards_or_is_not_a_state() -> None:
    fake = _FakeStoppable(["a"])
    proxy = validate_manager(fake)
    assert isinstance(proxy, ValidatedStoppableManager)
    fake.state = StreamState.COMPLETED
    assert proxy.state is StreamState.COMPLETED
    fake.state = StreamState.STREAMING
    with pytest.raises(StreamProtocolError) as info:
        _ = proxy.state
    assert info.value.requirement_id == "SM-27"
    fake.state = "completed"  # type: ignore[assignment]  # the point: a str is not a StreamState
    with pytest.raises(StreamProtocolError, match="not a StreamState"):
        _ = proxy.state


async def test_sm22_aclose_leaves_the_state_running() -> None:
    fake = _FakeStoppable(["a"])
    fake.state_after_close = StreamState.STREAMING
    proxy = validate_manager(fake)
    assert isinstance(proxy, ValidatedStoppableManager)
    assert await _sm_error(proxy.aclose()) == "SM-22"


async def test_a_stop_of_a_stream_a_waiter_drives_is_not_misjudged() -> None:
    # Nobody iterates the proxy: completion() drives the stream (SM-6) and reads "a" where the proxy cannot
    # see it. A stop then gives StreamIncompleteError("a"): SM-28 holds; the proxy must not say otherwise.
    gate = asyncio.Event()

    async def engine() -> AsyncGenerator[str, None]:
        yield "a"
        await gate.wait()
        yield "b"

    proxy = validate_manager(StreamManager(engine(), "assistant"))
    waiter = asyncio.ensure_future(proxy.completion())
    for _ in range(5):
        await asyncio.sleep(0)
    await proxy.aclose()
    with pytest.raises(StreamIncompleteError) as info:
        await asyncio.wait_for(waiter, 5)
    assert info.value.text == "a" and info.value.reason is StreamState.STOPPED


async def test_a_refused_iteration_of_a_stream_a_waiter_drives_is_not_misjudged() -> None:
    # As above, and then a consumer's iteration is refused (StreamConsumedError, SM-3): it received nothing,
    # so the waiter's StreamIncompleteError("a") is still the text handed out (found by explore_manager()).
    gate = asyncio.Event()

    async def engine() -> AsyncGenerator[str, None]:
        yield "a"
        await gate.wait()
        yield "b"

    proxy = validate_manager(StreamManager(engine(), "assistant"))
    waiter = asyncio.ensure_future(proxy.completion())
    for _ in range(5):
        await asyncio.sleep(0)
    with pytest.raises(StreamConsumedError):
        proxy.__aiter__()
    await proxy.aclose()
    with pytest.raises(StreamIncompleteError) as info:
        await asyncio.wait_for(waiter, 5)
    assert info.value.text == "a" and info.value.reason is StreamState.STOPPED


async def test_a_stop_from_inside_after_is_not_misjudged() -> None:
    # SM-22: a stop called from inside the manager's own step (here from after) returns before the stream
    # ends; the proxy must not call that an SM-22 violation (it used to, and so failed the stream).
    holder: dict[str, ValidatedStoppableManager[Any]] = {}

    async def after(completion: object) -> None:
        await holder["proxy"].aclose()

    manager = StreamManager(_engine("a", done("a")), "assistant", after=after)
    proxy = holder["proxy"] = validate_manager(manager)
    assert [token async for token in proxy] == ["a"]
    assert (await proxy.message()).text == "a" and proxy.state is StreamState.COMPLETED
