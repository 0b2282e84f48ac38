"""Shared steps of the manager, stop and round checks: scripted engines, a counting lock, consumers,
waiters, their outcomes, and reproduction snippets.

A manager check builds a manager with the target (``target(stream, role, after=..., lock=...)``) over a
:func:`~lmstream.conformance.scripted.scripted_stream` it controls, drives it with a scripted consumer and
waiters in other tasks, and judges what it observed. Every wait goes through the check's
:class:`~lmstream.conformance.context.CheckContext`, so a manager that hangs fails with what was awaited
and for how long. Completions in scripts are plain frozen dataclasses: a manager must accept any object
shaped like a completion (SM-14); a check whose subject is not SM-14 skips, naming SM-14, when the manager
rejects one (:func:`rejected_completion` recognises that).

Waiters are judged after the consumer has finished: a waiter still pending then gets :func:`waiter_bound`
more seconds (the check's grace, capped by what is left of its budget), so a manager that strands its
waiters (kani's, on an engine error or an early stop) fails quickly, and :func:`describe_waiters` says how
long they were given. :func:`engine_not_closed` and :func:`lock_not_released` judge what a stream left
behind; :func:`manager_reproduction` writes the snippet that shows it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from lmstream.conformance.context import CheckContext, CheckTimeout
from lmstream.conformance.describe import describe_exception, describe_items, script, seconds
from lmstream.conformance.model import CheckFailure, CheckSkipped
from lmstream.conformance.scripted import Fail, StreamProbe, scripted_stream
from lmstream.conformance.targets import ManagerTarget
from lmstream.spec import describe_item, is_completion

__all__ = [
    "AWAIT_RESULT",
    "RESULT_METHODS",
    "ROLE",
    "TEXT",
    "TOKENS",
    "Built",
    "Consumed",
    "CountingLock",
    "LockWatch",
    "Outcome",
    "ResultMethod",
    "ScriptCompletion",
    "ScriptMessage",
    "Stop",
    "Waiter",
    "build",
    "call_name",
    "collect",
    "completion_for",
    "construct",
    "consume",
    "describe_waiters",
    "engine_not_closed",
    "first_done",
    "lock_not_released",
    "manager_reproduction",
    "outcomes",
    "read_then_wait",
    "rejected_completion",
    "result_of",
    "run_with_waiters",
    "spawn_labelled",
    "spawn_waiters",
    "wait_result",
    "waiter_bound",
]

ROLE: Final = "assistant"
"""The role every scripted manager is built with."""

TOKENS: Final[tuple[str, ...]] = (" Hel", "lo", ",  ", "world", "!\n", "  ")
"""The tokens of the standard script: whitespace at both ends and inside, so stripping or merging shows."""

TEXT: Final = "".join(TOKENS)
"""Their exact concatenation: what a manager's built message must say (SM-4)."""

ResultMethod = Literal["completion", "message", "await"]

RESULT_METHODS: Final[tuple[ResultMethod, ...]] = ("completion", "message", "await")
"""The three ways to ask for the result (SM-5): ``completion()``, ``message()`` and ``await manager``."""


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
        self.release_threads: list[int] = []
        """The thread (``threading.get_ident()``) of each release: asyncio is not thread-safe (SM-29)."""
        self._released: asyncio.Event | None = None

    async def acquire(self) -> Literal[True]:
        result = await super().acquire()
        self.acquisitions += 1
        return result

    def release(self) -> None:
        """Count, then release (a release of an unheld lock is counted, then raises as asyncio's does)."""
        self.releases += 1
        self.release_threads.append(threading.get_ident())
        if self._released is not None:
            self._released.set()
        super().release()

    async def wait_released(self, count: int = 1) -> None:
        """Return once :attr:`releases` has reached ``count`` (wrap it in a bounded wait)."""
        while self.releases < count:
            self._released = asyncio.Event()
            await self._released.wait()

    def describe(self) -> str:
        """``acquired 1 time(s), released 0 time(s), now held`` in one line."""
        held = "now held" if self.locked() else "now free"
        return f"acquired {self.acquisitions} time(s), released {self.releases} time(s), {held}"


