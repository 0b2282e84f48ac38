"""The engine checks: one or more per engine-stream requirement, ES-1 to ES-11.

Each check opens its own stream(s) of the standard prompt and judges only its own requirement; when it
cannot judge (no stream could be opened, or the stream did not end), it skips and says which check
reports the cause. ES-11 is a MAY: its check is informational (see :func:`a_completion_alone_is_a_stream`).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import AsyncIterator
from typing import Any

from lmstream.conformance._closing import CloseWatch, Closing
from lmstream.conformance.context import CheckContext, CheckTimeout
from lmstream.conformance.describe import describe_exception, describe_items, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.targets import EngineTarget
from lmstream.spec import check_completion, check_item, describe_item, get_requirement

from ._engine_support import (
    LIST_ITEMS,
    Opened,
    OpenFailed,
    completion_shaped,
    es1_problem,
    iterator_of,
    next_item,
    open_raw,
    open_stream,
    read_transcript,
    reproduction,
    violation,
)
from ._registry import check

__all__: list[str] = []

_ENGINE = TargetKind.ENGINE


# ---------------------------------------------------------------------------------------------- ES-1
@check(
    "ES-1", _ENGINE, summary="stream(messages) returns an async iterable whose __aiter__ gives an iterator"
)
async def returns_async_iterable(target: EngineTarget, ctx: CheckContext) -> None:
    expected = (
        "stream(messages) returns an async iterable (an object with __aiter__, e.g. an async generator)"
    )
    try:
        opened = await open_raw(target, ctx)
    except OpenFailed as exc:
        raise CheckFailure(f"{exc}; no stream was returned", expected=expected) from None
    body = ["print(type(stream), hasattr(type(stream), '__aiter__'))"]
    problem = es1_problem(opened)
    if problem is None:
        try:
            iterator_of(opened)  # never started, so not closed: closing is ES-5's business
        except OpenFailed as exc:
            problem = exc
    if problem is not None:
        raise CheckFailure(str(problem), expected=expected, reproduction=reproduction(opened, body))


# ---------------------------------------------------------------------------------------------- ES-2
@check("ES-2", _ENGINE, summary="every item is a str token or a Completion; errors are raised, not yielded")
async def items_are_tokens_or_completions(target: EngineTarget, ctx: CheckContext) -> None:
    transcript = await read_transcript(target, ctx)
    for index, item in enumerate(transcript.items):
        error = check_item(item)
        if error is not None and error.requirement_id == "ES-2":
            raise violation(
                transcript,
                index,
                error,
                expected="every item is a str (a token) or a Completion (message, prompt_tokens, "
                "completion_tokens); errors are raised, never yielded",
                body=LIST_ITEMS,
            )
    if not transcript.ended:
        raise transcript.inconclusive("ES-2")


# ---------------------------------------------------------------------------------------------- ES-3
@check("ES-3", _ENGINE, summary="at most one completion, and nothing after it")
async def at_most_one_completion_last(target: EngineTarget, ctx: CheckContext) -> None:
    transcript = await read_transcript(target, ctx)
    seen = False
    for index, item in enumerate(transcript.items):
        if seen:
            error = check_item(item, completion_seen=True)
            if error is not None:
                raise violation(
                    transcript,
                    index,
                    error,
                    expected="at most one completion, and if there is one it is the last item",
                    body=LIST_ITEMS,
                )
        seen = seen or completion_shaped(item)
    if not transcript.ended:
        raise transcript.inconclusive("ES-3")


# ---------------------------------------------------------------------------------------------- ES-4
@check("ES-4", _ENGINE, summary="a completion's prompt_tokens and completion_tokens are None or ints >= 0")
async def token_counts_are_valid(target: EngineTarget, ctx: CheckContext) -> None:
    transcript = await read_transcript(target, ctx)
    completions = 0
    for index, item in enumerate(transcript.items):
        if not completion_shaped(item):
            continue
        completions += 1
        error = check_completion(item)
        if error is not None and error.requirement_id == "ES-4":
            raise violation(
                transcript,
                index,
                error,
                expected="prompt_tokens and completion_tokens are each None or an int >= 0 (not a bool)",
                body=[*LIST_ITEMS[:1], "print([(c.prompt_tokens, c.completion_tokens) for c in items[-1:]])"],
            )
    if not transcript.ended:
        raise transcript.inconclusive("ES-4")
    if not completions:
        raise CheckSkipped("the stream yielded no completion, so there are no token counts to judge")


# ---------------------------------------------------------------------------------------------- ES-5
@check("ES-5", _ENGINE, summary="aclose() mid-stream returns, ends the stream and leaves nothing open")
async def aclose_ends_stream_and_cleans_up(target: EngineTarget, ctx: CheckContext) -> None:
    """ES-5 as its statement says it is judged (see :mod:`lmstream.conformance._closing`): after the first
    item, ``aclose()`` is awaited; then (a) the iterator must yield nothing more, (b) the async generators
    of the engine's own code that the stream iterated must be closed, and (c) the network responses it
    opened (httpx, aiohttp, where loaded) must be closed, at the moment ``aclose()`` returned."""
    watch = CloseWatch(ctx.origins, catch_all=True)
    with watch.observing(), watch.attributed():
        opened, closing = await _close_mid_stream(target, ctx, watch)
    if not closing.ok:
        problem, body, leaked = closing.problem(), _leak_body(closing), bool(closing.open_responses)
        del closing
        watch.forget()
        if leaked:  # finalize what the leak holds now, in the check's loop and with output captured
            gc.collect()
        raise CheckFailure(problem, expected=_ES5_EXPECTED, reproduction=reproduction(opened, body))
    ctx.note(closing.observation())


_ES5_EXPECTED = (
    "the stream's iterator has aclose(); once aclose() is awaited mid-stream it yields nothing more, the "
    "async generators of the engine's own code that it iterated are closed, and the network responses it "
    "opened are closed"
)
_ACLOSE_BODY = [
    "iterator = aiter(stream)",
    "print(repr(await anext(iterator)))",
    "await iterator.aclose()",
    "print(repr(await anext(iterator, 'nothing more: ok')))",
]


def _leak_body(closing: Closing) -> list[str]:
    if closing.open_responses:
        return [
            *_ACLOSE_BODY,
            "# The HTTP response the stream opened is still open now: the connection stays checked out and",
            "# the server keeps sending until the garbage collector gets to it.",
        ]
    return [
        *_ACLOSE_BODY,
        "# An async generator of the engine's own code that the stream iterated was not closed by aclose():",
        "# its finally blocks run only when the garbage collector and the event loop get to it.",
    ]


async def _close_mid_stream(
    target: EngineTarget, ctx: CheckContext, watch: CloseWatch
) -> tuple[Opened, Closing]:
    """Open a stream, read its first item, close it; the snapshot of what was left open, once (a) holds.

    :raises CheckFailure: for (a): no ``aclose()``, a close that fails or hangs, an item after it.
    """
    opened, iterator = await open_stream(target, ctx)
    aclose = getattr(iterator, "aclose", None)
    if not callable(aclose):
        raise CheckFailure(
            f"the stream's iterator, {describe_item(iterator)}, has no aclose() method",
            expected=_ES5_EXPECTED,
            reproduction=reproduction(
                opened, ["iterator = aiter(stream)", "print(hasattr(iterator, 'aclose'))"]
            ),
        )
    try:
        first = await next_item(ctx, iterator, "the first item", timeout=ctx.timeout / 2)
    except StopAsyncIteration:
        raise CheckSkipped(
            "the stream ended before its first item, so it cannot be closed mid-stream"
        ) from None
    except CheckTimeout as exc:
        raise CheckSkipped(f"{exc.observed}, so the stream cannot be closed mid-stream (see ES-8)") from None
    except Exception as exc:
        raise CheckSkipped(
            f"the stream raised {describe_exception(exc)} before its first item (see ES-8)"
        ) from None
    repro = reproduction(opened, _ACLOSE_BODY)
    result: Any = aclose()
    if not inspect.isawaitable(result):
        raise CheckFailure(
            f"aclose() returned {describe_item(result)}, not an awaitable",
            expected=_ES5_EXPECTED,
            reproduction=repro,
        )
    try:
        await ctx.bounded(result, what="aclose() to return")
    except CheckTimeout as exc:
        raise CheckFailure(
            f"after the first item ({describe_item(first)}), {exc.observed}",
            expected=_ES5_EXPECTED,
            reproduction=repro,
        ) from None
    except Exception as exc:
        raise CheckFailure(
            f"after the first item ({describe_item(first)}), aclose() raised {describe_exception(exc)}",
            expected=_ES5_EXPECTED,
            reproduction=repro,
        ) from None
    closing = watch.verdict()  # (b) and (c) are judged at the moment aclose() returned
    try:
        extra = await next_item(ctx, iterator, "__anext__() after aclose() to end", timeout=ctx.grace)
    except StopAsyncIteration:
        return opened, closing
    except CheckTimeout as exc:
        raise CheckFailure(
            f"after aclose() returned, __anext__() neither ended nor returned: {exc.observed}",
            expected=_ES5_EXPECTED,
            reproduction=repro,
        ) from None
    except Exception as exc:  # raising is not yielding: "nothing more" holds
        ctx.note(f"__anext__() after aclose() raised {describe_exception(exc)} (StopAsyncIteration is usual)")
        return opened, closing
    raise CheckFailure(
        f"after aclose() returned, the stream yielded {describe_item(extra)}",
        expected=_ES5_EXPECTED,
        reproduction=repro,
    )


# ---------------------------------------------------------------------------------------------- ES-6
class _Consumer:
    """A consumer whose only await is the stream's ``__anext__()``: whenever it is suspended, it is
    suspended inside the stream."""

    def __init__(self, iterator: AsyncIterator[object]) -> None:
        self.iterator = iterator
        self.started = asyncio.Event()
        self.items: list[object] = []
        self.after_cancel: list[object] = []
        self.cancel_requested = False

    async def run(self) -> None:
        self.started.set()
        while True:
            try:
                item = await self.iterator.__anext__()
            except StopAsyncIteration:
                return
            self.items.append(item)
            if self.cancel_requested:
                self.after_cancel.append(item)


@check(
    "ES-6",
    _ENGINE,
    summary="cancelling the consumer while it awaits the next item ends it with CancelledError",
)
async def cancellation_propagates(target: EngineTarget, ctx: CheckContext) -> None:
    expected = (
        "cancelling the task that awaits the stream's next item ends that task with CancelledError, at once: "
        "the stream neither swallows, replaces nor delays it"
    )
    opened, iterator = await open_stream(target, ctx)
    consumer = _Consumer(iterator)
    task = ctx.spawn(consumer.run(), name="lmstream ES-6 consumer")
    await ctx.bounded(consumer.started.wait(), what="the consumer task to start")
    # The consumer has run up to its first suspension: since its only await is __anext__(), it is now
    # suspended inside the stream, awaiting an item (unless the stream ran to its end without suspending).
    if task.done():
        await ctx.close_quietly(iterator)
        raise CheckSkipped(
            f"the stream ran to its end ({len(consumer.items)} item(s)) without ever suspending, so the "
            "consuming task was never cancellable while awaiting an item"
            if task.exception() is None
            else f"the stream raised {describe_exception(_exception(task))} before it could be cancelled "
            "(see ES-8)"
        )
    awaited = len(consumer.items) + 1
    consumer.cancel_requested = True
    task.cancel()
    done = await ctx.wait_tasks([task])
    body = [
        "iterator = aiter(stream)",
        "task = asyncio.ensure_future(anext(iterator))",
        "await asyncio.sleep(0)  # the task now awaits the first item",
        "task.cancel()",
        "print(await asyncio.gather(task, return_exceptions=True))  # expect [CancelledError()]",
    ]
    repro = reproduction(opened, body)
    if not done:
        raise CheckFailure(
            f"the consumer was cancelled while awaiting item {awaited}; {seconds(ctx.elapsed())} into the "
            f"check it was still running ({len(consumer.after_cancel)} item(s) received after the cancel): "
            "the stream swallowed or delayed the cancellation",
            expected=expected,
            reproduction=repro,
        )
    await ctx.close_quietly(iterator)
    received = (
        f"; it received {len(consumer.after_cancel)} more item(s) after the cancel: "
        f"{describe_items(consumer.after_cancel)}"
        if consumer.after_cancel
        else ""
    )
    if task.cancelled():
        if consumer.after_cancel:
            raise CheckFailure(
                f"the consumer was cancelled while awaiting item {awaited} and ended with CancelledError, "
                f"but only later{received}: the stream delayed the cancellation",
                expected=expected,
                reproduction=repro,
            )
        return
    error = task.exception()
    if error is None:
        raise CheckFailure(
            f"the consumer was cancelled while awaiting item {awaited}, but the stream swallowed the "
            f"CancelledError: the task went on and ended normally{received}",
            expected=expected,
            reproduction=repro,
        )
    raise CheckFailure(
        f"the consumer was cancelled while awaiting item {awaited}, but the task ended with "
        f"{describe_exception(error)} instead of CancelledError{received}",
        expected=expected,
        reproduction=repro,
    )


def _exception(task: asyncio.Task[Any]) -> BaseException:
    error = task.exception()
    assert error is not None
    return error


# ---------------------------------------------------------------------------------------------- ES-7
async def _drain(iterator: AsyncIterator[object]) -> int:
    count = 0
    while True:
        try:
            await iterator.__anext__()
        except StopAsyncIteration:
            return count
        count += 1


@check("ES-7", _ENGINE, summary="two stream() calls give two distinct streams that can be read side by side")
async def each_call_is_a_new_stream(target: EngineTarget, ctx: CheckContext) -> None:
    expected = "every call of stream() returns a new stream; reading or closing one does not affect another"
    try:
        made = await ctx.bounded(target.instantiate(), what=f"calling {target.name} to return")
    except (CheckTimeout, Exception) as exc:
        what = "timed out" if isinstance(exc, CheckTimeout) else f"raised {type(exc).__name__}"
        raise CheckSkipped(f"no stream to examine: calling {target.name} {what} (see ES-1)") from None
    is_engine = callable(getattr(made, "stream", None))
    first, one = await open_stream(target, ctx, made=made)
    second, two = await open_stream(target, ctx, made=made if is_engine else None)
    opener = "stream()" if is_engine else f"{target.name}()"
    again = second.setup[-1].replace("stream = ", "second = ", 1)
    body = [again, "print(stream is second, aiter(stream) is aiter(second))"]
    if first.stream is second.stream or one is two:
        what = (
            "the same object" if first.stream is second.stream else "distinct streams that share one iterator"
        )
        raise CheckFailure(
            f"two calls of {opener} returned {what}, {describe_item(one)}",
            expected=expected,
            reproduction=reproduction(first, body),
        )
    readers = [ctx.spawn(_drain(it), name=f"lmstream ES-7 reader {n}") for n, it in ((1, one), (2, two))]
    if not await ctx.wait_tasks(readers, timeout=ctx.remaining() / 2):
        raise CheckSkipped(
            f"two streams read side by side did not both end within {seconds(ctx.timeout / 2)}; "
            "independence is judged on streams that end (see ES-8)"
        )
    failed = [(n, task.exception()) for n, task in enumerate(readers, 1) if task.exception() is not None]
    if not failed:
        return
    index, error = failed[0][0], _present(failed[0][1])
    solo = await read_transcript(target, ctx)
    if not solo.ended:
        raise CheckSkipped(
            f"read side by side, stream {index} raised {describe_exception(error)}, but a stream read alone "
            f"{solo.stopped_short()} too (see ES-8)"
        )
    raise CheckFailure(
        f"read side by side with another stream from a second call of {opener}, stream {index} raised "
        f"{describe_exception(error)}, while a stream read alone ends normally ({len(solo.items)} item(s)): "
        "the streams share state",
        expected=expected,
        reproduction=reproduction(
            first,
            [
                again,
                "async def drain(s): return [item async for item in s]",
                "print(await asyncio.gather(drain(stream), drain(second), return_exceptions=True))",
            ],
        ),
    )


def _present(error: BaseException | None) -> BaseException:
    assert error is not None
    return error


# ---------------------------------------------------------------------------------------------- ES-8
@check("ES-8", _ENGINE, summary="the standard prompt's stream ends normally within the timeout")
async def standard_prompt_stream_ends(target: EngineTarget, ctx: CheckContext) -> None:
    transcript = await read_transcript(target, ctx)
    if transcript.ended:
        return
    body = [
        "async def read() -> list[object]:",
        "    return [item async for item in stream]",
        f"print(await asyncio.wait_for(read(), {ctx.timeout!r}))",
    ]
    raise CheckFailure(
        transcript.why_not_ended(),
        expected=f"the stream of the prompt ends normally (StopAsyncIteration) within {seconds(ctx.timeout)}",
        reproduction=reproduction(transcript.opened, body),
    )


# ---------------------------------------------------------------------------------------------- ES-9
@check("ES-9", _ENGINE, summary="the completion's message text equals the concatenated tokens")
async def completion_text_is_token_text(target: EngineTarget, ctx: CheckContext) -> None:
    transcript = await read_transcript(target, ctx)
    tokens: list[str] = []
    for item in transcript.items:
        if isinstance(item, str):
            tokens.append(item)
            continue
        if not completion_shaped(item):
            continue
        text = getattr(getattr(item, "message", None), "text", None)
        if text is None:
            raise CheckSkipped("the completion's message text is None: there is no text to compare")
        joined = "".join(tokens)
        if text == joined:
            return
        at = next(
            (i for i, (a, b) in enumerate(zip(text, joined, strict=False)) if a != b),
            min(len(text), len(joined)),
        )
        raise CheckFailure(
            f"the completion's message text is {_clip(text)} but the {len(tokens)} token(s) before it "
            f"concatenate to {_clip(joined)}; they first differ at character {at}",
            expected="when the completion's message text is not None, it equals the concatenated tokens",
            reproduction=reproduction(
                transcript.opened,
                [
                    "items = [item async for item in stream]",
                    "tokens = ''.join(i for i in items if isinstance(i, str))",
                    "print(repr(tokens), repr(items[-1].message.text))",
                ],
            ),
        )
    if not transcript.ended:
        raise transcript.inconclusive("ES-9")
    raise CheckSkipped("the stream yielded no completion, so there is no message text to compare")


def _clip(text: str, limit: int = 60) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


# ---------------------------------------------------------------------------------------------- ES-10
@check("ES-10", _ENGINE, summary="no token is the empty string")
async def no_empty_tokens(target: EngineTarget, ctx: CheckContext) -> None:
    transcript = await read_transcript(target, ctx)
    empty = [index for index, item in enumerate(transcript.items, 1) if isinstance(item, str) and not item]
    if empty:
        raise CheckFailure(
            f"{len(empty)} empty-string token(s), at item(s) {', '.join(map(str, empty[:10]))} of "
            f"{len(transcript.items)}. Items: {describe_items(transcript.items)}",
            expected=get_requirement("ES-10").statement,
            reproduction=reproduction(transcript.opened, LIST_ITEMS),
        )
    if not transcript.ended:
        raise transcript.inconclusive("ES-10")


# ---------------------------------------------------------------------------------------------- ES-11
@check("ES-11", _ENGINE, summary="informational: whether the stream used the permission to yield no tokens")
async def a_completion_alone_is_a_stream(target: EngineTarget, ctx: CheckContext) -> None:
    """ES-11 is a MAY: a stream may yield no tokens at all. A permission cannot be broken, so this check
    never fails; it reports what the stream did (as a note) and skips when the stream did not end."""
    transcript = await read_transcript(target, ctx)
    if not transcript.ended:
        raise CheckSkipped(f"the stream {transcript.stopped_short()} (see ES-8)")
    tokens = sum(1 for item in transcript.items if isinstance(item, str))
    completions = sum(1 for item in transcript.items if completion_shaped(item))
    used = "used the ES-11 permission: " if tokens == 0 else ""
    ctx.note(
        f"{used}the stream yielded {tokens} token(s) and {completions} completion(s); a stream MAY yield no "
        "token at all (managers must handle that)"
    )
