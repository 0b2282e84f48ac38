"""The drop-in claim, proven with kani itself: ``Kani.chat_round_stream`` and ``Kani.full_round_stream`` run
over a scripted kani engine, once with kani's manager and once with ours swapped in, give the same tokens,
messages and chat history on the happy path; where kani hangs (an engine error or an early break with a
waiter in another task), ours does not. Every deliberate difference is asserted with its requirement ID.

The swap (what the README shows)::

    kani.kani.StreamManager = functools.partial(StreamManager, build_completion=kani_completion)
    kani.kani.DummyStream = StreamManager.from_message
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import kani.kani as kani_module
import pytest
from kani.ai_function import (
    AIFunction,
    ai_function,  # pyright: ignore[reportUnknownVariableType]  # kani leaves it unannotated
)
from kani.engines.base import BaseCompletion, BaseEngine
from kani.engines.base import Completion as KaniCompletion
from kani.kani import Kani
from kani.models import ChatMessage, ChatRole, ToolCall
from kani.streaming import DummyStream as KaniDummyStream
from kani.streaming import StreamManager as KaniStreamManager

from lmstream.reference import StreamManager
from lmstream.spec import StreamConsumedError, StreamIncompleteError, StreamProtocolError, StreamState

from ._harness import (
    BOUND,
    SHORT,
    Comp,
    EngineError,
    Msg,
    assert_no_tasks_left,
    drain_into,
    other_tasks,
    within_turns,
)

Which = Literal["kani", "ours"]
BOTH: tuple[Which, ...] = ("kani", "ours")


def untyped(obj: object) -> Any:
    """kani leaves ``**kwargs`` and some results unannotated, and pyright strict reports every use of such
    a member; calls into kani's API go through this, and their results are checked by value."""
    return obj


def kani_completion(role: Any, text: str) -> KaniCompletion:
    """The completion builder a kani user passes: kani's own types back, with the exact text (SM-4)."""
    return KaniCompletion(ChatMessage(role=role, content=text))


@pytest.fixture
def use(monkeypatch: pytest.MonkeyPatch) -> Callable[[Which], None]:
    """``use("ours")`` swaps our manager into kani the way the README shows; ``use("kani")`` keeps kani's."""

    def apply(which: Which) -> None:
        if which == "ours":
            monkeypatch.setattr(
                kani_module,
                "StreamManager",
                functools.partial(StreamManager, build_completion=kani_completion),
            )
            monkeypatch.setattr(kani_module, "DummyStream", StreamManager.from_message)
        else:
            assert getattr(kani_module, "StreamManager") is KaniStreamManager  # noqa: B009  # not re-exported
            assert getattr(kani_module, "DummyStream") is KaniDummyStream  # noqa: B009  # not re-exported

    return apply


# ---------------------------------------------------------------------------------------------- the engine
@dataclass
class Reply:
    """One scripted reply: tokens, then optionally the engine's completion; or a fault."""

    tokens: Sequence[object]
    completion: object = None
    raise_at: int | None = None
    error: BaseException = field(default_factory=lambda: EngineError("the provider went away"))


class ScriptedEngine(BaseEngine):
    """A kani engine that streams scripted replies and records its streams' cleanup."""

    max_context_size = 10_000

    def __init__(self, replies: Sequence[Reply]) -> None:
        self.replies = list(replies)
        self.started = 0
        self.cleaned_up = 0
        self.prompts: list[list[ChatMessage]] = []

    def prompt_len(self, messages: Any, functions: Any = None, **kwargs: Any) -> Any:  # kani: sync or async
        return 1

    async def predict(
        self, messages: list[ChatMessage], functions: list[AIFunction] | None = None, **hyperparams: Any
    ) -> BaseCompletion:
        raise NotImplementedError("these tests stream")

    async def stream(
        self, messages: list[ChatMessage], functions: list[AIFunction] | None = None, **hyperparams: Any
    ) -> AsyncIterator[Any]:
        reply = self.replies[self.started]
        self.started += 1
        self.prompts.append(list(messages))
        try:
            for index, token in enumerate(reply.tokens):
                if index == reply.raise_at:
                    raise reply.error
                yield token
            if reply.raise_at == len(reply.tokens):
                raise reply.error
            if reply.completion is not None:
                yield reply.completion
        finally:
            self.cleaned_up += 1


class WeatherKani(Kani):
    """A kani with one tool, for the function-calling round."""

    @ai_function()  # type: ignore[untyped-decorator]  # kani's decorator is not annotated
    def get_weather(self, city: str) -> str:
        """Get the weather in a city."""
        return f"Sunny in {city}"


def _assistant(text: str | None, **kwargs: Any) -> ChatMessage:
    return ChatMessage(role=ChatRole.ASSISTANT, content=text, **kwargs)