@dataclass
class _SignallingProbe(StreamProbe):
    """A probe that also says when its stream reaches a :class:`~lmstream.conformance.scripted.Block`."""

    reached_block: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def wait_for_release(self, *, opaque: bool = False) -> None:
        self.reached_block.set()
        await super().wait_for_release(opaque=opaque)


@dataclass
class Built:
    """A manager the check built, with what it was built over."""

    manager: Any
    probe: StreamProbe
    script: tuple[object, ...]
    lock: CountingLock | None
    after_calls: list[object] = field(default_factory=list[object])
    stream: Any = None
    """The engine stream given to the factory (the scripted async generator, or ``wrap``'s result)."""

    async def block_reached(self) -> None:
        """Return once the engine stream is waiting at a ``Block`` of the script (wrap it in a bounded
        wait). Needs a ``Built`` made by :func:`build`, whose probe signals it."""
        if not isinstance(self.probe, _SignallingProbe):
            raise TypeError("block_reached() needs a Built made by build()")
        await self.probe.reached_block.wait()


def construct(target: ManagerTarget, stream: object, role: object = ROLE, **keywords: Any) -> Any:
    """``target(stream, role, **keywords)``: the manager a check drives.

    :raises CheckFailure: when the target raises instead of returning a manager (naming the keywords given).
    """
    try:
        return target(stream, role, **keywords)
    except Exception as exc:
        given = "".join(f", {name}=..." for name in keywords)
        raise CheckFailure(
            f"calling {target.name}(stream_iter, role{given}) raised {describe_exception(exc)}",
            expected="a manager (ManagerFactory: kani's StreamManager constructor signature)",
        ) from exc


async def build(
    target: ManagerTarget,
    ctx: CheckContext,
    items: Sequence[object],
    *,
    lock: bool = False,
    after: bool | Callable[[Any], Awaitable[object]] = False,
    pause: float | None = 0.0,
    role: object = ROLE,
    wrap: Callable[[Any, CountingLock | None], object] | None = None,
) -> Built:
    """Build a manager over a scripted stream of ``items`` (commands allowed: Pause, Block, Fail).

    :param lock: give the manager a :class:`CountingLock`.
    :param after: ``True`` records each call in ``Built.after_calls``; a callable is used as it is.
    :param wrap: called with the scripted stream and the lock (or ``None``); the manager is built over what
        it returns (e.g. a :class:`LockWatch`).
    :raises CheckFailure: when the target raises instead of returning a manager.
    """
    probe = _SignallingProbe()
    counting = CountingLock() if lock else None
    built = Built(None, probe, tuple(items), counting)
    stream: Any = scripted_stream(items, probe, pause=pause)
    built.stream = stream if wrap is None else wrap(stream, counting)

    async def record(completion: object) -> None:
        built.after_calls.append(completion)

    callback: Callable[[Any], Awaitable[object]] | None
    callback = record if after is True else (after or None)
    built.manager = construct(target, built.stream, role, after=callback, lock=counting)
    return built


@dataclass
class Consumed:
    """What a scripted consumer saw: the tokens, and how its loop ended."""

    tokens: list[object] = field(default_factory=list[object])
    error: BaseException | None = None
    """The exception the loop raised (the consumer's own, for ``how="raise"``, is not recorded here)."""
    cancelled: bool = False
    over: bool = False
    """Whether the loop has ended (in any way): set the moment it does, before :func:`consume` returns."""

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
    step: Callable[[int], Awaitable[None]] | None = None,
    into: Consumed | None = None,
) -> Consumed:
    """Iterate ``manager`` in the current task, bounded by the budget.

    :param stop_after: leave the loop after this many tokens (``how`` it leaves: ``break``, ``aclose()``
        of the iterator, or an exception raised in the loop body), or read to the end when ``None``.
    :param step: awaited in the loop body before each request, with the number of tokens received so far
        (``0`` before the first request): where a check starts waiters or blocks the consumer.
    :param into: the record to fill (so that another task can watch it while the loop runs).
    :raises CheckTimeout: when the loop does not end in time.
    :raises asyncio.CancelledError: when the task is cancelled (``cancelled`` is then set).
    """
    seen = Consumed() if into is None else into

    async def loop() -> None:
        iterator = aiter(manager)
        try:
            while True:
                if step is not None:
                    await step(len(seen.tokens))
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
            seen.over = True
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
    finally:
        seen.over = True
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


