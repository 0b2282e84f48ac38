"""The manager checks of what a manager must refuse or clean up when the engine breaks the stream contract:
SM-30 (a stream that is not async-iterable, ES-1, is refused with StreamProtocolError) and SM-31 (after a
protocol error the engine stream is closed before anyone gets the error, and a failing close does not take
its place); and SM-16 for a manager built from a finished message (its role is the message's).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from lmstream.conformance.context import CheckContext, CheckTimeout
from lmstream.conformance.describe import describe_exception, script
from lmstream.conformance.model import CheckFailure, CheckSkipped, TargetKind
from lmstream.conformance.scripted import StreamProbe
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import StreamProtocolError, describe_item

from ._manager_support import (
    ROLE,
    TOKENS,
    Built,
    CountingLock,
    ScriptMessage,
    completion_for,
    rejected_completion,
    result_of,
    waiter_bound,
)
from ._registry import check

__all__: list[str] = []

_MANAGER = TargetKind.MANAGER


def _es1(error: BaseException | None) -> bool:
    return isinstance(error, StreamProtocolError) and error.requirement_id == "ES-1"


def _said(error: BaseException | None) -> str:
    return "returned normally" if error is None else f"raised {describe_exception(error)}"


# ---------------------------------------------------------------------------------------------- SM-30
_NOT_ITERABLE: Final[dict[str, Callable[[], object]]] = {
    "a list of tokens": lambda: [" Hel", "lo"],
    "a plain generator": lambda: (token for token in (" Hel", "lo")),
    "an object without __aiter__": object,
}


async def _step(manager: Any) -> BaseException | None:
    """The first step of iterating ``manager`` (``aiter()`` included): what it raised, if anything."""
    try:
        await anext(aiter(manager))
    except StopAsyncIteration:
        return None
    except Exception as exc:
        return exc
    return None


async def _result(manager: Any) -> BaseException | None:
    try:
        await manager.completion()
    except Exception as exc:
        return exc
    return None


@check(
    "SM-30",
    _MANAGER,
    summary="a list, a plain generator or an object as the stream: StreamProtocolError(ES-1), soon or later",
)
async def stream_that_is_not_async_iterable_is_refused(target: ManagerTarget, ctx: CheckContext) -> None:
    expected = (
        "a stream_iter that is not an async iterable is refused with StreamProtocolError naming ES-1, when "
        "the manager is built or at the latest from its first step and from every completion()/message()/"
        "await; nothing hangs"
    )
    imports, expression = ctx.target_reference()
    for what, make in _NOT_ITERABLE.items():
        shown = "[' Hel', 'lo']" if what.startswith("a list") else "object()"
        repro = script(
            imports,
            [
                f"stream = {shown}",
                "try:",
                f"    manager = {expression}(stream, {ROLE!r})",
                "except Exception as exc:",
                "    print('building it raised', repr(exc))  # StreamProtocolError('ES-1: ...')",
                "else:",
                "    try:",
                "        print(await asyncio.wait_for(manager.completion(), 1))",
                "    except Exception as exc:",
                "        print('completion() raised', repr(exc))  # StreamProtocolError('ES-1: ...')",
            ],
        )
        observed: list[str] = []
        # Iteration first: results asked for first would drive the stream, which is SM-6's to judge.
        for first in ("iteration",):
            try:
                manager: Any = target(make(), ROLE)
            except Exception as exc:
                if _es1(exc):
                    break
                raise CheckFailure(
                    f"building a manager over {what} raised {describe_exception(exc)}, not "
                    "StreamProtocolError naming ES-1",
                    expected=expected,
                    reproduction=repro,
                ) from exc
            calls = (_step, _result)
            for call in calls:
                name = "its first step" if call is _step else "completion()"
                try:
                    error = await ctx.bounded(
                        call(manager), what=f"{name} over {what}", timeout=waiter_bound(ctx)
                    )
                except CheckTimeout as exc:
                    observed.append(f"{name} {exc.observed}")
                    continue
                if not _es1(error):
                    observed.append(f"{name} {_said(error)}")
            if observed:
                raise CheckFailure(
                    f"a manager over {what} was built, then (starting with {first}) "
                    + "; ".join(observed)
                    + ", not StreamProtocolError naming ES-1",
                    expected=expected,
                    reproduction=repro,
                )


# ---------------------------------------------------------------------------------------------- SM-31
class _CloseFailed(Exception):
    """What the engine of SM-31's second case raises from its cleanup."""


