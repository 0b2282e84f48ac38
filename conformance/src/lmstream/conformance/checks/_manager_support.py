"""Shared steps of the manager, stop and round checks: scripted engines, a counting lock, consumers,
waiters, their outcomes, and reproduction snippets.

A manager check builds a manager with the target (``target(stream, role, after=..., lock=...)``) over a
:func:`~lmstream.conformance.scripted.scripted_stream` it controls, drives it with a scripted consumer and
waiters in other tasks, and judges what it observed. Every wait goes through the check's
:class:`~lmstream.conformance.context.CheckContext`, so a manager that hangs fails with what was awaited
and for how long. Completions in scripts are plain frozen dataclasses: a manager must accept any object
shaped like a completion (SM-14); a check whose subject is not SM-14 skips, naming SM-14, when the manager
rejects one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from lmstream.conformance.context import CheckContext, CheckTimeout
from lmstream.conformance.describe import describe_exception, describe_items, script
from lmstream.conformance.model import CheckFailure
from lmstream.conformance.scripted import StreamProbe, scripted_stream
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import describe_item

__all__ = [
    "ROLE",
    "TEXT",
    "TOKENS",
    "Built",
    "Consumed",
    "CountingLock",
    "Outcome",
    "ScriptCompletion",
    "ScriptMessage",
    "build",
    "completion_for",
    "consume",
    "manager_reproduction",
    "outcomes",
    "spawn_waiters",
    "wait_result",
]

ROLE: Final = "assistant"
"""The role every scripted manager is built with."""

TOKENS: Final[tuple[str, ...]] = (" Hel", "lo", ",  ", "world", "!\n", "  ")
"""The tokens of the standard script: whitespace at both ends and inside, so stripping or merging shows."""

TEXT: Final = "".join(TOKENS)
"""Their exact concatenation: what a manager's built message must say (SM-4)."""

ResultMethod = Literal["completion", "message", "await"]


@dataclass(frozen=True)
class ScriptMessage:
    """A message shaped as :class:`lmstream.spec.Message`, and nothing else."""

    role: object
    text: str | None


@dataclass(frozen=True)
class ScriptCompletion:
    """A completion shaped as :class:`lmstream.spec.Completion`: a plain dataclass, no base class."""

    message: ScriptMessage
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def completion_for(text: str | None = TEXT, role: object = ROLE) -> ScriptCompletion:
    """A well-formed completion with known token counts."""
    return ScriptCompletion(ScriptMessage(role, text), prompt_tokens=7, completion_tokens=len(TOKENS))


class CountingLock(asyncio.Lock):
    """An :class:`asyncio.Lock` that counts its acquisitions and releases (SM-12)."""

    def __init__(self) -> None:
        super().__init__()
        self.acquisitions = 0
        self.releases = 0

    async def acquire(self) -> Literal[True]:
        result = await super().acquire()
        self.acquisitions += 1
        return result

    def release(self) -> None:
        self.releases += 1
        super().release()


@dataclass
class Built:
    """A manager the check built, with what it was built over."""

    manager: Any
    probe: StreamProbe
    script: tuple[object, ...]
    lock: CountingLock | None
    after_calls: list[object] = field(default_factory=list[object])


async def build(
    target: ManagerTarget,
    ctx: CheckContext,
    items: Sequence[object],
    *,
    lock: bool = False,
    after: bool | Callable[[Any], Awaitable[object]] = False,
    pause: float | None = 0.0,
    role: object = ROLE,
) -> Built:
    """Build a manager over a scripted stream of ``items`` (commands allowed: Pause, Block, Fail).

    :param lock: give the manager a :class:`CountingLock`.
    :param after: ``True`` records each call in ``Built.after_calls``; a callable is used as it is.
    :raises CheckFailure: when the target raises instead of returning a manager.
    """
    probe = StreamProbe()
    counting = CountingLock() if lock else None
    built = Built(None, probe, tuple(items), counting)

    async def record(completion: object) -> None:
        built.after_calls.append(completion)

    callback: Callable[[Any], Awaitable[object]] | None
    callback = record if after is True else (after or None)
    try:
        built.manager = target(
            scripted_stream(items, probe, pause=pause), role, after=callback, lock=counting
        )
    except Exception as exc:
        raise CheckFailure(
            f"calling {target.name}(stream_iter, role, after=..., lock=...) raised {describe_exception(exc)}",
            expected="a manager (ManagerFactory: kani's StreamManager constructor signature)",
        ) from exc
    return built