async def result_of(manager: Any, method: ResultMethod) -> object:
    """Await the manager's result the way ``method`` says: ``completion()``, ``message()`` or ``await``."""
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
        ctx.spawn(result_of(manager, methods[i % len(methods)]), name=f"lmstream waiter {i}")
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


async def wait_result(
    ctx: CheckContext, manager: Any, method: ResultMethod = "completion", *, timeout: float | None = None
) -> Outcome:
    """Await the manager's result in the check's own task, bounded (by ``timeout`` when given, capped by the
    budget); the outcome, never an exception."""
    try:
        value = await ctx.bounded(
            result_of(manager, method), what=f"{call_name(method)} to return", timeout=timeout
        )
    except CheckTimeout:
        return Outcome(pending=True)
    except Exception as exc:
        return Outcome(error=exc)
    return Outcome(value=value)


def call_name(method: ResultMethod) -> str:
    """How a snippet or a message spells the call: ``completion()``, ``message()`` or ``await manager``."""
    return "await manager" if method == "await" else f"{method}()"


# ---------------------------------------------------------------------------------------------- waiters
def waiter_bound(ctx: CheckContext) -> float:
    """How long waiters get once the consumer has finished (or once they were started, when they drive the
    stream themselves): the check's grace, capped by what is left of the budget.

    A conforming manager releases its waiters within a few event-loop turns of the end; a manager that
    strands them is reported after this bound, not after the whole budget.
    """
    return min(ctx.remaining(), ctx.grace)


@dataclass
class Waiter:
    """One task awaiting the manager's result, with a label saying which call and when it was made."""

    label: str
    method: ResultMethod
    task: asyncio.Task[object]
    outcome: Outcome | None = None


def spawn_labelled(
    ctx: CheckContext, manager: Any, when: str, methods: Sequence[ResultMethod] = RESULT_METHODS
) -> list[Waiter]:
    """Start one waiter task per method; ``when`` completes the label (``"during iteration"``)."""
    return [
        Waiter(
            f"{call_name(method)} {when}",
            method,
            ctx.spawn(result_of(manager, method), name=f"lmstream waiter: {call_name(method)} {when}"),
        )
        for method in methods
    ]


async def collect(ctx: CheckContext, waiters: Sequence[Waiter], *, timeout: float | None = None) -> float:
    """Wait for the waiters (at most ``timeout``, default :func:`waiter_bound`) and record each outcome.

    Returns the bound used. Waiters still pending are left to the runner, which cancels them.
    """
    bound = waiter_bound(ctx) if timeout is None else min(timeout, ctx.remaining())
    found = await outcomes(ctx, [w.task for w in waiters], timeout=bound)
    for waiter, outcome in zip(waiters, found, strict=True):
        waiter.outcome = outcome
    return bound


async def first_done(ctx: CheckContext, waiters: Sequence[Waiter]) -> float:
    """Wait until one of the waiters is done, for at most what is left of the budget: the moment waiters
    that drive the stream themselves (nobody iterates) can all be released. Returns how long it waited."""
    started = ctx.elapsed()
    tasks = [w.task for w in waiters]
    if tasks and not any(t.done() for t in tasks):
        await asyncio.wait(tasks, timeout=ctx.remaining(), return_when=asyncio.FIRST_COMPLETED)
    return ctx.elapsed() - started