def _tool_call_reply() -> Reply:
    call = untyped(ToolCall).from_function("get_weather", call_id_="call-1", city="Paris")
    return Reply(["Let me", " check"], KaniCompletion(_assistant("Let me check", tool_calls=[call]), 10, 2))


def _tokens(stream: Any) -> AsyncIterator[str]:
    """Iterate a kani stream: kani annotates ``__aiter__`` as returning an AsyncIterable (it returns an
    async generator), which type checkers cannot ``async for`` over."""
    iterator: AsyncIterator[str] = aiter(stream)
    return iterator


# ---------------------------------------------------------------------------------------------- happy path
@dataclass
class ChatRun:
    tokens: list[str]
    message: ChatMessage
    history: list[ChatMessage]
    manager_type: type


async def _chat(replies: Sequence[Reply]) -> ChatRun:
    ai = Kani(ScriptedEngine(replies))
    stream: Any = untyped(ai).chat_round_stream("hi")  # kani annotates __aiter__ as AsyncIterable
    tokens = [t async for t in stream]
    message = await stream.message()
    assert await stream.completion() is not None and await stream is message
    return ChatRun(tokens, message, list(ai.chat_history), stream.__class__)


@pytest.mark.parametrize("with_completion", [True, False], ids=["engine-completion", "built-completion"])
async def test_chat_round_stream_gives_the_same_tokens_message_and_history(
    use: Callable[[Which], None], with_completion: bool
) -> None:
    reply = Reply(
        ["Hello", ",", " world"],
        KaniCompletion(_assistant("Hello, world"), 3, 3) if with_completion else None,
    )
    use("kani")
    theirs = await _chat([reply])
    use("ours")
    ours = await _chat([reply])
    assert theirs.manager_type is KaniStreamManager and ours.manager_type is StreamManager
    assert ours.tokens == theirs.tokens == ["Hello", ",", " world"]
    assert ours.message == theirs.message and ours.message.text == "Hello, world"
    assert ours.history == theirs.history == [untyped(ChatMessage).user("hi"), ours.message]
    if with_completion:
        assert isinstance(reply.completion, KaniCompletion)
        assert ours.message is reply.completion.message  # the engine's own (SM-4)


@dataclass
class RoundRun:
    streams: list[tuple[ChatRole, list[str], ChatMessage]] = field(
        default_factory=list[tuple[ChatRole, list[str], ChatMessage]]
    )
    history: list[ChatMessage] = field(default_factory=list[ChatMessage])
    prompts: int = 0


async def _full_round(replies: Sequence[Reply]) -> RoundRun:
    engine = ScriptedEngine(replies)
    ai = WeatherKani(engine)
    run = RoundRun()
    async for stream in untyped(ai).full_round_stream("What is the weather in Paris?"):
        role = stream.role
        tokens = [t async for t in _tokens(stream)]
        run.streams.append((role, tokens, await stream.message()))
    run.history = list(ai.chat_history)
    run.prompts = engine.started
    return run


async def test_full_round_stream_with_a_tool_call_gives_the_same_streams_and_history(
    use: Callable[[Which], None],
) -> None:
    replies = [
        _tool_call_reply(),
        Reply(["It is", " sunny."], KaniCompletion(_assistant("It is sunny."), 20, 3)),
    ]
    use("kani")
    theirs = await _full_round(replies)
    use("ours")
    ours = await _full_round(replies)
    assert (
        [(r, t) for r, t, _ in ours.streams]
        == [(r, t) for r, t, _ in theirs.streams]
        == [
            (ChatRole.ASSISTANT, ["Let me", " check"]),
            (ChatRole.FUNCTION, ["Sunny in Paris"]),
            (ChatRole.ASSISTANT, ["It is", " sunny."]),
        ]
    )
    assert [m for _, _, m in ours.streams] == [m for _, _, m in theirs.streams]
    assert ours.history == theirs.history and len(ours.history) == 4  # user, call, result, answer
    assert ours.history[2].tool_call_id == "call-1" and ours.prompts == theirs.prompts == 2


async def test_full_round_stream_consumer_that_only_awaits_messages(use: Callable[[Which], None]) -> None:
    replies = [_tool_call_reply(), Reply(["Done"], KaniCompletion(_assistant("Done")))]
    results: dict[Which, list[ChatMessage]] = {}
    for which in BOTH:
        use(which)
        ai = WeatherKani(ScriptedEngine(replies))
        results[which] = [await stream async for stream in untyped(ai).full_round_stream("weather?")]
    assert results["ours"] == results["kani"] and [m.role for m in results["ours"]] == [
        ChatRole.ASSISTANT,
        ChatRole.FUNCTION,
        ChatRole.ASSISTANT,
    ]