@dataclass
class _Engine:
    """A stream that yields ``items`` and records its cleanup (which can take turns, or raise)."""

    items: tuple[object, ...]
    cleanup_turns: int = 3
    fail_close: bool = False
    cleanup_started: bool = False
    cleanup_ran: bool = False
    yielded: list[object] = field(default_factory=list[object])

    async def stream(self) -> AsyncGenerator[Any, None]:
        closing = False
        try:
            for item in self.items:
                await asyncio.sleep(0)
                self.yielded.append(item)
                yield item
        except GeneratorExit:
            closing = True
            raise
        finally:
            self.cleanup_started = True
            for _ in range(self.cleanup_turns):
                await asyncio.sleep(0)
            self.cleanup_ran = True
            if self.fail_close and closing:  # its close fails (an end of its own does not)
                raise _CloseFailed("the engine's close failed")


@dataclass
class _Seen:
    """An error someone got, and whether the engine's cleanup had run when they got it."""

    who: str
    error: BaseException | None = None
    closed: bool = False
    done: bool = False

    def describe(self) -> str | None:
        """What breaks SM-31 in how this one got its error (the error's type and naming are SM-9's)."""
        if not self.done:
            return None  # a waiter left waiting is SM-9's failure
        if isinstance(self.error, _CloseFailed):
            return f"{self.who} raised the error the engine's close raised, in place of the protocol error"
        if self.error is not None and not self.closed:
            return (
                f"{self.who} raised {describe_exception(self.error)} while the engine stream was still open "
                "(its cleanup had not run)"
            )
        return None


_SM31_CASES: Final[dict[str, tuple[tuple[object, ...], str]]] = {
    "yielded bytes mid-stream": ((TOKENS[0], b"lo", *TOKENS[1:]), "ES-2"),
    "yielded a token after its completion": ((TOKENS[0], completion_for(TOKENS[0]), TOKENS[1]), "ES-3"),
}


@check(
    "SM-31",
    _MANAGER,
    summary="a protocol error closes the engine before anyone gets it; a failing close does not replace it",
)
async def protocol_error_closes_the_engine(target: ManagerTarget, ctx: CheckContext) -> None:
    expected = (
        "after a protocol error, the engine stream is closed (aclose() awaited, its cleanup run) before the "
        "consumer or any waiter gets the StreamProtocolError, and an error raised by that close does not "
        "take its place"
    )
    for what, (items, rule) in _SM31_CASES.items():
        control: dict[str, type[BaseException] | None] = {}
        for fail_close in (False, True):
            engine = _Engine(items, fail_close=fail_close)
            lock = CountingLock()
            try:
                manager: Any = target(engine.stream(), ROLE, lock=lock)
            except Exception as exc:
                raise CheckFailure(
                    f"calling {target.name}(stream_iter, role, lock=...) raised {describe_exception(exc)}",
                    expected="a manager (ManagerFactory: kani's StreamManager constructor signature)",
                ) from exc
            consumer = _Seen("the consumer's loop")
            waiter = _Seen("a completion() waiting during iteration")
            waiters: list[asyncio.Task[None]] = []
            try:
                await ctx.bounded(
                    _loop(ctx, manager, engine, consumer, waiter, waiters),
                    what=f"the consumer's loop over an engine that {what}",
                )
            except CheckTimeout as exc:
                ctx.note(f"the consumer's loop {exc.observed}")
            await ctx.wait_tasks(waiters, timeout=waiter_bound(ctx))
            probe = StreamProbe(yielded=list(engine.yielded))
            skip = rejected_completion(Built(manager, probe, items, None), consumer.error, "SM-31")
            if rule == "ES-3" and skip is not None:
                raise skip
            problems = [p for p in (consumer.describe(), waiter.describe()) if p is not None]
            for seen in (consumer, waiter):
                got = type(seen.error) if seen.done and seen.error is not None else None
                if not fail_close:
                    control[seen.who] = got
                elif seen.done and got is not control.get(seen.who) and not problems:
                    wanted = control.get(seen.who)
                    problems.append(
                        f"{seen.who} {_said(seen.error)}, where with a close that does not fail it raised "
                        f"{wanted.__name__ if wanted is not None else 'nothing'}"
                    )
            if problems:
                closing = "whose close then raised" if fail_close else "whose close takes 3 event-loop turns"
                raise CheckFailure(
                    f"the engine {what}, {closing}: " + "; ".join(problems),
                    expected=expected,
                    reproduction=_sm31_reproduction(ctx, items, fail_close),
                )