def describe_waiters(
    waiters: Sequence[Waiter], bound: float, *, since: str = "the consumer's loop ended"
) -> str:
    """The waiters' outcomes in one line, grouped: ``2 waiter(s) (completion() ..., await ...) raised X``.

    When some are still waiting, says how long they were given and why (:func:`waiter_bound`).
    """
    groups: dict[str, list[str]] = {}
    for waiter in waiters:
        outcome = waiter.outcome or Outcome(pending=True)
        groups.setdefault(outcome.describe(), []).append(waiter.label)
    parts: list[str] = []
    for described, labels in groups.items():
        shown = ", ".join(labels[:3]) + (f" (+{len(labels) - 3} more)" if len(labels) > 3 else "")
        parts.append(f"{len(labels)} waiter(s) ({shown}) {described}")
    text = "; ".join(parts)
    if any(w.outcome is None or w.outcome.pending for w in waiters):
        text += (
            f" [still waiting {seconds(bound)} after {since}: waiters are given the check's grace, capped by "
            "its remaining budget, once they can be released]"
        )
    return text


# ---------------------------------------------------------------------------------------------- SM-14
def rejected_completion(
    built: Built, error: BaseException | None, requirement_id: str
) -> CheckSkipped | None:
    """The skip for a check whose subject is not SM-14, when the manager rejected a structural completion.

    The manager is taken to have rejected it when it raised ``error`` (not one the script raises) right
    after the engine yielded its first completion, before asking for anything more.
    """
    if error is None or any(isinstance(step, Fail) and step.error is error for step in built.script):
        return None
    yielded = built.probe.yielded
    if built.probe.ended or not yielded or isinstance(yielded[-1], str) or not is_completion(yielded[-1]):
        return None
    if any(not isinstance(item, str) and is_completion(item) for item in yielded[:-1]):
        return None  # a second completion: an ES-3 violation, not a rejection of the first
    return CheckSkipped(
        f"the manager rejected a completion that is a plain dataclass ({describe_item(yielded[-1])}): it "
        f"raised {describe_exception(error)}. Any object shaped like a completion must be accepted (SM-14, "
        f"whose check reports this); {requirement_id} cannot be judged without one"
    )


# ---------------------------------------------------------------------------------------------- SM-12
class LockWatch:
    """An engine stream (an async iterator) that delegates to ``inner`` and records, at each request and at
    ``aclose()``, whether ``lock`` was held: what the engine would see if it looked (SM-12)."""

    def __init__(self, inner: Any, lock: asyncio.Lock | None) -> None:
        self.inner = inner
        self.lock = lock
        self.held_at_requests: list[bool] = []
        self.held_at_close: bool | None = None

    def __aiter__(self) -> LockWatch:
        return self

    async def __anext__(self) -> object:
        self.held_at_requests.append(self.lock is not None and self.lock.locked())
        item: object = await self.inner.__anext__()
        return item

    async def aclose(self) -> None:
        self.held_at_close = self.lock is not None and self.lock.locked()
        await self.inner.aclose()


# ---------------------------------------------------------------------------------------------- endings
Stop = Literal["break", "aclose", "raise"]
"""How a scripted consumer leaves its loop early (see :func:`consume`)."""


async def run_with_waiters(
    ctx: CheckContext, built: Built, *, stop_after: int | None = None, how: Stop = "break"
) -> tuple[Consumed, list[Waiter]]:
    """Consume ``built``'s manager in this task, starting one waiter per result method once the first token
    has arrived (iteration is then under way, whatever the manager's design) and one more per method once
    the loop has ended. Returns what the consumer saw and the waiters, not yet collected (:func:`collect`).
    """
    waiters: list[Waiter] = []

    async def step(received: int) -> None:
        if received == 1 and not waiters:
            waiters.extend(spawn_labelled(ctx, built.manager, "during iteration"))
            await ctx.settle()

    seen = await consume(ctx, built.manager, stop_after=stop_after, how=how, step=step)
    waiters += spawn_labelled(ctx, built.manager, "after the loop ended")
    return seen, waiters


def engine_not_closed(ctx: CheckContext, built: Built, dropped_before: int) -> str | None:
    """Why the engine stream does not count as closed by the manager, or ``None`` when it does.

    Closed means its cleanup ran; a stream the manager dropped unfinished, which the garbage collector and
    the event loop's async-generator finalizer closed for it, does not count (``dropped_before``: the
    length of :attr:`CheckContext.dropped_asyncgens` before the manager was used).
    """
    dropped = [name for name in ctx.dropped_asyncgens[dropped_before:] if name.startswith("scripted_stream")]
    if dropped:
        return (
            "the engine stream was not closed by the manager: it was dropped unfinished and left to the "
            f"garbage collector and the event loop's finalizer ({dropped[0]})"
        )
    if not built.probe.cleanup_ran:
        return "the engine stream was still open (never closed: its cleanup had not run)"
    return None


