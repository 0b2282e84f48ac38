"""The reference manager on well-behaved engines: SM-1 to SM-7, SM-14, SM-16, SM-17, ES-1 at construction, and
the completion builder. Every case ends with the harness's invariant checker (``Case.verify``)."""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest
from kani.engines.base import Completion as KaniCompletion
from kani.models import ChatMessage as KaniMessage
from kani.models import ChatRole

from lmstream.reference import ChatMessage, Completion, StreamManager, build_completion
from lmstream.spec import (
    StoppableStreamManager,
    StreamConsumedError,
    StreamProtocolError,
    StreamState,
)
from lmstream.spec import StreamManager as StreamManagerProtocol

from ._harness import (
    WAITER_KINDS,
    Case,
    Comp,
    Consumer,
    EngineKind,
    Msg,
    Token,
    WaiterKind,
    When,
    drain_into,
    result_of,
    state_of,
    turns,
)

KINDS: tuple[EngineKind, ...] = ("gen", "cls")
WHENS: tuple[When, ...] = ("before", "during", "after")


# ---------------------------------------------------------------------------------------------- SM-1, SM-2
@pytest.mark.parametrize("kind", KINDS)
async def test_sm1_whitespace_tokens_pass_unchanged_and_sm4_built_text_is_exact(kind: EngineKind) -> None:
    tokens = ["  ", "\n", "\tx ", " ", "y\n\n", " "]
    case = Case(tokens, kind=kind)
    case.start()
    await case.verify(StreamState.COMPLETED, tokens=tokens)
    built = await case.manager.completion()
    assert built.message.text == "  \n\tx  y\n\n "  # not stripped (kani strips: see test_kani)
    assert built.message.role == "assistant"


async def test_sm1_str_subclass_tokens_reach_the_consumer_as_the_same_objects() -> None:
    tokens = [Token("a"), Token(" b"), "c"]
    case = Case(tokens)
    out = await case.consume()
    assert [type(t) for t in out.tokens] == [Token, Token, str]
    assert all(got is sent for got, sent in zip(out.tokens, tokens, strict=True))
    await case.verify(StreamState.COMPLETED)  # also checks identity against what the engine yielded


@pytest.mark.parametrize("kind", KINDS)
async def test_sm2_no_read_ahead_while_the_consumer_is_busy_in_its_body(kind: EngineKind) -> None:
    """Each token reaches the consumer before the next item is requested; the consumer spends several
    event-loop turns in its body per token, and the engine must not be asked meanwhile."""
    case = Case(["a", "b", "c", Comp(Msg("assistant", "abc"))], kind=kind)
    case.start(Consumer(body_turns=5))
    await case.verify(StreamState.COMPLETED)
    requests = [k for event, k in case.probe.timeline if event == "request"]
    assert requests == [0, 1, 2, 3, 4]  # four items, then the request that ends the stream
    events = case.probe.timeline
    for k in range(3):
        assert (
            events.index(("request", k + 1)) > events.index(("asking", k + 1)) > events.index(("received", k))
        )


async def test_sm2_the_first_item_is_not_requested_before_the_first_step() -> None:
    case = Case(["a"])
    it = aiter(case.manager)
    await turns(5)
    assert case.probe.timeline == [] and case.manager.state is StreamState.PENDING
    assert await anext(it) == "a"
    assert case.probe.timeline == [("request", 0)]
    with pytest.raises(StopAsyncIteration):
        await anext(it)
    case.driven_by_consumer = False  # iterated by hand here; the checker compares with the engine's record
    await case.verify(StreamState.COMPLETED)


