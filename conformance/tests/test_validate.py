"""validate(): conforming streams pass through untouched; each violation raises at its item, with its ID."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typing_extensions import Self

from lmstream.conformance import STANDARD_PROMPT, LmstreamWarning, ValidatedStream, validate
from lmstream.reference import ChatMessage, Completion
from lmstream.spec import StreamProtocolError

from ._engines import done


async def _stream(*items: object, closed: list[bool] | None = None) -> AsyncGenerator[Any, None]:
    try:
        for item in items:
            await asyncio.sleep(0)
            yield item
    finally:
        if closed is not None:
            closed.append(True)


async def _drain(stream: AsyncIterator[Any]) -> list[object]:
    return [item async for item in stream]


tokens = st.lists(st.text(min_size=1, max_size=5), max_size=8)


@settings(max_examples=60, deadline=None)
@given(
    tokens=tokens, ending=st.sampled_from(["completion", "none", "text-none"]), counts=st.integers(0, 10**6)
)
def test_conforming_streams_pass_through_the_very_same_objects(
    tokens: list[str], ending: str, counts: int
) -> None:
    items: list[object] = list(tokens)
    if ending == "completion":
        items.append(Completion(ChatMessage("assistant", "".join(tokens)), counts, None))
    elif ending == "text-none":
        items.append(Completion(ChatMessage("assistant", None), None, counts))

    async def main() -> list[object]:
        return await _drain(validate(_stream(*items), strict=True))

    seen = asyncio.run(main())
    assert len(seen) == len(items) and all(a is b for a, b in zip(seen, items, strict=True))


def test_es1_at_wrap_time() -> None:
    with pytest.raises(StreamProtocolError) as info:
        validate(["a"])  # type: ignore[arg-type]  # the point: a list is not an async iterable
    assert info.value.requirement_id == "ES-1"


class _NoAnext:
    def __aiter__(self) -> object:
        return object()


def test_es1_iterator_without_anext() -> None:
    with pytest.raises(StreamProtocolError, match="no __anext__") as info:
        validate(_NoAnext())  # type: ignore[arg-type]  # the point: it breaks ES-1
    assert info.value.requirement_id == "ES-1"


@pytest.mark.parametrize(
    ("items", "bad_index", "rid"),
    [
        (("a", b"b", done("a")), 1, "ES-2"),
        (("a", None), 1, "ES-2"),
        (("a", ValueError("x")), 1, "ES-2"),
        (("a", done("a"), "b"), 2, "ES-3"),
        (("a", done("a"), done("a")), 2, "ES-3"),
        (("a", done("a", -1)), 1, "ES-4"),
        (("a", done("a", True)), 1, "ES-4"),
    ],
)
async def test_a_violation_raises_at_its_item_and_closes_the_stream(
    items: tuple[object, ...], bad_index: int, rid: str
) -> None:
    closed: list[bool] = []
    validated = validate(_stream(*items, closed=closed))
    seen: list[object] = []

    async def consume() -> None:
        async for item in validated:
            seen.append(item)

    with pytest.raises(StreamProtocolError) as info:
        await consume()
    assert info.value.requirement_id == rid and info.value.item is items[bad_index]
    assert seen == list(items[:bad_index]) and closed == [True]
    assert [item async for item in validated] == []  # nothing more after the error


async def test_should_rules_warn_or_raise_under_strict() -> None:
    with pytest.warns(LmstreamWarning, match="ES-9"):
        assert len(await _drain(validate(_stream("a", done("b"))))) == 2
    with pytest.warns(LmstreamWarning, match="ES-10"):
        assert await _drain(validate(_stream("a", "", "b"))) == ["a", "", "b"]
    for items, rid in ((("a", done("b")), "ES-9"), (("a", ""), "ES-10")):
        with pytest.raises(StreamProtocolError) as info:
            await _drain(validate(_stream(*items), strict=True))
        assert info.value.requirement_id == rid


async def test_aclose_closes_the_stream() -> None:
    closed: list[bool] = []
    validated = validate(_stream("a", "b", done("ab"), closed=closed))
    assert await validated.__anext__() == "a"
    await validated.aclose()
    assert closed == [True]
    assert [item async for item in validated] == []


class _Iterator:
    def __init__(self, items: list[object]) -> None:
        self.items = items

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> object:
        if not self.items:
            raise StopAsyncIteration
        return self.items.pop(0)


class _KeepsYielding(_Iterator):
    async def aclose(self) -> None:
        return None


async def test_es5_no_aclose_and_aclose_that_keeps_yielding() -> None:
    no_aclose: ValidatedStream[Completion] = validate(
        cast(AsyncIterable[str | Completion], _Iterator(["a", "b"]))
    )
    await no_aclose.__anext__()
    with pytest.raises(StreamProtocolError, match="no aclose") as info:
        await no_aclose.aclose()
    assert info.value.requirement_id == "ES-5"
    keeps: ValidatedStream[Completion] = validate(
        cast(AsyncIterable[str | Completion], _KeepsYielding(["a", "b"]))
    )
    await keeps.__anext__()
    with pytest.raises(StreamProtocolError, match="yielded str 'b'") as info:
        await keeps.aclose()
    assert info.value.requirement_id == "ES-5"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 cannot count cancellation requests")
async def test_es6_a_swallowed_cancellation_is_reported() -> None:
    async def swallows() -> AsyncGenerator[str | Completion, None]:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        yield "after the cancel"

    async def consume() -> list[object]:
        return await _drain(validate(swallows()))

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(StreamProtocolError) as info:
        await task
    assert info.value.requirement_id == "ES-6"


async def test_a_real_cancellation_passes_through() -> None:
    async def consume() -> list[object]:
        return await _drain(validate(_stream("a", "b")))

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# ----------------------------------------------------------------------------- ES-5 on real engines
def _real(name: str) -> Any:
    from . import _sdk_engines

    return getattr(_sdk_engines, name)()


async def _close_after_first(stream: ValidatedStream[Any]) -> None:
    await stream.__anext__()
    await stream.aclose()


@pytest.mark.parametrize(
    "name",
    [
        "openai_careful",
        "openai_stream_helper",
        "anthropic_careful",
        "httpx_careful",
        "openai_sync_thread_careful",
    ],
)
async def test_es5_a_careful_sdk_engine_closes_cleanly_under_validate(name: str) -> None:
    engine = _real(name)
    await _close_after_first(validate(engine.stream(list(STANDARD_PROMPT))))


@pytest.mark.parametrize(
    ("name", "said"),
    [
        (
            "openai_naive",
            "(c) 1 network response(s) the stream opened were still open when aclose() returned",
        ),
        ("anthropic_naive", "the httpx response to POST https://api.replayed.test/v1/messages"),
        ("httpx_naive", "`async with client.stream(method, url, ...) as response:`"),
        ("openai_sync_thread_naive", "(a sync client, in thread "),
        ("httpx_inner_left", "(b) async generator(s) of the engine's own code were dropped unclosed"),
    ],
)
async def test_es5_a_leaking_sdk_engine_is_caught_by_validate(name: str, said: str) -> None:
    engine = _real(name)
    with pytest.raises(StreamProtocolError) as info:
        await _close_after_first(validate(engine.stream(list(STANDARD_PROMPT))))
    assert info.value.requirement_id == "ES-5"
    assert said in str(info.value)


async def test_es5_validate_judges_kani_as_the_check_does() -> None:
    from ._engines import KANI_PROMPT

    with pytest.raises(StreamProtocolError) as info, pytest.warns(LmstreamWarning, match="ES-10"):
        await _close_after_first(
            validate(_real("kani_openai").stream(list(KANI_PROMPT)))
        )  # its first token is ''
    assert "OpenAIEngine._stream_chat_completions()" in str(info.value)
    assert "kani/engines/openai/engine.py:" in str(info.value)
    await _close_after_first(validate(_real("kani_anthropic").stream(list(KANI_PROMPT))))


async def test_es5_validate_leaves_the_hooks_and_httpx_as_it_found_them() -> None:
    import httpx

    hooks, send = sys.get_asyncgen_hooks(), httpx.AsyncClient.send
    await _close_after_first(validate(_real("httpx_careful").stream(list(STANDARD_PROMPT))))
    assert sys.get_asyncgen_hooks() == hooks and httpx.AsyncClient.send is send


async def test_es5_a_stream_read_to_its_end_is_not_judged_on_close() -> None:
    stream = validate(_real("openai_naive").stream(list(STANDARD_PROMPT)))
    assert len(await _drain(stream)) == 6
    await stream.aclose()  # the stream ended: its response was read to the end, and closed