async def _loop(
    ctx: CheckContext,
    manager: Any,
    engine: _Engine,
    consumer: _Seen,
    waiter: _Seen,
    waiters: list[asyncio.Task[None]],
) -> None:
    """Iterate ``manager``, starting ``waiter`` once the first token arrived; record how the loop ended."""

    async def wait() -> None:
        try:
            await result_of(manager, "completion")
        except Exception as exc:
            waiter.error = exc
        waiter.closed, waiter.done = engine.cleanup_ran, True

    iterator = aiter(manager)
    try:
        await anext(iterator)
        waiters.append(ctx.spawn(wait(), name="lmstream SM-31 waiter"))
        await asyncio.sleep(0)
        while True:
            await anext(iterator)
    except StopAsyncIteration:
        pass
    except Exception as exc:
        consumer.error = exc
    consumer.closed, consumer.done = engine.cleanup_ran, True


def _sm31_reproduction(ctx: CheckContext, items: tuple[object, ...], fail_close: bool) -> str:
    imports, expression = ctx.target_reference()
    rendered = ", ".join(
        "completion_for(' Hel')" if not isinstance(i, str | bytes) else repr(i) for i in items
    )
    raising = ["        raise RuntimeError('the close failed')"] if fail_close else []
    return script(
        [*imports, "from lmstream.conformance.checks._manager_support import completion_for"],
        [
            "closed = []",
            "async def engine():",
            "    try:",
            f"        for item in [{rendered}]:",
            "            yield item",
            "    finally:",
            "        await asyncio.sleep(0)",
            "        closed.append(True)",
            *raising,
            f"manager = {expression}(engine(), {ROLE!r})",
            "try:",
            "    async for token in manager:",
            "        pass",
            "except Exception as exc:",
            "    print(repr(exc), 'engine closed:', bool(closed))  # StreamProtocolError, True",
        ],
    )


# ---------------------------------------------------------------------------------------------- SM-16
@check("SM-16", _MANAGER, summary="a manager built with from_message(message) has the message's role")
async def from_message_manager_has_the_message_role(target: ManagerTarget, ctx: CheckContext) -> None:
    from_message = getattr(target.factory, "from_message", None)
    if not callable(from_message):
        raise CheckSkipped(
            f"{target.name} has no from_message(message) constructor (see SM-17's check): the role of a "
            "manager built from a finished message cannot be looked at"
        )
    imports, expression = ctx.target_reference()
    for role in ("tool", "user"):
        message = ScriptMessage(role, "the result")
        repro = script(
            [*imports, "from lmstream.conformance.checks._manager_support import ScriptMessage"],
            [
                f"manager = {expression}.from_message(ScriptMessage({role!r}, 'the result'))",
                f"print(repr(manager.role))  # {role!r}",
            ],
        )
        try:
            manager: Any = from_message(message)
            found: object = manager.role
        except Exception as exc:
            raise CheckFailure(
                f"{target.name}.from_message({message!r}) or its role raised {describe_exception(exc)}",
                expected="a manager whose role is the message's role",
                reproduction=repro,
            ) from exc
        if found != role:
            raise CheckFailure(
                f"the role of {target.name}.from_message({message!r}) is {describe_item(found)}",
                expected="a manager built from a finished message has that message's role",
                reproduction=repro,
            )