# ---------------------------------------------------------------------------------------------- SM-3
async def test_sm3_a_second_iteration_raises_before_yielding_anything() -> None:
    case = Case(["a", "b"])
    case.start(Consumer(pause_at=1))
    await asyncio.wait_for(case.paused.wait(), 5)
    with pytest.raises(StreamConsumedError):
        aiter(case.manager)  # during the first iteration
    case.resume.set()
    await case.verify(StreamState.COMPLETED)
    second: list[str] = []
    with pytest.raises(StreamConsumedError) as info:
        await drain_into(case.manager, second)  # after it
    assert second == [] and isinstance(info.value, RuntimeError)  # kani raises RuntimeError here


@pytest.mark.parametrize("call", WAITER_KINDS)
async def test_sm3_iteration_after_a_result_call_drained_the_stream_raises(call: WaiterKind) -> None:
    case = Case(["a", "b"])
    await asyncio.wait_for(result_of(case.manager, call), 5)
    with pytest.raises(StreamConsumedError):
        aiter(case.manager)
    await case.verify(StreamState.COMPLETED)


async def test_sm3_completion_racing_the_first_anext_one_of_them_drives() -> None:
    """A waiter that calls before the consumer's first step drives the stream (SM-6) and the consumer is
    refused (SM-3); a waiter that calls after it waits for the consumer's iteration."""
    first = Case(["a", "b"])
    first.spawn_waiters(3)
    first.start()  # scheduled after the waiters: the first waiter claims the stream
    await first.finish()
    assert isinstance(first.outcome.error, StreamConsumedError) and first.outcome.tokens == []
    first.driven_by_consumer = False
    await first.verify(StreamState.COMPLETED)

    second = Case(["a", "b"])
    second.start()
    second.spawn_waiters(3)  # scheduled after the consumer: it claims, they wait
    await second.verify(StreamState.COMPLETED, tokens=["a", "b"])


# ---------------------------------------------------------------------------------------------- SM-4, SM-14
@pytest.mark.parametrize("kind", KINDS)
async def test_sm4_the_engine_completion_is_returned_as_the_same_object(kind: EngineKind) -> None:
    own = Comp(Msg("assistant", "a b"), prompt_tokens=3, completion_tokens=2)
    case = Case(["a", " b", own], kind=kind)
    case.start()
    case.spawn_waiters(3)
    await case.verify(StreamState.COMPLETED, completion=own)


async def test_sm4_a_built_completion_has_the_role_the_exact_text_and_no_counts() -> None:
    role = ChatRole.ASSISTANT
    case = Case([" lead", "ing and trailing ", "\n"], role=role)
    case.start()
    await case.verify(StreamState.COMPLETED)
    built = await case.manager.completion()
    assert isinstance(built, Completion) and isinstance(built.message, ChatMessage)
    assert built.message == ChatMessage(role, " leading and trailing \n")
    assert built.prompt_tokens is None and built.completion_tokens is None


async def test_sm4_line_endings_nul_and_lone_surrogates_survive_into_the_built_text() -> None:
    """The text buffer translates nothing: \r\n, a lone \r, NUL, U+2028 and a lone surrogate stay as sent."""
    tokens = ["a\r\n", "\r", "b\n", "\x00", "\u2028", "\ud800", "c\r"]
    case = Case(tokens)
    case.start()
    await case.verify(StreamState.COMPLETED, tokens=tokens)
    assert (await case.manager.message()).text == "".join(tokens)


async def test_sm4_sm8_a_failing_completion_builder_fails_the_stream_for_everyone() -> None:
    error = ValueError("cannot build")

    def build(role: object, text: str) -> Comp:
        raise error

    case = Case(
        ["a", "b"], lock=True, manager_factory=functools.partial(StreamManager, build_completion=build)
    )
    await case.run(waiters=3, when="during")
    await case.verify(StreamState.FAILED, error=error)


async def test_sm4_an_empty_stream_builds_an_empty_message() -> None:
    case = Case([])
    case.start()
    await case.verify(StreamState.COMPLETED, tokens=[])
    assert (await case.manager.message()).text == ""


