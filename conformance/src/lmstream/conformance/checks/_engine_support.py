"""Shared steps of the engine checks: opening a stream, reading it to its end, judging items, snippets.

Every engine check opens its own stream(s) with the standard prompt (or the author's), in its own event
loop. Checks other than ES-1 *skip* when no stream can be opened (that is ES-1's failure), and the item
checks skip when the stream did not end and nothing conclusive was seen (that is ES-8's failure), so a
broken engine fails exactly the requirement it breaks.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from lmstream.conformance.context import CheckContext, CheckTimeout
from lmstream.conformance.describe import describe_exception, describe_items, script, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped
from lmstream.conformance.prompt import STANDARD_PROMPT
from lmstream.conformance.targets import EngineTarget
from lmstream.spec import StreamProtocolError, check_stream, describe_item, is_completion

_PROMPT_NAME = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*(\(\))?$")

__all__ = [
    "OpenFailed",
    "Opened",
    "Transcript",
    "completion_shaped",
    "es1_problem",
    "iterator_of",
    "next_item",
    "open_raw",
    "open_stream",
    "read_transcript",
    "reproduction",
    "violation",
]


class OpenFailed(Exception):
    """Calling the target or its ``stream()`` raised, never returned, or gave no async iterable.

    ``str()`` says what happened in full; ``short`` in a few words (for the skips of other checks).
    """

    def __init__(self, detail: str, short: str) -> None:
        super().__init__(detail)
        self.short = short


@dataclass
class Opened:
    """A stream as ``stream()`` (or the stream factory) returned it, and how a snippet gets it."""

    stream: object
    imports: list[str]
    setup: list[str]
    via_factory: bool


@dataclass
class Transcript:
    """What reading one stream to its end (or to the budget's end) showed."""

    opened: Opened
    items: list[object] = field(default_factory=list[object])
    ended: bool = False
    error: Exception | None = None
    timeout: CheckTimeout | None = None
    elapsed: float = 0.0

    def why_not_ended(self) -> str:
        """One line: how the read stopped short of the end (``""`` when it ended)."""
        seen = (
            f"{len(self.items)} item(s) so far: {describe_items(self.items)}"
            if self.items
            else "no item so far"
        )
        if self.error is not None:
            return f"it raised {describe_exception(self.error)} ({seen})"
        if self.timeout is not None:
            detail = f"; {self.timeout.detail}" if self.timeout.detail else ""
            waited = seconds(self.elapsed)
            return f"it had not ended after {waited}: waiting for {self.timeout.what}{detail} ({seen})"
        return ""

    def stopped_short(self) -> str:
        """A few words: ``raised ValueError`` or ``did not end within 2.0 s``."""
        if self.error is not None:
            return f"raised {type(self.error).__name__}"
        return f"did not end within {seconds(self.elapsed)}"

    def inconclusive(self, requirement_id: str) -> CheckSkipped:
        """The skip for an item check that saw no violation on a stream that did not end."""
        return CheckSkipped(
            f"the stream {self.stopped_short()} (see ES-8); the {len(self.items)} item(s) read show no "
            f"{requirement_id} violation, and it is judged on a complete stream"
        )


# ---------------------------------------------------------------------------------------------- snippets
def _messages_expression(ctx: CheckContext) -> tuple[list[str], list[str], str]:
    """Imports, setup lines and the expression that give a snippet the prompt the check used."""
    name = ctx.messages_name
    if name and _PROMPT_NAME.match(name):
        module, _, attribute = name.partition(":")
        head = attribute.removesuffix("()").split(".", 1)[0]
        return [f"from {module} import {head}"], [], f"list({attribute})"
    if ctx.messages == STANDARD_PROMPT:
        return ["from lmstream.conformance import STANDARD_PROMPT"], [], "list(STANDARD_PROMPT)"
    return [], ["MESSAGES: list[object] = []  # put the prompt you gave the suite here"], "MESSAGES"


def reproduction(opened: Opened, body: Sequence[str]) -> str:
    """A paste-able script that opens the stream as the check did, then runs ``body``."""
    return script(opened.imports, [*opened.setup, *body])


# ---------------------------------------------------------------------------------------------- opening
async def open_raw(target: EngineTarget, ctx: CheckContext, *, made: object = None) -> Opened:
    """Call the target (when it is a factory) and its ``stream()`` once, with a fresh list of the prompt.

    :param made: what calling the target already gave (an engine), to call ``stream()`` on it again.
    :raises OpenFailed: when either raised or the factory never returned.
    """
    imports, expression = ctx.target_reference()
    message_imports, message_setup, messages = _messages_expression(ctx)
    if made is None:
        try:
            made = await ctx.bounded(target.instantiate(), what=f"calling {target.name} to return")
        except CheckTimeout as exc:
            raise OpenFailed(
                f"calling {target.name}: {exc.observed}", f"calling {target.name} timed out"
            ) from exc
        except Exception as exc:
            raise OpenFailed(
                f"calling {target.name} raised {describe_exception(exc)}",
                f"calling {target.name} raised {type(exc).__name__}",
            ) from exc
    call = f"{'await ' if _was_async(target) else ''}{expression}()" if target.is_factory else expression
    stream_method = getattr(made, "stream", None)
    for home in (target.obj, made, stream_method):
        if home is not None:
            ctx.origins.add_home(home)
    if callable(stream_method):
        setup = [*message_setup, f"engine = {call}", f"stream = engine.stream({messages})"]
        try:
            stream = stream_method(list(ctx.messages))
        except Exception as exc:
            raise OpenFailed(
                f"stream() raised {describe_exception(exc)}", f"stream() raised {type(exc).__name__}"
            ) from exc
        ctx.origins.add_home(stream)
        return Opened(stream, [*imports, *message_imports], setup, via_factory=False)
    return Opened(made, imports, [f"stream = {call}"], via_factory=True)


def _was_async(target: EngineTarget) -> bool:
    return inspect.iscoroutinefunction(target.obj)


def es1_problem(opened: Opened) -> OpenFailed | None:
    """Why what was opened is not an async iterable (ES-1), or ``None`` when it is one."""
    error = check_stream(opened.stream)
    if error is None:
        return None
    if inspect.iscoroutine(opened.stream):
        opened.stream.close()  # it will never be awaited; close it so it does not warn
    kind = type(opened.stream).__name__
    if opened.via_factory:
        return OpenFailed(
            f"the target returned {describe_item(opened.stream)}, which is neither an engine (it has no "
            "stream()) nor an async iterable",
            f"the target returned {kind}, neither an engine nor an async iterable",
        )
    detail = error.detail.split("; expected", 1)[0]  # the check states what is expected itself
    return OpenFailed(detail, f"stream() returned {kind}, not an async iterable")


def iterator_of(opened: Opened) -> AsyncIterator[object]:
    """``aiter(stream)``, checked to have ``__anext__``.

    :raises OpenFailed: when ``__aiter__`` raises or returns something without ``__anext__``.
    """
    try:
        iterator: object = cast(Any, opened.stream).__aiter__()
    except Exception as exc:
        raise OpenFailed(
            f"__aiter__() raised {describe_exception(exc)}", f"__aiter__() raised {type(exc).__name__}"
        ) from exc
    if not callable(getattr(type(iterator), "__anext__", None)):
        raise OpenFailed(
            f"__aiter__() returned {describe_item(iterator)}, which has no __anext__()",
            f"__aiter__() returned {type(iterator).__name__}, which has no __anext__()",
        )
    return cast(AsyncIterator[object], iterator)


async def open_stream(
    target: EngineTarget, ctx: CheckContext, *, made: object = None
) -> tuple[Opened, AsyncIterator[object]]:
    """Open a stream and its iterator for a check other than ES-1 (``made`` as for :func:`open_raw`).

    :raises CheckSkipped: when that fails (ES-1's check reports it).
    """
    try:
        opened = await open_raw(target, ctx, made=made)
        problem = es1_problem(opened)
        if problem is not None:
            raise problem
        return opened, iterator_of(opened)
    except OpenFailed as exc:
        raise CheckSkipped(f"no stream to examine: {exc.short} (see ES-1)") from None


async def next_item(
    ctx: CheckContext, iterator: AsyncIterator[object], what: str, timeout: float | None = None
) -> object:
    """``await iterator.__anext__()``, bounded; ``StopAsyncIteration`` and errors propagate."""
    return await ctx.bounded(_anext(iterator), what=what, timeout=timeout)


async def _anext(iterator: AsyncIterator[object]) -> object:
    return await iterator.__anext__()


async def read_transcript(
    target: EngineTarget, ctx: CheckContext, *, opened: Opened | None = None
) -> Transcript:
    """Open a stream (unless given) and read it to its end within the budget, item by item, in this task.

    Never raises for what the stream does: an error, a timeout or a stream that keeps yielding without
    ever suspending past the budget end the read and are recorded in the transcript.
    """
    if opened is None:
        opened, iterator = await open_stream(target, ctx)
    else:
        iterator = iterator_of(opened)
    transcript = Transcript(opened)
    started = ctx.elapsed()
    while True:
        what = "the first item" if not transcript.items else f"item {len(transcript.items) + 1} or the end"
        try:
            item = await next_item(ctx, iterator, what)
        except StopAsyncIteration:
            transcript.ended = True
            break
        except CheckTimeout as exc:
            transcript.timeout = exc
            break
        except Exception as exc:
            transcript.error = exc
            break
        transcript.items.append(item)
        if ctx.remaining() <= 0:  # a stream that never suspends never lets the timer fire
            transcript.timeout = CheckTimeout(
                f"item {len(transcript.items) + 1} or the end", ctx.elapsed() - started, "it kept yielding"
            )
            await ctx.close_quietly(iterator)
            break
    transcript.elapsed = ctx.elapsed() - started
    return transcript


# ---------------------------------------------------------------------------------------------- judging
def completion_shaped(item: object) -> bool:
    """Whether ``item`` has the shape of a completion (ES-2), whatever its token counts (ES-4)."""
    return not isinstance(item, str) and is_completion(item)


def violation(
    transcript: Transcript, index: int, error: StreamProtocolError, *, expected: str, body: Sequence[str]
) -> CheckFailure:
    """The failure for item ``index`` (0-based) of a transcript that broke a rule."""
    count = len(transcript.items)
    total = f"of {count}" if transcript.ended else f"of the {count} read"
    detail = error.detail.split("; expected", 1)[0]  # the failure states what is expected itself
    return CheckFailure(
        f"item {index + 1} {total}: {detail}. Items: {describe_items(transcript.items)}",
        expected=expected,
        reproduction=reproduction(transcript.opened, body),
    )


LIST_ITEMS = [
    "items = [item async for item in stream]",
    "for index, item in enumerate(items, 1):",
    "    print(index, repr(item))",
]
"""The reproduction body that lists every item."""


def waited(transcript: Transcript) -> str:
    """How long the read took, for messages."""
    return seconds(transcript.elapsed)