# ------------------------------------------------------------------------------------------ where kani hangs
async def _consume_with_waiter(
    ai: Kani, *, break_after: int | None = None
) -> tuple[list[str], BaseException | None, asyncio.Task[ChatMessage], Any]:
    """Iterate a chat round in this task with a waiter on ``message()`` in another task (started once the
    consumer holds its first token); return the tokens, the consumer's error, the waiter task, the manager."""
    stream: Any = untyped(ai).chat_round_stream("hi")  # kani annotates __aiter__ as AsyncIterable
    tokens: list[str] = []
    waiter: asyncio.Task[ChatMessage] | None = None
    error: BaseException | None = None
    try:
        async for token in stream:
            tokens.append(token)
            if waiter is None:
                waiter = asyncio.ensure_future(stream.message())
                await asyncio.sleep(0)  # the waiter calls and blocks
            if len(tokens) == break_after:
                break
    except EngineError as exc:
        error = exc
    assert waiter is not None
    return tokens, error, waiter, stream


@pytest.mark.parametrize("which", BOTH)
async def test_sm8_engine_error_mid_stream_kani_waiter_hangs_ours_gets_the_error(
    use: Callable[[Which], None], which: Which
) -> None:
    use(which)
    before = other_tasks()
    reply = Reply(["Hello", " wor"], raise_at=2)
    engine = ScriptedEngine([reply])
    ai = Kani(engine)
    tokens, error, waiter, _ = await _consume_with_waiter(ai)
    assert tokens == ["Hello", " wor"] and error is reply.error  # both: the consumer gets the engine's error
    if which == "kani":
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(waiter, SHORT)  # kani: the waiter hangs (bounded here)
    else:
        with pytest.raises(EngineError) as info:
            await asyncio.wait_for(waiter, BOUND)  # ours: the same error object (SM-8)
        assert info.value is reply.error
    assert ai.chat_history == [untyped(ChatMessage).user("hi")]  # both: nothing recorded (after not called)
    assert not ai.lock.locked() and engine.cleaned_up == 1
    await assert_no_tasks_left(before)


@pytest.mark.parametrize("which", BOTH)
async def test_sm10_early_break_kani_waiter_hangs_ours_raises_incomplete(
    use: Callable[[Which], None], which: Which
) -> None:
    use(which)
    before = other_tasks()
    engine = ScriptedEngine([Reply(["Hello", " world", "!"]), Reply(["Again"])])
    ai = Kani(engine)
    tokens, error, waiter, stream = await _consume_with_waiter(ai, break_after=1)
    assert tokens == ["Hello"] and error is None
    if which == "kani":
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(waiter, SHORT)  # kani: the waiter hangs
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(stream.message(), SHORT)  # and so does the consumer's own later call
    else:
        with pytest.raises(StreamIncompleteError) as info:
            await asyncio.wait_for(waiter, BOUND)  # ours: released, with the text so far (SM-10)
        assert info.value.text == "Hello" and info.value.reason is StreamState.INCOMPLETE
        with pytest.raises(StreamIncompleteError):
            await asyncio.wait_for(stream.message(), BOUND)
    if which == "kani":
        # kani releases its lock when the abandoned iterator is finalized, but keeps the engine stream open
        # as long as the manager is referenced (it holds the stream in an attribute): SM-10 says close it.
        await within_turns(lambda: not ai.lock.locked(), "kani released its lock")
        await asyncio.sleep(0)
        assert engine.cleaned_up == 0
        del stream, waiter
    await within_turns(lambda: engine.cleaned_up == 1 and not ai.lock.locked(), "engine closed, lock free")
    assert ai.chat_history == [untyped(ChatMessage).user("hi")]
    assert await asyncio.wait_for(untyped(ai).chat_round_stream("again"), BOUND) == _assistant(
        "Again"
    )  # lock is free
    await assert_no_tasks_left(before)


# ---------------------------------------------------------------------------------------------- differences
@pytest.mark.parametrize("which", BOTH)
async def test_sm4_kani_strips_a_built_message_ours_keeps_the_exact_text(
    use: Callable[[Which], None], which: Which
) -> None:
    use(which)
    run = await _chat([Reply(["  indented", " code\n"])])
    assert run.tokens == ["  indented", " code\n"]
    assert run.message.text == ("indented code" if which == "kani" else "  indented code\n")
    assert run.history[-1] == run.message


@pytest.mark.parametrize("which", BOTH)
async def test_sm9_a_wrong_item_kani_raises_type_error_ours_a_protocol_error(
    use: Callable[[Which], None], which: Which
) -> None:
    use(which)
    ai = Kani(ScriptedEngine([Reply(["ok", b"bytes"])]))
    stream: Any = untyped(ai).chat_round_stream("hi")  # kani annotates __aiter__ as AsyncIterable
    tokens: list[str] = []
    with pytest.raises(TypeError if which == "kani" else StreamProtocolError) as info:
        await drain_into(stream, tokens)
    assert tokens == ["ok"]
    if which == "ours":
        assert isinstance(info.value, StreamProtocolError) and info.value.requirement_id == "ES-2"
        assert not isinstance(info.value, TypeError)  # a kani user catching TypeError must catch StreamError