async def test_es11_a_completion_alone_with_text_none_is_returned_as_is() -> None:
    own = Comp(Msg("assistant", None))
    case = Case([own])
    case.start()
    await case.verify(StreamState.COMPLETED, tokens=[], completion=own)


class PropertyCompletion:
    """A hand-written completion with read-only properties (no dataclass, no base class)."""

    def __init__(self, text: str) -> None:
        self._message = Msg("assistant", text)

    @property
    def message(self) -> Msg:
        return self._message

    @property
    def prompt_tokens(self) -> int | None:
        return 0

    @property
    def completion_tokens(self) -> int | None:
        return None


@pytest.mark.parametrize(
    "completion",
    [
        Comp(Msg("assistant", "hi")),
        KaniCompletion(KaniMessage(role=ChatRole.ASSISTANT, content="hi"), 5, 1),
        PropertyCompletion("hi"),
    ],
    ids=["dataclass", "kani", "properties"],
)
async def test_sm14_completions_are_accepted_by_shape(completion: object) -> None:
    case = Case(["h", "i", completion])
    case.start()
    case.spawn_waiters(3)
    await case.verify(StreamState.COMPLETED, completion=completion)


# ------------------------------------------------------------------------------------------ SM-5, SM-6, SM-7
@pytest.mark.parametrize("call", WAITER_KINDS)
async def test_sm5_sm6_a_result_call_before_iteration_consumes_the_stream(call: WaiterKind) -> None:
    own = Comp(Msg("assistant", "ab"))
    case = Case(["a", "b", own], lock=True)
    result = await asyncio.wait_for(result_of(case.manager, call), 5)
    assert result is (own if call == "completion" else own.message)
    assert case.probe.tokens == ["a", "b"]
    await case.verify(StreamState.COMPLETED, completion=own)


@pytest.mark.parametrize("n", [1, 2, 50])
@pytest.mark.parametrize("when", WHENS)
@pytest.mark.parametrize("kind", KINDS)
async def test_sm7_every_waiter_gets_the_same_object(n: int, when: When, kind: EngineKind) -> None:
    """1, 2 and 50 waiters in other tasks (completion(), message() and await in turn), before, during and
    after iteration: all get the same completion (or its message); the checker compares identities."""
    case = Case(["a", "b", "c"], kind=kind, lock=True)
    await case.run(waiters=n, when=when)
    await case.verify(StreamState.COMPLETED)
    results = [w.result() for w in case.waiters]
    completion = await case.manager.completion()
    assert all(r is completion or r is completion.message for r in results)


async def test_sm7_fifty_waiters_drive_nothing_twice_when_nobody_iterates() -> None:
    case = Case(["a", "b"], lock=True)
    case.spawn_waiters(50)
    await case.verify(StreamState.COMPLETED)
    assert case.lock is not None and case.lock.acquires == 1
    assert [k for e, k in case.probe.timeline if e == "request"] == [0, 1, 2]


# ---------------------------------------------------------------------------------------------- SM-16, SM-17
class Role(enum.Enum):
    BOT = "bot"


async def test_sm16_role_is_the_construction_role_before_and_after_iteration() -> None:
    case = Case(["a"], role=Role.BOT)
    assert case.manager.role is Role.BOT
    case.start()
    await case.verify(StreamState.COMPLETED)
    assert role_of(case.manager) is Role.BOT and (await case.manager.message()).role is Role.BOT


@pytest.mark.parametrize("text", ["a whole reply ", None, ""], ids=["text", "none", "empty"])
async def test_sm17_a_finished_message_streams_as_one_token(text: str | None) -> None:
    message = Msg("function", text)
    manager = StreamManager.from_message(message)
    assert manager.role == "function" and manager.state is StreamState.PENDING
    tokens = [t async for t in manager]
    assert tokens == ([text] if text else [])
    assert tokens == [] or tokens[0] is text
    completion = await manager.completion()
    assert completion.message is message and await manager.message() is message and await manager is message
    assert state_of(manager) is StreamState.COMPLETED