@dataclass
class Consumed:
    """What a scripted consumer saw: the tokens, and how its loop ended."""

    tokens: list[object] = field(default_factory=list[object])
    error: BaseException | None = None
    """The exception the loop raised (the consumer's own, for ``how="raise"``, is not recorded here)."""
    cancelled: bool = False

    @property
    def text(self) -> str:
        """The concatenation of the ``str`` tokens seen."""
        return "".join(t for t in self.tokens if isinstance(t, str))

    def describe(self) -> str:
        """``3 token(s) ' Hel', 'lo', ...; the loop raised ValueError(...)`` in one line."""
        seen = f"{len(self.tokens)} token(s): {describe_items(self.tokens)}" if self.tokens else "no token"
        if self.cancelled:
            return f"{seen}; the loop ended with CancelledError"
        if self.error is not None:
            return f"{seen}; the loop raised {describe_exception(self.error)}"
        return f"{seen}; the loop ended normally"


class _ConsumerLeft(Exception):
    """Raised inside a scripted consumer's loop body (``how="raise"``)."""


async def consume(
    ctx: CheckContext,
    manager: Any,
    *,
    stop_after: int | None = None,
    how: Literal["break", "aclose", "raise"] = "break",
    what: str = "the manager's stream to end",
) -> Consumed:
    """Iterate ``manager`` in the check's own task, bounded by the budget.

    :param stop_after: leave the loop after this many tokens (``how`` it leaves: ``break``, ``aclose()``
        of the iterator, or an exception raised in the loop body), or read to the end when ``None``.
    :raises CheckTimeout: when the loop does not end in time.
    """
    seen = Consumed()

    async def loop() -> None:
        iterator = aiter(manager)
        try:
            while True:
                if stop_after is not None and len(seen.tokens) >= stop_after:
                    if how == "aclose":
                        await iterator.aclose()
                    elif how == "raise":
                        raise _ConsumerLeft
                    return
                try:
                    token = await anext(iterator)
                except StopAsyncIteration:
                    return
                seen.tokens.append(token)
        finally:
            del iterator  # a break drops the iterator: the manager may finalize it now

    try:
        await ctx.bounded(loop(), what=what)
    except _ConsumerLeft:
        pass
    except CheckTimeout:
        raise
    except asyncio.CancelledError:
        seen.cancelled = True
        raise
    except Exception as exc:
        seen.error = exc
    return seen


@dataclass
class Outcome:
    """How one waiter ended: a value, an exception, or still pending when the check gave up on it."""

    value: object = None
    error: BaseException | None = None
    pending: bool = False

    def describe(self) -> str:
        if self.pending:
            return "still waiting"
        if self.error is not None:
            return f"raised {describe_exception(self.error)}"
        return f"returned {describe_item(self.value)}"


async def _result(manager: Any, method: ResultMethod) -> object:
    if method == "completion":
        return await manager.completion()
    if method == "message":
        return await manager.message()
    return await manager


def spawn_waiters(
    ctx: CheckContext, manager: Any, count: int, methods: Sequence[ResultMethod] = ("completion",)
) -> list[asyncio.Task[object]]:
    """Start ``count`` tasks awaiting the manager's result, cycling through ``methods``."""
    return [
        ctx.spawn(_result(manager, methods[i % len(methods)]), name=f"lmstream waiter {i}")
        for i in range(count)
    ]


async def outcomes(
    ctx: CheckContext, tasks: Sequence[asyncio.Task[object]], *, timeout: float | None = None
) -> list[Outcome]:
    """Wait (bounded) for the waiter tasks and say how each ended; pending ones are left to the runner."""
    await ctx.wait_tasks(tasks, timeout=timeout)
    found: list[Outcome] = []
    for task in tasks:
        if not task.done():
            found.append(Outcome(pending=True))
        elif task.cancelled():
            found.append(Outcome(error=asyncio.CancelledError()))
        elif task.exception() is not None:
            found.append(Outcome(error=task.exception()))
        else:
            found.append(Outcome(value=task.result()))
    return found


async def wait_result(ctx: CheckContext, manager: Any, method: ResultMethod = "completion") -> Outcome:
    """Await the manager's result in the check's own task, bounded; the outcome, never an exception."""
    try:
        return Outcome(value=await ctx.bounded(_result(manager, method), what=f"{method}() to return"))
    except CheckTimeout:
        return Outcome(pending=True)
    except Exception as exc:
        return Outcome(error=exc)


def manager_reproduction(
    ctx: CheckContext, items: Sequence[object], body: Sequence[str], *, lock: bool = False
) -> str:
    """A paste-able script: a scripted engine stream of ``items``, the target's manager over it, ``body``."""
    imports, expression = ctx.target_reference()
    rendered = ", ".join(_render(item) for item in items)
    setup = [
        f"stream = scripted_stream([{rendered}])",
        f"manager = {expression}(stream, {ROLE!r}{', lock=asyncio.Lock()' if lock else ''})",
    ]
    return script(
        [
            *imports,
            "from lmstream.conformance import Block, Fail, Pause, scripted_stream",
            "from lmstream.conformance.checks._manager_support import completion_for",
        ],
        [*setup, *body],
    )


def _render(item: object) -> str:
    if isinstance(item, ScriptCompletion):
        return "completion_for()" if item == completion_for() else repr(item)
    return repr(item)