@pytest.mark.parametrize("which", BOTH)
async def test_sm9_an_item_after_the_completion_kani_runtime_error_ours_es3(
    use: Callable[[Which], None], which: Which
) -> None:
    use(which)
    engine = ScriptedEngine([Reply(["a", KaniCompletion(_assistant("a")), "late"])])
    stream: Any = untyped(Kani(engine)).chat_round_stream("hi")  # kani annotates __aiter__ as AsyncIterable
    with pytest.raises(RuntimeError if which == "kani" else StreamProtocolError) as info:
        async for _ in stream:
            pass
    if which == "ours":
        assert isinstance(info.value, StreamProtocolError) and info.value.requirement_id == "ES-3"


@pytest.mark.parametrize("which", BOTH)
async def test_sm14_a_plain_dataclass_completion_kani_refuses_ours_accepts(
    use: Callable[[Which], None], which: Which
) -> None:
    use(which)
    own = Comp(Msg(ChatRole.ASSISTANT, "hi"))
    stream: Any = untyped(Kani(ScriptedEngine([Reply(["hi", own])]))).chat_round_stream(
        "hi"
    )  # kani annotates __aiter__ as AsyncIterable
    if which == "kani":
        with pytest.raises(TypeError):  # kani isinstance-checks BaseCompletion
            async for _ in stream:
                pass
    else:
        assert [t async for t in stream] == ["hi"] and await stream.completion() is own


@pytest.mark.parametrize("which", BOTH)
async def test_sm17_an_empty_function_result_kani_yields_an_empty_token_ours_none(which: Which) -> None:
    message = untyped(ChatMessage).function("f", "")
    manager: Any = KaniDummyStream(message) if which == "kani" else StreamManager.from_message(message)
    assert [t async for t in manager] == ([""] if which == "kani" else [])
    assert await manager.message() is message


@pytest.mark.parametrize("which", BOTH)
async def test_sm3_both_claim_the_stream_at_aiter_and_raise_runtime_error_on_a_second(
    use: Callable[[Which], None], which: Which
) -> None:
    use(which)
    stream: Any = untyped(Kani(ScriptedEngine([Reply(["a"])]))).chat_round_stream(
        "hi"
    )  # kani annotates __aiter__ as AsyncIterable
    first = aiter(stream)
    with pytest.raises(RuntimeError) as info:
        aiter(stream)
    assert (which == "ours") == isinstance(info.value, StreamConsumedError)
    assert [t async for t in first] == ["a"]


async def test_sm12_sm24_ours_can_stop_a_kani_round_kanis_cannot() -> None:
    """kani's manager has no stop (SM-21 is a SHOULD it does not meet); ours, swapped in, stops a kani chat
    round from another task and frees kani's lock at once."""
    assert not hasattr(KaniStreamManager, "aclose")
    gate = asyncio.Event()

    class Blocking(ScriptedEngine):
        async def stream(
            self, messages: list[ChatMessage], functions: list[AIFunction] | None = None, **hyperparams: Any
        ) -> AsyncIterator[Any]:
            try:
                yield "partial"
                await gate.wait()  # never set: the provider stalls
                yield "never"
            finally:
                self.cleaned_up += 1

    engine = Blocking([])
    ai = Kani(engine)
    manager = StreamManager(
        _model_stream(ai),
        ChatRole.ASSISTANT,
        after=untyped(ai).add_completion_to_history,
        lock=ai.lock,
        build_completion=kani_completion,
    )
    got: list[str] = []

    async def consume() -> None:
        async for token in manager:
            got.append(token)

    task = asyncio.ensure_future(consume())
    await within_turns(lambda: got == ["partial"] and not task.done(), "the consumer holds its first token")
    assert ai.lock.locked()
    await asyncio.wait_for(manager.aclose(), BOUND)
    await asyncio.wait_for(task, BOUND)
    assert not ai.lock.locked() and engine.cleaned_up == 1 and ai.chat_history == []
    with pytest.raises(StreamIncompleteError) as info:
        await manager.message()
    assert info.value.text == "partial" and info.value.reason is StreamState.STOPPED


async def _model_stream(ai: Kani) -> AsyncIterator[Any]:
    """kani's own model stream, closed explicitly when the manager closes this generator."""
    inner = untyped(ai.engine).stream([])
    try:
        async for item in inner:
            yield item
    finally:
        await inner.aclose()  # the engine's stream is an async generator