def role_of(manager: StreamManager[Any]) -> object:
    """``manager.role``, read through a call so that type checkers do not narrow it between reads."""
    return manager.role


async def test_sm17_from_message_with_a_kani_message_and_waiters_before_iteration() -> None:
    message = KaniMessage(role=ChatRole.FUNCTION, content="42", name="answer")
    manager = StreamManager.from_message(message)
    assert manager.role is ChatRole.FUNCTION
    waiters = [asyncio.ensure_future(manager.message()) for _ in range(3)]
    done, _ = await asyncio.wait(waiters, timeout=5)
    assert len(done) == 3 and all(w.result() is message for w in waiters)
    with pytest.raises(StreamConsumedError):
        aiter(manager)


# ---------------------------------------------------------------------------------------------- ES-1
async def _coroutine_engine() -> list[str]:
    return ["not", "a", "stream"]


def _sync_generator_engine() -> object:
    yield "a"


@pytest.mark.parametrize("kind", ["list", "coroutine", "generator", "none"])
async def test_es1_a_non_async_iterable_is_refused_at_construction_with_a_clear_error(kind: str) -> None:
    stream: object
    if kind == "list":
        stream = ["a", "b"]
    elif kind == "coroutine":
        stream = _coroutine_engine()
    elif kind == "generator":
        stream = _sync_generator_engine()
    else:
        stream = None
    try:
        with pytest.raises(StreamProtocolError) as info:
            StreamManager(stream, "assistant")  # type: ignore[call-overload]  # deliberately not an async iterable
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # our own coroutine/generator: closed, so no "never awaited" warning leaks from this test
    error = info.value
    assert error.requirement_id == "ES-1" and "\n" not in str(error)
    assert "expected an async iterable" in str(error)
    if kind == "coroutine":
        assert "coroutine" in str(error)


# ---------------------------------------------------------------------------------------------- the builder
async def test_build_completion_custom_type_is_used_when_the_engine_yields_none() -> None:
    built: list[tuple[object, str]] = []

    def build(role: object, text: str) -> Comp:
        built.append((role, text))
        return Comp(Msg(role, text), prompt_tokens=None, completion_tokens=None)

    async def engine() -> AsyncIterator[str | Comp]:
        yield " x"
        yield "y "

    manager = StreamManager(engine(), "assistant", build_completion=build)
    assert [t async for t in manager] == [" x", "y "]
    completion = await manager.completion()
    assert type(completion) is Comp and completion == Comp(Msg("assistant", " xy "))
    assert built == [("assistant", " xy ")]  # called once, with the exact text


async def test_build_completion_is_not_called_when_the_engine_yields_its_own() -> None:
    own = Comp(Msg("assistant", "x"))

    def build(role: object, text: str) -> Comp:
        raise AssertionError("the builder must not be called")

    async def engine() -> AsyncGenerator[str | Comp, None]:
        yield "x"
        yield own

    manager = StreamManager(engine(), "assistant", build_completion=build)
    assert await manager.completion() is own


def test_the_default_builder_and_message_types() -> None:
    completion = build_completion("user", " t ")
    assert completion == Completion(ChatMessage("user", " t "), None, None)
    with pytest.raises(AttributeError):
        completion.message.text = "x"  # type: ignore[misc]  # frozen: assigning must fail
    assert not hasattr(completion, "__dict__")  # slotted


async def test_the_manager_satisfies_the_spec_protocols_and_has_a_readable_repr() -> None:
    manager = StreamManager.from_message(Msg("assistant", "x"))
    assert isinstance(manager, StreamManagerProtocol) and isinstance(manager, StoppableStreamManager)
    assert repr(manager) == "<StreamManager role='assistant' state=pending>"
    await manager.aclose()
    assert repr(manager) == "<StreamManager role='assistant' state=stopped>"