def lock_not_released(built: Built, *, held_by_others: int = 0, exact: bool = True) -> str | None:
    """Why ``built.lock`` was not left as it should be, or ``None``.

    :param exact: the manager must have taken and released it exactly once (SM-12); otherwise only that
        it released every acquisition it made and holds nothing (SM-10, SM-11: whether it took the lock at
        all is SM-12's subject).
    :param held_by_others: acquisitions and releases the check itself made.
    """
    lock = built.lock
    if lock is None:
        return None
    taken, released = lock.acquisitions - held_by_others, lock.releases - held_by_others
    if exact and taken == released == 1 and not lock.locked():
        return None
    if not exact and taken == released and not lock.locked():
        return None
    if exact:
        return f"the lock was {lock.describe()}, not taken and released exactly once by the manager"
    return f"the lock was {lock.describe()}: not released"


def read_then_wait(*, lock: bool = False) -> list[str]:
    """A reproduction body: read the manager, printing each token and how the loop ended, then await its
    result (bounded, so a manager that hangs prints ``TimeoutError``)."""
    return [
        "try:",
        "    async for token in manager:",
        "        print(repr(token))",
        "except Exception as exc:",
        "    print('the loop raised', repr(exc))",
        *(["print('lock held:', lock.locked())"] if lock else []),
        *AWAIT_RESULT,
    ]


AWAIT_RESULT: Final[tuple[str, ...]] = (
    "try:",
    "    print('completion() returned', await asyncio.wait_for(manager.completion(), 1))",
    "except Exception as exc:  # asyncio.TimeoutError() when it hangs",
    "    print('completion() raised', repr(exc))",
)
"""Reproduction lines: await ``completion()`` for at most a second and print what it gave."""


# ---------------------------------------------------------------------------------------------- snippets
def manager_reproduction(
    ctx: CheckContext,
    items: Sequence[object],
    body: Sequence[str],
    *,
    lock: bool = False,
    after: str | None = None,
    prelude: Sequence[str] = (),
    probe: bool = False,
) -> str:
    """A paste-able script: a scripted engine stream of ``items``, the target's manager over it, ``body``.

    The script's list is named ``items`` (so the body can name the engine's completion, ``items[-1]``), the
    stream ``stream`` and the manager ``manager``.

    :param lock: build the manager with ``lock=lock``, an ``asyncio.Lock()`` made in the setup.
    :param after: the name of a coroutine function (defined in ``prelude``) to pass as ``after``.
    :param prelude: lines placed before the manager is built (e.g. ``after``'s definition).
    :param probe: record the stream in ``probe``, a :class:`~lmstream.conformance.StreamProbe`.
    """
    imports, expression = ctx.target_reference()
    rendered = ", ".join(_render(item) for item in items)
    arguments = (", lock=lock" if lock else "") + (f", after={after}" if after else "")
    setup = [
        *(["lock = asyncio.Lock()"] if lock else []),
        *prelude,
        *(["probe = StreamProbe()"] if probe else []),
        f"items = [{rendered}]",
        f"stream = scripted_stream(items{', probe' if probe else ''})",
        f"manager = {expression}(stream, {ROLE!r}{arguments})",
    ]
    support = ["completion_for"]
    if any(isinstance(item, ScriptCompletion) and item != completion_for() for item in items):
        support += ["ScriptCompletion", "ScriptMessage"]
    return script(
        [
            *imports,
            "from lmstream.conformance import Block, Fail, Pause, StreamProbe, scripted_stream",
            f"from lmstream.conformance.checks._manager_support import {', '.join(support)}",
        ],
        [*setup, *body],
    )


def _render(item: object) -> str:
    if isinstance(item, ScriptCompletion):
        return "completion_for()" if item == completion_for() else repr(item)
    return repr(item)
